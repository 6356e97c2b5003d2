"""``python -m autograder selfcheck ASSIGNMENT``: prove a grading node before grading a class.

Grades, exactly as ``autograde`` does (the assignment's hidden suite, every call in the
production bubblewrap sandbox, on ``--device``):

- the instructor's solution (``solutions/ASSIGNMENT/``): must get full marks;
- the blank release notebook (``assignments/ASSIGNMENT/``): must get 0 on every graded cell;
- every entry of the assignment's catalog of faulty implementations
  (``autograder/catalog/<assignment with _>/*.py``): the instructor's notebook with one
  solution cell replaced by the entry, which must lose points, and only on the cells that
  depend on that solution cell (the cells of the functions it defines, and of functions
  that call them, found in the reference code).

These are the staff's code, not students': the rows a worker grades share its sandbox (torch
imported once), each row starting afresh in it, every run a fresh process as in ``autograde``.

Prints one row per submission (entry, score, the checks that caught it, seconds) and exits
1 on any miss, 2 when nothing could be checked (unknown assignment, no catalog, ``--device
cuda`` without a GPU, no sandbox). A catalog entry is a solution cell's code with a
docstring saying what is wrong and ``BREAKS = "<grade_id of the solution cell>"``.

This path imports only torch, the standard library and ``lec4``'s needs (numpy, scikit-learn
for hw-conv's digits): a GPU node without Jupyter or nbgrader can run it.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import os
import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from autograder import options
from autograder.engine.callgraph import CallGraph

ROOT = Path(__file__).resolve().parents[1]
CATALOG_ROOT = ROOT / "autograder" / "catalog"
FIXED_ROWS = ("reference", "blank release")  # graded besides the catalog entries


class SelfcheckError(Exception):
    """Nothing can be checked (bad arguments, missing material or tools): exit status 2."""


@dataclass
class Entry:
    """One faulty implementation: ``source`` replaces the solution cell ``breaks``."""

    name: str
    breaks: str
    source: str
    doc: str


@dataclass
class Row:
    """One graded submission of the self-check and its judgement."""

    entry: str
    expected: str
    score: float = 0.0
    max_score: float = 0.0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (grade_id, check, hint) of failed checks
    lost: dict[str, float] = field(default_factory=dict)          # grade_id -> points lost
    seconds: float = 0.0
    problem: str | None = None                                   # None: as expected
    source: str = field(default="", repr=False)                  # the graded code
    cells: dict = field(default_factory=dict, repr=False)        # grade_id -> CellGrade (for grade records)

    @property
    def ok(self) -> bool:
        return self.problem is None


def _shown(path: Path) -> str:
    """``path`` relative to the repo when it is inside it (shorter messages), else as is."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def catalog_folder(assignment: str) -> Path:
    from autograder.suites import module_name

    return CATALOG_ROOT / module_name(assignment)


def load_catalog(assignment: str) -> list[Entry]:
    """Every entry of the assignment's catalog; SelfcheckError if there is none or one is malformed."""
    folder = catalog_folder(assignment)
    paths = sorted(folder.glob("*.py"))
    if not paths:
        raise SelfcheckError(f"no catalog of faulty implementations for {assignment!r}: expected "
                             f"{_shown(folder)}/*.py (one solution cell each, with BREAKS = \"<cell>\")")
    entries = []
    for path in paths:
        source = path.read_text()
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            raise SelfcheckError(f"catalog entry {path.name} is not valid Python: {err}") from None
        breaks = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "BREAKS" for t in node.targets)
                  and isinstance(node.value, ast.Constant)]
        if len(breaks) != 1:
            raise SelfcheckError(f"catalog entry {path.name} must assign BREAKS = \"<grade_id of a solution cell>\" once")
        entries.append(Entry(path.stem, breaks[0], source, ast.get_docstring(tree) or ""))
    return entries


