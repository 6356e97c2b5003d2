#!/usr/bin/env bash
# Self-check of the grading pipeline on a (GPU) grading node: `python -m autograder selfcheck`
# for both assignments, in the production bubblewrap sandbox, both at once.
#
#   tools/device_selfcheck.sh [selfcheck options...]        (default: --device cuda)
#
# Needs only python3 with torch (+ numpy, scikit-learn for lec4), prlimit, setpriv and
# bubblewrap: the node's, else .device/bwrap from tools/device_prepare.sh. No nbgrader, no
# Jupyter, no install: the repo's autograder/ and src/ (lec4) go on PYTHONPATH.
# Writes selfcheck_<assignment>.md (tables for benchmarks/results/) and .log files to
# $OUT (else ./selfcheck-out). Exit status: 0 both passed, 1 a miss, 2 could not check.
# WORKERS: submissions graded at once per assignment (default: half the cores, at most 8).
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
cores=$(nproc)
workers="${WORKERS:-$(( cores / 2 > 8 ? 8 : (cores / 2 < 1 ? 1 : cores / 2) ))}"
args=("$@")
[[ " $* " == *" --device "* ]] || args=(--device cuda "${args[@]}")
python3 -c 'import sys, torch; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.cuda.is_available()}")'
bwrap --version
start=$(date +%s)
pids=()
for assignment in hw-attention hw-conv; do
    python3 -m autograder selfcheck "$assignment" --workers "$workers" --markdown "$out/selfcheck_${assignment//-/_}.md" \
        "${args[@]}" >"$out/selfcheck_${assignment//-/_}.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid"; code=$?
    (( code > status )) && status=$code
done
for assignment in hw-attention hw-conv; do
    echo "=== $assignment"; cat "$out/selfcheck_${assignment//-/_}.log"
done
echo "device_selfcheck: both assignments in $(( $(date +%s) - start )) s, exit status $status"
exit "$status"
