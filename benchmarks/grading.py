"""Grading speed: the hidden suite per submission, and ``autograde`` end to end per submission per worker.

Targets (issue 11): the hidden suite <= 10 s per submission (CPU and GPU); end to end <= 10 s
per submission per worker on the 2-core CPU; no loss of isolation (every submission still gets
its own sandbox, every run of its code a fresh process).

- ``hidden``: what ``TrustedVerdicts`` does for one notebook -- build the suite's checks, grade
  the reference solution's code with :func:`autograder.engine.grading.grade` in the production
  sandbox -- repeated; wall seconds, and the CPU seconds of the grading process itself.
- ``e2e``: a course with ``--class-size`` copies of the reference submission, graded by
  ``python -m autograder autograde --workers W --device D`` (long-lived workers running nbgrader
  in-process, the notebook in a sandboxed kernel without its graded test cells, the hidden
  suite, the gradebook); wall / submissions * workers = seconds per submission per worker,
  the workers' start-up included.

Usage: .venv/bin/python benchmarks/grading.py [--device cpu] [--repeats 3] [--class-size 4] [--workers 2]
       [--skip-e2e] [--out benchmarks/results/grading.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def hidden_suite(assignment: str, device: str, repeats: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of each of ``repeats`` hidden-suite gradings of the reference."""
    from autograder.notebook import submission_source
    from autograder.engine.grading import grade
    from autograder.engine.sandbox import default_sandbox
    from autograder.suites import load_suite

    suite = load_suite(assignment)
    code = submission_source(ROOT / "solutions" / assignment / suite.NOTEBOOK)
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.monotonic(), cpu_seconds()
        cells = grade(suite, code, device=device, sandbox=default_sandbox(device))
        walls.append(time.monotonic() - start)
        cpus.append(cpu_seconds() - cpu)
        lost = {gid: c.points for gid, c in cells.items() if c.points < c.max_points}
        assert not lost, f"the reference lost points: {lost}"
    return walls, cpus


def end_to_end(assignment: str, class_size: int, workers: int, device: str) -> tuple[float, float, float]:
    """(wall / submissions * workers, median and max of the per-submission times ``autograde``
    prints) of ``autograde`` on a class of reference submissions. With every worker busy, a
    submission's own time is its time per worker; the slowest are each worker's first
    (its start-up: imports, building the suite's checks)."""
    from autograder.suites import load_suite

    suite = load_suite(assignment)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}  # options are flags
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        course = Path(tmp) / "course"
        shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
        cli = [sys.executable, "-m", "autograder", "--course-root", str(course)]
        subprocess.run(cli + ["generate", assignment], cwd=ROOT, env=env, check=True, capture_output=True)
        for i in range(class_size):
            folder = course / "submitted" / f"student{i:02d}" / assignment
            folder.mkdir(parents=True)
            shutil.copy(course / "solutions" / assignment / suite.NOTEBOOK, folder / suite.NOTEBOOK)
            (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")
        start = time.monotonic()
        result = subprocess.run(cli + ["autograde", assignment, "--workers", str(workers), "--device", device],
                                cwd=ROOT, env=env,
                                capture_output=True, text=True)
        wall = time.monotonic() - start
        if result.returncode != 0 or result.stdout.count(" graded ") < class_size:
            raise RuntimeError(f"autograde failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    times = [float(line.split()[3].rstrip("s")) for line in result.stdout.splitlines()
             if len(line.split()) >= 4 and line.split()[1] == "graded"]
    return wall / class_size * workers, statistics.median(times), max(times)


def load_note(when: str) -> str:
    """The load average now, and whether the machine was shared (load above 0.5 per core)."""
    load = os.getloadavg()
    busy = load[0] > 0.5 * (os.cpu_count() or 1)
    return (f"load average {when} {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}"
            + (" (shared with other jobs: the times are upper bounds)" if busy else " (idle)"))


def machine(device: str) -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "no GPU used"
    return (f"{platform.machine()} with {os.cpu_count()} CPU cores ({gpu}), Python {platform.python_version()}, "
            f"torch {torch.__version__}; {load_note('at the start')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--class-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grading.md"))
    args = parser.parse_args()
    from autograder.suites import assignments

    every = assignments(ROOT)  # the folders of solutions/ with a suite
    lines = [f"# Grading speed ({args.device})", "",
             f"Command: `.venv/bin/python benchmarks/grading.py --device {args.device} --repeats {args.repeats} "
             f"--class-size {args.class_size} --workers {args.workers}`", "",
             f"**Machine: {machine(args.device)}.** {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "Hidden suite: the reference solution graded by `autograder.engine.grading.grade` in the production sandbox "
             "(one sandbox per submission, every run a fresh forked process; the first run builds the suite's checks, "
             "later runs reuse them as a grading worker does); median and all runs. "
             "Grader CPU = user + system seconds of the grading process itself (building the checks, judging); the "
             "sandboxed runs are not in it (bubblewrap does not hand their usage up).", "",
             "| assignment | hidden suite wall (s), median | runs (s) | grader CPU (s), median | target |",
             "|---|---|---|---|---|"]
    for assignment in every:
        walls, cpus = hidden_suite(assignment, args.device, args.repeats)
        lines.append(f"| {assignment} | {statistics.median(walls):.1f} | {', '.join(f'{w:.1f}' for w in walls)} | "
                     f"{statistics.median(cpus):.1f} | <= 10 s per submission |")
        print(lines[-1], flush=True)
    if not args.skip_e2e:
        lines += ["", f"End to end: `python -m autograder autograde ASSIGNMENT --workers {args.workers}` on "
                  f"{args.class_size} copies of the reference submission (long-lived workers running nbgrader "
                  "in-process; per submission its own sandboxed kernel, without the graded test cells, and its own "
                  "grading sandbox for the hidden suite, side by side; the gradebook; the grade record). "
                  "Wall-based: wall / submissions * workers, the workers' start-up included. Per submission: "
                  "the times autograde prints per student (each worker busy all along, so this is per worker); "
                  "the max is a worker's first submission (imports, building the suite's checks).", "",
                  "| assignment | s per submission per worker (wall-based) | per submission: median | max | target |",
                  "|---|---|---|---|---|"]
        for assignment in every:
            per, median, slowest = end_to_end(assignment, args.class_size, args.workers, args.device)
            lines.append(f"| {assignment} | {per:.1f} | {median:.1f} | {slowest:.1f} | <= 10 s |")
            print(lines[-1], flush=True)
    end = os.getloadavg()
    lines += ["", f"At the end: load average {end[0]:.1f}, {end[1]:.1f}, {end[2]:.1f} (this benchmark's own two "
              "workers count: about 2 of it)."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