def _solution_cells(notebook) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def defined_names(code: str) -> set[str]:
    """Functions and classes defined at the top level of ``code``."""
    return {n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def affected_cells(suite, reference_code: str, names: set[str]) -> set[str]:
    """Grade cells whose function is one of ``names`` or reaches one of them in ``reference_code``
    (the engine's call graph, :mod:`autograder.engine.callgraph`: the rule the supervisor follows
    too when it skips the callers of a hung function)."""
    graph = CallGraph(reference_code)
    return {gid for gid, (function, _) in suite.GRADE_CELLS.items() if graph.reaches(function, names)}


def entry_scopes(assignment: str, entries: list[Entry], course_root: Path = ROOT) -> dict[str, list[str]]:
    """For each catalog entry, the grade cells its solution cell can affect (:func:`affected_cells`)."""
    from autograder.notebook import read_notebook, submission_source
    from autograder.suites import load_suite

    suite = load_suite(assignment)
    reference = read_notebook(Path(course_root) / "solutions" / assignment / suite.NOTEBOOK)
    code, solutions = submission_source(reference), _solution_cells(reference)
    return {e.name: sorted(affected_cells(suite, code, defined_names(solutions[e.breaks].source))) for e in entries}


def with_cell(notebook, grade_id: str, source: str):
    """A copy of ``notebook`` whose solution cell ``grade_id`` holds ``source``."""
    import copy

    changed = copy.deepcopy(notebook)
    _solution_cells(changed)[grade_id]["source"] = source
    return changed


def _judge(row: Row, cells: dict, kind: str, affected: set[str] | None = None) -> None:
    """Fill ``row`` from the graded cells and say what is wrong, if anything."""
    row.score = round(sum(c.points for c in cells.values()), 2)
    row.max_score = sum(c.max_points for c in cells.values())
    row.failed = [(gid, r.name, r.hint) for gid, c in cells.items() for r in c.results if not r.passed]
    row.lost = {gid: round(c.max_points - c.points, 2) for gid, c in cells.items() if c.points < c.max_points}
    if kind == "reference" and row.lost:
        row.problem = f"the reference lost points: {_names(row.failed)}"
    elif kind == "blank":
        kept = {gid: c.points for gid, c in cells.items() if c.points > 0}
        if kept:
            row.problem = f"the blank notebook got points on {kept}"
    elif kind == "entry":
        if not set(row.lost) & affected:
            row.problem = "not caught: no points lost on " + ", ".join(sorted(affected))
        elif set(row.lost) - affected:
            row.problem = f"lost points on unrelated cells {sorted(set(row.lost) - affected)}"


def _names(failed: list[tuple[str, str, str]], width: int = 70) -> str:
    """The first failed check (``grade_id: name``, shortened) and how many more failed."""
    first = f"{failed[0][0]}: {failed[0][1]}"
    first = first if len(first) <= width else first[:width - 3] + "..."
    return first + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")


def check_device(device: str) -> str:
    """``device`` checked against this node; SelfcheckError when CUDA is asked for but absent."""
    import torch

    if device not in ("cpu", "cuda"):
        raise SelfcheckError(f"--device {device!r}: expected cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise SelfcheckError(f"--device cuda, but torch {torch.__version__} sees no CUDA device "
                             f"(CUDA_VISIBLE_DEVICES={options.cuda_visible_devices()!r}); "
                             "run on the GPU node or use --device cpu")
    return device


def run_selfcheck(assignment: str, device: str, workers: int = 1, only: list[str] | None = None,
                  course_root: Path = ROOT, progress=None) -> list[Row]:
    """Grade the reference, the blank release and the catalog (see module docstring); one Row each.

    ``only``: the rows to run, by name ("reference", "blank release", catalog entries); default
    all. ``progress(row)`` is called as each row finishes.
    """
    from autograder.notebook import read_notebook, submission_source
    from autograder.engine.grading import grade, suite_checks
    from autograder.engine.supervisor import launcher_for
    from autograder.engine.sandbox import SandboxUnavailable, default_sandbox
    from autograder.suites import NoSuite, assignments, load_suite

    try:
        suite = load_suite(assignment)
    except NoSuite as err:
        raise SelfcheckError(f"{err} (assignments with a suite: {', '.join(assignments(course_root))})") from None
    except ValueError as err:  # a suite that is there but broken
        raise SelfcheckError(str(err)) from None
    device = check_device(device)
    entries = load_catalog(assignment)
    if only:
        unknown = sorted(set(only) - {e.name for e in entries} - set(FIXED_ROWS))
        if unknown:
            raise SelfcheckError(f"no catalog entries {unknown} in {_shown(catalog_folder(assignment))}")
    source_nb = course_root / "solutions" / assignment / suite.NOTEBOOK
    release_nb = course_root / "assignments" / assignment / suite.NOTEBOOK
    for path, what in ((source_nb, "instructor notebook"), (release_nb, "release notebook (run generate)")):
        if not path.exists():
            raise SelfcheckError(f"{what} {path} not found")
    try:
        sandbox = default_sandbox(device, assignment)
    except SandboxUnavailable as err:
        raise SelfcheckError(str(err)) from None

    reference = read_notebook(source_nb)
    reference_code = submission_source(reference)
    solutions = _solution_cells(reference)
    for entry in entries:
        if entry.breaks not in solutions:
            raise SelfcheckError(f"catalog entry {entry.name}: BREAKS = {entry.breaks!r} is not a solution cell "
                                 f"of {suite.NOTEBOOK} ({', '.join(solutions)})")
    suite_checks(suite, device)  # built once, before the threads share them (grade() reuses them)
    env = options.grading_threads(workers)

    jobs = [(FIXED_ROWS[0], "full marks", "reference", lambda: reference_code, None),
            (FIXED_ROWS[1], "0 on every graded cell", "blank",
             lambda: submission_source(reference, release_nb), None)]
    jobs = [job for job in jobs if not only or job[0] in only]
    for entry in entries:
        if only and entry.name not in only:
            continue
        affected = affected_cells(suite, reference_code, defined_names(solutions[entry.breaks].source))
        jobs.append((entry.name, f"loses on {entry.breaks} only", "entry",
                     lambda e=entry: submission_source(reference, with_cell(reference, e.breaks, e.source)), affected))

    # One sandbox per worker thread for all its rows: they are the staff's code, so they need no
    # isolation from each other, and torch is imported once per sandbox, not once per row (seconds
    # of CPU each). Each row starts afresh in it (grade() calls next_submission); every run is a
    # fresh process.
    mine, opened = threading.local(), []

    def launcher():
        if getattr(mine, "launcher", None) is None:
            mine.launcher = launcher_for(sandbox, env)
            opened.append(mine.launcher)
        return mine.launcher

    def run(job) -> Row:
        name, expected, kind, code, affected = job
        row = Row(name, expected)
        start = time.monotonic()
        try:
            row.source = code()
            row.cells = grade(suite, row.source, device=device, launcher=launcher())
            _judge(row, row.cells, kind, affected)
        except Exception as err:  # a bug of ours or of the node: a miss, reported, never a crash
            row.problem = f"grading failed: {type(err).__name__}: {err}"
        row.seconds = time.monotonic() - start
        if progress:
            progress(row)
        return row

    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            return list(pool.map(run, jobs))
    finally:
        for each in opened:
            each.close()


def table(rows: list[Row], markdown: bool = False) -> str:
    """The rows as a text (or markdown) table: entry, expected, score, caught on, seconds, verdict."""
    header = ["entry", "expected", "score", "caught on", "seconds", "verdict"]
    body = [[r.entry, r.expected, f"{r.score:g}/{r.max_score:g}",
             _names(r.failed) if r.failed else "-", f"{r.seconds:.1f}", "ok" if r.ok else f"MISS: {r.problem}"]
            for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |"
                                  for line in body]) + "\n"
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header) - 1)]
    fmt = lambda line: "  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1]
    return "\n".join([fmt(header)] + [fmt(line) for line in body]) + "\n"


