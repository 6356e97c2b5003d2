"""Time ``python -m autograder similarity`` (autograder.similarity.analyse) for a class of N submissions.

    .venv/bin/python benchmarks/similarity.py [--students 400] [--out benchmarks/results/similarity.md]

The class is synthetic but made of real code: each student's graded functions are drawn from the
four independently written implementations of tests/fixtures/similarity/ (and the reference), each
with its names renamed per student (tests/similarity_helpers.disguise). With only five versions
of each function, most pairs share whole functions, so nearly every pair goes through copydetect's
full comparison: a worst case for the pairwise step (a real class has far fewer candidate pairs).
Times: building the boilerplate fingerprints (release notebook + lec4) once, fingerprinting every
submission, comparing every pair; the load average at both ends is written with them.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from similarity_helpers import FUNCTIONS, disguise, impl, submission  # noqa: E402

from autograder import similarity  # noqa: E402


def make_class(assignment: str, n: int, seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    functions = FUNCTIONS[assignment]
    sources = {}
    for i in range(n):
        code = {}
        for f in functions:
            letter = rng.choice("abcde")
            text = impl(f, letter) if letter != "e" else None
            if text is not None:
                code[f] = disguise(text, {f}).replace("var_", f"s{i}_")
        sources[f"student{i:03d}"] = submission(assignment, code)
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=400)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for assignment in FUNCTIONS:
        load0 = os.getloadavg()[0]
        sources = make_class(assignment, args.students)
        started = time.perf_counter()
        similarity._boilerplate(assignment, ROOT)
        boiler = time.perf_counter() - started
        started = time.perf_counter()
        result = similarity.analyse(assignment, sources)
        total = time.perf_counter() - started
        pairs = args.students * (args.students - 1) // 2
        rows.append((assignment, args.students, pairs, len(result["flagged"]), boiler, total, load0, os.getloadavg()[0]))
        print(f"{assignment}: {args.students} submissions, {pairs} pairs, {len(result['flagged'])} flagged; "
              f"boilerplate {boiler:.1f} s, fingerprints + all pairs {total:.1f} s", flush=True)
    import torch

    lines = [f"# similarity: {args.students} submissions per assignment",
             "",
             f"Measured {datetime.date.today().isoformat()} on {platform.node()}: {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}, torch {torch.__version__}, copydetect "
             f"{__import__('importlib.metadata').metadata.version('copydetect')}; `benchmarks/similarity.py "
             f"--students {args.students}`. Class: see the script's docstring (a worst case: most pairs share whole "
             "functions). One process, single-threaded.",
             "",
             "| assignment | submissions | pairs | flagged | boilerplate fingerprints (s) | "
             "fingerprints + all pairs (s) | load avg start / end |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {a} | {n} | {p} | {f} | {b:.1f} | {t:.1f} | {l0:.1f} / {l1:.1f} |" for a, n, p, f, b, t, l0, l1 in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
