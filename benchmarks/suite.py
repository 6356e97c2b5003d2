"""How long the whole proof takes: ``.ci/run`` from a fresh clone, timed, its table written.

Clones this checkout's HEAD (committed work only, as CI sees it) into a temporary folder, removes
torch's compiler caches (:func:`clear_compiler_caches`: a CI machine has none), runs
``.ci/run`` there (venv, pinned install, Debian packages the tests drive, npm proxy, ``make test``),
and writes ``benchmarks/results/suite.md``: the date, the machine, the load around the run, the
commit, the wall time of ``.ci/run`` and of pytest, the pytest summary line, and the slowest tests
(``make test`` passes ``--durations``), and the machine's speed before and after (:func:`cpu_probe`). The
README's suite figures come from that table.
It also writes ``benchmarks/results/test_files.json``, each test file's seconds (its tests' phases
summed, from the same durations): tests/conftest.py starts the longest files first.

Usage (root, as CI runs): .venv/bin/python benchmarks/suite.py [--keep] [--out benchmarks/results/suite.md]
Exit status: that of ``.ci/run``; the table is written either way (a failed run says so).
"""
from __future__ import annotations

import argparse
import json
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=+ (.*\b(?:passed|failed|error)\b.*) in ([\d.]+)s", re.M)
DURATION = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)", re.M)
FILES = ROOT / "benchmarks" / "results" / "test_files.json"


def file_seconds(log: str) -> dict[str, int]:
    """{test file: seconds of its phases} from pytest's ``--durations`` lines in ``log``, longest first
    (phases under ``make test``'s ``--durations-min`` are not listed: a lower bound per file)."""
    total: dict[str, float] = {}
    for s, _, test in DURATION.findall(log):
        name = test.split("::")[0]
        total[name] = total.get(name, 0) + float(s)
    return {name: round(s) for name, s in sorted(total.items(), key=lambda kv: -kv[1])}


def cpu_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU since boot, from /proc/stat (idle and iowait not busy)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


# Two fixed one-thread workloads, a second or two each: compute in the caches (float64 matmuls of
# 256 x 256, a Python loop) and memory traffic (20 passes over 256 MiB, read and written).
PROBE = """import sys, time, torch
torch.set_num_threads(1)
start = time.perf_counter()
if sys.argv[1] == "compute":
    torch.manual_seed(0)
    a = torch.randn(256, 256, dtype=torch.float64)
    for _ in range(1500):
        a = torch.tanh(a @ a / 16)
    sum(i * i for i in range(10_000_000))
else:
    a, b = torch.ones(32 * 2**20, dtype=torch.float64), torch.empty(32 * 2**20, dtype=torch.float64)
    start = time.perf_counter()
    for _ in range(20):
        torch.mul(a, 1.0000001, out=b)
        a, b = b, a
print(time.perf_counter() - start)
"""


def cpu_probe() -> str:
    """Seconds of :data:`PROBE`'s two workloads (best of 3 each), "compute / memory": the machine's speed
    at that moment. This project's machines are shared hosts whose speed drifts within the hour
    (2026-12-05, the book's CNN chapter: 28-29 s at 06:40 beside a busy core, 34-41 s from 07:27 to
    07:46 alone, while the compute workload stayed within 4%); the probe before and after a run tells
    such a moment apart."""
    def best(kind: str) -> float:
        return min(float(subprocess.run([sys.executable, "-c", PROBE, kind], capture_output=True, text=True,
                                        check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout)
                   for _ in range(3))
    return f"{best('compute'):.2f} s / {best('memory'):.2f} s"


COMPILER_CACHES = "torchinductor_*"  # torch.compile's default cache folders, one per user


def clear_compiler_caches() -> list[str]:
    """Remove torch's compiler caches (``/tmp/torchinductor_<user>``, :data:`COMPILER_CACHES`) and
    return the folders removed: a CI machine starts without them, and the book's FlexAttention
    cell compiles from scratch there, once for the book build (root) and once for the launch
    test's student (2026-12-05: the modern_transformers chapter took 30 s cold, 16 s warm)."""
    removed = sorted(str(path) for path in Path(tempfile.gettempdir()).glob(COMPILER_CACHES))
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "suite.md")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its log is ci.log)")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    clone = Path(tempfile.mkdtemp(prefix="lec4-ci-")) / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    log_path = clone.parent / "ci.log"
    cleared = clear_compiler_caches()
    probe_before = cpu_probe()
    load_before, start, ticks_before = os.getloadavg()[0], time.monotonic(), cpu_ticks()
    with open(log_path, "w") as log:
        rc = subprocess.run([str(clone / ".ci" / "run")], cwd=clone, stdout=log, stderr=subprocess.STDOUT).returncode
    wall, load_after, ticks_after = time.monotonic() - start, os.getloadavg()[0], cpu_ticks()
    busy = (ticks_after[0] - ticks_before[0]) / max(1, ticks_after[1] - ticks_before[1])
    probe_after = cpu_probe()
    text = log_path.read_text(errors="replace")
    summary = SUMMARY.findall(text)
    line, pytest_s = (summary[-1][0], float(summary[-1][1])) if summary else ("(no pytest summary: see the log)", float("nan"))
    slowest = sorted(((float(s), kind, test) for s, kind, test in DURATION.findall(text)), reverse=True)[:15]
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| {test} | {kind} | {s:.0f} |" for s, kind, test in slowest)
    table = f"""# The whole suite: `.ci/run` from a fresh clone

Run {now} by `benchmarks/suite.py` on commit `{commit}`, as root, on {os.cpu_count()} cores ({cpu}),
{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, Python {platform.python_version()}.
Load average (1 min) before {load_before:.1f}, after {load_after:.1f}{' (the machine was not idle: an upper bound)' if load_before > 1.5 else ''}.
torch's compiler caches removed first, as on a fresh CI machine: {', '.join(cleared) or 'none there'}.

| what | measured |
|---|---|
| `.ci/run` exit status | {rc} |
| `.ci/run` wall time (venv, pinned install, system packages, npm proxy, `make test`) | {wall / 60:.1f} min |
| CPUs busy during `.ci/run` (/proc/stat: all processes, not idle or waiting for I/O) | {busy:.0%} of {os.cpu_count()} |
| pytest (`make test`: `-n 2 --dist loadfile`, longest files first) | {pytest_s / 60:.1f} min: {line} |
| the machine's speed, compute / memory (`benchmarks/suite.py`'s `PROBE`: one thread, best of 3) | before: {probe_before}; after: {probe_after} |

Slowest test phases (pytest `--durations`):

| test | phase | s |
|---|---|---|
{rows}
"""
    args.out.write_text(table)
    if summary:
        FILES.write_text(json.dumps(file_seconds(text), indent=1) + "\n")
    print(table)
    if not args.keep and rc == 0:
        shutil.rmtree(clone.parent, ignore_errors=True)
    else:
        print(f"clone and log kept: {clone.parent}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