def describe_node(device: str) -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "no GPU used"
    return (f"{platform.node()}: {os.cpu_count()} CPU cores, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``python -m autograder selfcheck --help``)."""
    parser.add_argument("assignment")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when torch sees a GPU, else cpu")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="submissions graded at once (default: the cores, at most 8)")
    parser.add_argument("--only", action="append",
                        help="only this row: a catalog entry, 'reference' or 'blank release' (repeatable)")
    parser.add_argument("--markdown", help="also write the table, with the node's description, to this file")
    parser.add_argument("--signatures", help="also write each catalog entry's failed checks (its signature, "
                        "autograder/diagnosis.py) to this JSON file; needs the whole catalog and no miss")


def run(args: argparse.Namespace, course_root: Path = ROOT) -> int:
    """Run the self-check the parsed ``args`` ask for; print the table; return the exit status."""
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.workers < 1:
        print(f"selfcheck: --workers {args.workers}: expected at least 1", file=sys.stderr)
        return 2
    started = time.monotonic()
    done = []

    def progress(row):
        done.append(row)
        verdict = "ok" if row.ok else f"MISS: {row.problem[:300]}"
        print(f"[{len(done)}] {row.entry}: {verdict} ({row.seconds:.0f} s)", file=sys.stderr, flush=True)
    try:
        rows = run_selfcheck(args.assignment, device, args.workers, args.only, course_root, progress=progress)
    except SelfcheckError as err:
        print(f"selfcheck: {err}", file=sys.stderr)
        return 2
    wall = time.monotonic() - started
    misses = [r for r in rows if not r.ok]
    summary = (f"{args.assignment} on {device}: {len(rows) - len(misses)}/{len(rows)} as expected, "
               f"{len(misses)} miss(es); {wall:.0f} s wall with {args.workers} worker(s)")
    print(table(rows) + "\n" + summary, flush=True)
    if getattr(args, "signatures", None):
        from autograder import diagnosis

        if misses or args.only:
            print("selfcheck: --signatures not written: it needs the whole catalog graded with no miss", file=sys.stderr)
            return 1 if misses else 2
        diagnosis.write_signatures(Path(args.signatures), diagnosis.measured_signatures(
            args.assignment, rows, load_catalog(args.assignment)))
    if args.markdown:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        Path(args.markdown).write_text(f"# selfcheck {args.assignment} --device {device}\n\n"
                                       f"Run {when}. Node: {describe_node(device)}.\n\n"
                                       f"{table(rows, markdown=True)}\n{summary}\n")
    return 1 if misses else 0
