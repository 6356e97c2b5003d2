#!/usr/bin/env bash
# Self-check of the grading pipeline on a (GPU) grading node: `python -m autograder selfcheck`
# for every assignment (the folders of solutions/ with a suite: autograder.suites.assignments), in the
# production bubblewrap sandbox, all at once.
#
#   tools/device_selfcheck.sh [selfcheck options...]        (default: --device cuda)
#
# Needs only python3 with torch (+ numpy, scikit-learn for lec4), prlimit, setpriv and
# bubblewrap: the node's, else .device/bwrap from tools/device_prepare.sh. No nbgrader, no
# Jupyter, no install: the repo's autograder/ and src/ (lec4) go on PYTHONPATH.
# Writes selfcheck_<assignment>.md (tables for benchmarks/results/) and .log files to
# $OUT (else ./selfcheck-out). Exit status: 0 all passed, 1 a miss, 2 could not check.
# WORKERS: submissions graded at once per assignment (default: a third of the cores, at most 6;
# the assignments run at the same time).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out="${OUT:-$PWD/selfcheck-out}"
mkdir -p "$out"
if ! command -v bwrap >/dev/null && [ -x .device/bwrap/usr/bin/bwrap ]; then
    export PATH="$PWD/.device/bwrap/usr/bin:$PATH"
fi
for tool in bwrap prlimit setpriv python3; do
    command -v "$tool" >/dev/null || { echo "device_selfcheck: $tool not found (bwrap: run tools/device_prepare.sh here and carry .device)" >&2; exit 2; }
done
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD:$PWD/src" PYTHONUNBUFFERED=1
mapfile -t assignments < <(python3 -c 'from autograder.suites import assignments; print(*assignments(), sep="\n")')
(( ${#assignments[@]} )) || { echo "device_selfcheck: no assignment found (autograder.suites.assignments)" >&2; exit 2; }
cores=$(nproc)
workers="${WORKERS:-$(( cores / 3 > 6 ? 6 : (cores / 3 < 1 ? 1 : cores / 3) ))}"
args=("$@")
[[ " $* " == *" --device "* ]] || args=(--device cuda "${args[@]}")
device=cuda
for (( i = 0; i < ${#args[@]} - 1; i++ )); do [[ ${args[i]} == --device ]] && device=${args[i+1]}; done
# Warm-up (and a first diagnosis): torch and, with --device cuda, the CUDA libraries read once into
# the page cache, so the sandboxes that start next do not all read them from disk at once.
python3 -c 'import sys, time; t = time.time(); import torch; i = time.time() - t
cuda = torch.cuda.is_available()
if cuda: torch.zeros(1, device="cuda"); torch.cuda.synchronize()
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (import {i:.1f} s), cuda {cuda}"
      + (f": {torch.cuda.get_device_name(0)}, first kernel after {time.time() - t:.1f} s" if cuda else ""))'
bwrap --version
# One call through the production sandbox on the device: says at once whether it works here.
DEVICE="$device" python3 - <<'EOF'
import os, time, torch
from autograder.checks import Call
from autograder.engine.supervisor import run_calls
from autograder.engine.sandbox import default_sandbox
device, start = os.environ["DEVICE"], time.monotonic()
out = run_calls("import torch\ndef f(x):\n    return 2 * x\n", [Call("f", [torch.ones(3)], device=device, isolated=True)],
                sandbox=default_sandbox(device))[0]
print(f"sandbox smoke test on {device}: ok={out.ok} error={out.error} peak RSS {out.peak_rss_bytes} B, "
      f"CUDA peak {out.cuda_peak_bytes} B ({time.monotonic() - start:.1f} s)", flush=True)
EOF
start=$(date +%s)
pids=()
for assignment in "${assignments[@]}"; do
    python3 -m autograder selfcheck "$assignment" --workers "$workers" --markdown "$out/selfcheck_${assignment//-/_}.md" \
        "${args[@]}" >"$out/selfcheck_${assignment//-/_}.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid"; code=$?
    (( code > status )) && status=$code
done
for assignment in "${assignments[@]}"; do
    echo "=== $assignment"; cat "$out/selfcheck_${assignment//-/_}.log"
done
echo "device_selfcheck: ${assignments[*]} in $(( $(date +%s) - start )) s, exit status $status"
exit "$status"
