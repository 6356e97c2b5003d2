"""Time ``python -m autograder similarity`` (autograder.similarity.analyse) for a class of N submissions.

    .venv/bin/python benchmarks/similarity.py [--students 400] [--out benchmarks/results/similarity.md]

The class is synthetic but made of real code: each student's graded functions are drawn from the
four independently written implementations of tests/fixtures/similarity/ (or left as the starter),
each with its names renamed per student (tests/similarity_helpers.disguise).

- ``--mode typical``: most lines of a student's code also get a constant of its own (``+ 0 * 7391``),
  and ``--copies`` students copy another (renamed). The constants do not reach every line (headers,
  multi-line expressions), so short functions drawn from the same fixture still match: the table's
  "flagged" column shows how many pairs still share a function, far more than a real class;
- ``--mode worst``: no such constants: with five versions of each function most pairs share whole
  functions, so about half of all pairs are compared exactly (and flagged).
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


def _load_helpers():
    """tests/similarity_helpers.py (the test suite's submissions and disguises), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("similarity_helpers", ROOT / "tests" / "similarity_helpers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_helpers = _load_helpers()
FUNCTIONS, disguise, impl, submission = _helpers.FUNCTIONS, _helpers.disguise, _helpers.impl, _helpers.submission

from autograder import similarity  # noqa: E402


def _own_constants(code: str, rng: random.Random) -> str:
    """Each assignment line gets ``+ 0 * <random int>`` (same values, different fingerprints)."""
    out = []
    for line in code.splitlines():
        stripped = line.rstrip()
        if ("=" in stripped or stripped.lstrip().startswith("return ")) and not stripped.endswith((":", ",", "(", "[", "\\")) and "==" not in stripped \
                and not stripped.lstrip().startswith(("def ", "#", '"')) and stripped.count("(") == stripped.count(")") \
                and stripped.count("[") == stripped.count("]") and "," not in stripped.split("=")[0]:
            stripped += f" + 0 * {rng.randrange(10**6)}"
        out.append(stripped)
    return "\n".join(out) + "\n"


def make_class(assignment: str, n: int, mode: str, copies: int, seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    functions = FUNCTIONS[assignment]
    sources = {}
    for i in range(n - copies):
        code = {}
        for f in functions:
            letter = rng.choice("abcde")
            if letter != "e":
                text = disguise(impl(f, letter), {f}).replace("var_", f"s{i}_")
                code[f] = _own_constants(text, rng) if mode == "typical" else text
        sources[f"student{i:03d}"] = submission(assignment, code)
    originals = sorted(sources)
    for j in range(copies):  # disguised copies of other students
        original = sources[originals[j]]
        sources[f"copier{j:03d}"] = original.replace(f"s{j}_", f"c{j}_")
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=400)
    parser.add_argument("--out", type=Path, default=None, help="results table (rows are appended)")
    parser.add_argument("--mode", choices=("typical", "worst"), default="typical")
    parser.add_argument("--copies", type=int, default=10, help="typical mode: how many students copy another")
    args = parser.parse_args()
    rows = []
    for assignment in FUNCTIONS:
        load0 = os.getloadavg()[0]
        sources = make_class(assignment, args.students, args.mode, args.copies if args.mode == "typical" else 0)
        started = time.perf_counter()
        similarity._boilerplate(assignment, ROOT)
        boiler = time.perf_counter() - started
        started = time.perf_counter()
        result = similarity.analyse(assignment, sources)
        total = time.perf_counter() - started
        pairs = args.students * (args.students - 1) // 2
        row = (assignment, args.mode, args.students, pairs, result["compared_exactly"], len(result["flagged"]), boiler,
               total, load0, os.getloadavg()[0])
        print(f"{assignment} ({args.mode}): {args.students} submissions, {pairs} pairs, {row[4]} compared exactly, "
              f"{row[5]} flagged; boilerplate {boiler:.1f} s, fingerprints + all pairs {total:.1f} s", flush=True)
        rows.append(row)
        if args.out:
            _append(args.out, row)
    print("\n".join(_line(r) for r in rows))


HEADER = """# similarity: time per class

`benchmarks/similarity.py` (see its docstring for the two kinds of class); one process, single-threaded;
times in seconds. Boilerplate: fingerprints of the release notebook and lec4 (once per run).

| assignment | class | submissions | pairs | compared exactly | flagged | boilerplate (s) | fingerprints + all pairs (s) | load avg start / end | date, machine |
|---|---|---|---|---|---|---|---|---|---|
"""


def _line(row) -> str:
    import importlib.metadata

    a, mode, n, pairs, exact, flagged, boiler, total, l0, l1 = row
    machine = (f"{datetime.date.today().isoformat()}, {platform.node()}: {os.cpu_count()} cores, Python "
               f"{platform.python_version()}, copydetect {importlib.metadata.version('copydetect')}")
    return (f"| {a} | {mode} | {n} | {pairs} | {exact} | {flagged} | {boiler:.1f} | {total:.1f} | "
            f"{l0:.1f} / {l1:.1f} | {machine} |")


def _append(out: Path, row) -> None:
    text = out.read_text() if out.exists() else HEADER
    out.write_text(text + _line(row) + "\n")

if __name__ == "__main__":
    main()
