"""Grade records: one JSON file per graded submission, and ``replay`` to regrade from it.

A record (:func:`make_record`) holds what the grader decided -- every check of every grade
cell with pass/fail and hint, the points, the time it took -- and what is needed to
reproduce it: the graded code itself (``source``, the student's solution cells laid out
by the instructor's notebook), hashes of the hidden suite and of the public spec module it
tests against, the suite's tolerances, and the environment (torch, CUDA, device,
Python, grader commit, bubblewrap).

Records live in ``COURSE/autograded/.records/ASSIGNMENT/STUDENT.json`` (:func:`record_path`):
a dot folder, so nbgrader's ``autograded/STUDENT/`` globs never see it, and never under
``feedback/``, so a record never reaches a student (it names hidden checks).

:func:`replay` regrades ``record["source"]`` with the current suite in the production
sandbox and lists what changed. Its result mixes two kinds of lines:

- *differences* (no prefix): a check that passes/fails differently or whose hint changed,
  a cell's points, the total -- what a regrade request is about;
- *notes* (prefixed with :data:`NOTE`, see :func:`split_notes`): the suite, spec,
  tolerances, torch/CUDA, device or grader commit differ from the record. They explain a
  difference; they are not one, and alone they leave ``replay_main``'s exit status at 0.

``python -m autograder replay ASSIGNMENT STUDENT [--device cpu|cuda]`` is :func:`replay_main`.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder import options
if TYPE_CHECKING:  # the CLI imports records; torch (checks) only where grading happens
    from autograder.checks import CellGrade

SCHEMA = 1
ROOT = Path(__file__).resolve().parents[1]  # the grader's repository (for grader_commit)
RECORDS = Path("autograded") / ".records"
NOTE = "note: "  # prefix of replay's environment notes (not differences)

REQUIRED_KEYS = ("schema", "assignment", "student", "graded_at", "submission_sha256", "source",
                 "source_sha256", "score", "max_score", "cells", "timings", "reproduce")
# Older records also hold "reproduce.seeds" (always null: no suite ever had seeds); keys beyond these
# are not checked, so those records still read and replay.
REPRODUCE_KEYS = ("suite_module", "suite_sha256", "spec_sha256", "tolerances", "torch", "cuda",
                  "device", "device_name", "python", "grader_commit", "sandbox")
CELL_KEYS = ("function", "points", "max_points", "checks")
CHECK_KEYS = ("name", "kind", "passed", "hint")
LATE_KEYS = ("due", "extension", "submitted", "lateness_s", "penalty", "rule", "raw_score", "final_score",
             "counted")  # of the optional "late" object (autograder/late.py)

_UMASK = os.umask(0)  # read once (setting it is process-wide): written records get the usual modes
os.umask(_UMASK)


class RecordError(ValueError):
    """A grade record that is missing, unreadable or malformed (the message says which file and why)."""


# --- where records live -------------------------------------------------------------------------

def record_path(course_root: Path, assignment: str, student: str) -> Path:
    """``course_root/autograded/.records/<assignment>/<student>.json`` (never under feedback/)."""
    for what, name in (("assignment", assignment), ("student", student)):
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise RecordError(f"{what} {name!r} cannot name a grade record: expected a plain name "
                              "(no path separators)")
    return Path(course_root) / RECORDS / assignment / f"{student}.json"


# --- making a record ----------------------------------------------------------------------------

def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sha256_file(path: str | Path | None) -> str | None:
    """Hash of the file at ``path``; None when there is no such file."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dtypes and other keys as strings, tuples as lists, tensors as
    lists (small ones: tolerances), anything else unknown as its ``repr``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if hasattr(value, "tolist") and callable(value.tolist):  # torch / numpy scalars and arrays
        return jsonable(value.tolist())
    return repr(value)


def suite_file(suite) -> str | None:
    """The file the suite was loaded from (a module, or a wrapper delegating to one)."""
    return getattr(suite, "__file__", None)


def spec_file(assignment: str) -> str | None:
    """The file of the assignment's public spec module ``lec4.homework.<assignment with _>``
    (what its suite tests against), or None when there is none."""
    name = f"lec4.homework.{assignment.replace('-', '_')}"
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package that does not exist
        return None
    return found.origin if found is not None and found.has_location else None


def suite_tolerances(suite) -> dict:
    """The suite's tolerances (``TOLERANCES``, from the assignment's public spec) as JSON; {} if none."""
    return jsonable(getattr(suite, "TOLERANCES", {}))


def device_name(device: str) -> str:
    """The GPU's name for a CUDA device, else the CPU model."""
    if str(device).startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(torch.device(device))
        except Exception as err:  # a broken driver must not lose the record
            return f"unknown CUDA device ({type(err).__name__})"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _git(*args: str) -> str | None:
    """Output of ``git -C ROOT args`` (stripped), or None when git or the repository is missing."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def grader_commit() -> str | None:
    """``git rev-parse HEAD`` of the grader's repository, ``-dirty`` when autograder/ has
    uncommitted changes; None without git or outside a repository."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return None
    status = _git("status", "--porcelain", "--", "autograder")
    return head + ("-dirty" if status else "")


def sandbox_version() -> str | None:
    """``bwrap --version`` (e.g. ``bubblewrap 0.8.0``), or None when bubblewrap is missing."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    try:
        done = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def environment(suite, assignment: str, device: str) -> dict:
    """The ``reproduce`` section of a record: what the grade depended on, besides the source."""
    import torch

    return {
        "suite_module": getattr(suite, "__name__", None),
        "suite_sha256": _sha256_file(suite_file(suite)),
        "spec_sha256": _sha256_file(spec_file(assignment)),
        "tolerances": suite_tolerances(suite),
        "torch": str(torch.__version__),
        "cuda": None if torch.version.cuda is None else str(torch.version.cuda),
        "device": device,
        "device_name": device_name(device),
        "python": platform.python_version(),
        "grader_commit": grader_commit(),
        "sandbox": sandbox_version(),
    }


def cell_entry(cell: CellGrade) -> dict:
    """One grade cell of a record: its function, points and every check (name, kind, verdict, hint)."""
    return {"function": cell.function, "points": float(cell.points), "max_points": float(cell.max_points),
            "checks": [{"name": r.name, "kind": getattr(r, "kind", None), "passed": bool(r.passed),
                        "hint": None if r.hint is None else str(r.hint)} for r in cell.results]}


def make_record(*, assignment: str, student: str | None, suite, source: str, cells: dict[str, CellGrade],
                device: str, seconds: float, submission_sha256: str | None) -> dict:
    """The grade record of one graded submission (see the module docstring; JSON data only)."""
    return {
        "schema": SCHEMA,
        "assignment": assignment,
        "student": student,
        "graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "submission_sha256": submission_sha256,
        "source": source,
        "source_sha256": sha256_text(source),
        "score": round(sum(float(c.points) for c in cells.values()), 2),
        "max_score": round(sum(float(c.max_points) for c in cells.values()), 2),
        "cells": {gid: cell_entry(cell) for gid, cell in cells.items()},
        "timings": {"grading_s": round(float(seconds), 3)},
        "reproduce": environment(suite, assignment, device),
    }


# --- writing and reading ------------------------------------------------------------------------

def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` atomically: a temp file in the same folder, flushed and
    fsync'ed, given ``mode`` (default: 0666 less the umask), then renamed over ``path``
    (``os.replace``). A reader sees the old file or the new one, never half of one; a file
    the writer may not change itself is replaced with only the folder's write permission.
    The one atomic write of the grader (records, the course calendar, autograded notebooks)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, (0o666 & ~_UMASK) if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (:func:`write_atomic`): a reader sees the old
    record or the new one, never half of one. Folders are created."""
    path = Path(path)
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"  # fails before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)


def read_record(path: Path) -> dict:
    """The record at ``path``; RecordError saying what is wrong (missing file, not JSON, another
    schema, missing keys) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"no grade record at {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"grade record {path} could not be read: {err}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"grade record {path} is not valid JSON ({err}); expected the JSON object "
                          "the autograder writes") from None
    validate(record, path)
    return record


def validate(record: Any, path: Path | str = "<record>") -> None:
    """RecordError unless ``record`` has this schema and every key replay relies on."""
    if not isinstance(record, dict):
        raise RecordError(f"grade record {path} holds a JSON {type(record).__name__}, expected an object")
    if record.get("schema") != SCHEMA:
        raise RecordError(f"grade record {path} has schema {record.get('schema')!r}, expected {SCHEMA} "
                          "(written by another version of the autograder: regrade with "
                          "`python -m autograder autograde ASSIGNMENT --student STUDENT --regrade`)")
    problems = [f"{k!r}" for k in REQUIRED_KEYS if k not in record]
    if isinstance(record.get("reproduce"), dict):
        problems += [f"'reproduce.{k}'" for k in REPRODUCE_KEYS if k not in record["reproduce"]]
    elif "reproduce" in record:
        problems.append("'reproduce' (not an object)")
    if isinstance(record.get("cells"), dict):
        for gid, cell in record["cells"].items():
            if not isinstance(cell, dict):
                problems.append(f"'cells.{gid}' (not an object)")
                continue
            problems += [f"'cells.{gid}.{k}'" for k in CELL_KEYS if k not in cell]
            for n, check in enumerate(cell.get("checks") or []):
                if not isinstance(check, dict):
                    problems.append(f"'cells.{gid}.checks[{n}]' (not an object)")
                    continue
                problems += [f"'cells.{gid}.checks[{n}].{k}'" for k in CHECK_KEYS if k not in check]
    elif "cells" in record:
        problems.append("'cells' (not an object)")
    if not isinstance(record.get("source", ""), str):
        problems.append("'source' (not a string)")
    late = record.get("late")  # the late policy's result (autograder/late.py); null without a due date
    if late is not None:
        if not isinstance(late, dict):
            problems.append("'late' (not an object or null)")
        else:
            problems += [f"'late.{k}'" for k in LATE_KEYS if k not in late]
    if problems:
        shown = ", ".join(problems[:8]) + (f" and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise RecordError(f"grade record {path} is incomplete: missing or malformed {shown} "
                          f"(expected a schema {SCHEMA} record)")


# --- replay -------------------------------------------------------------------------------------

def split_notes(lines: list[str]) -> tuple[list[str], list[str]]:
    """``replay``'s lines as (differences, notes); notes carry the :data:`NOTE` prefix."""
    return [x for x in lines if not x.startswith(NOTE)], [x for x in lines if x.startswith(NOTE)]


def regrade(record: dict, device: str | None = None, sandbox="default") -> dict:
    """Grade ``record["source"]`` again with the current suite of its assignment and return the
    new record. ``sandbox="default"`` is the production sandbox for ``device`` (default: the
    record's device); any other value is passed to :func:`autograder.engine.grading.grade`."""
    from autograder.engine.grading import grade
    from autograder.engine.sandbox import default_sandbox
    from autograder.suites import load_suite

    validate(record)
    suite = load_suite(record["assignment"])
    device = device or record["reproduce"]["device"] or "cpu"
    if sandbox == "default":
        sandbox = default_sandbox(device, record["assignment"])  # its own limits, as when it was graded
    started = time.monotonic()
    cells = grade(suite, record["source"], device=device, sandbox=sandbox)
    return make_record(assignment=record["assignment"], student=record["student"], suite=suite,
                       source=record["source"], cells=cells, device=device,
                       seconds=time.monotonic() - started, submission_sha256=record["submission_sha256"])


def _points(value) -> str:
    return f"{float(value):g}"


def _verdict(check: dict) -> str:
    return "passed" if check.get("passed") else "failed"


def _check_lines(gid: str, then: list[dict], now: list[dict]) -> list[str]:
    """Differences between a cell's checks then and now, matched by name (and order among equal names)."""
    def keyed(checks):
        seen: dict[str, int] = {}
        out = {}
        for check in checks:
            n = seen[check["name"]] = seen.get(check["name"], -1) + 1
            out[(check["name"], n)] = check
        return out
    old, new = keyed(then), keyed(now)
    lines = []
    for key in list(old) + [k for k in new if k not in old]:
        label = f"{gid}: check {key[0]!r}" + (f" (#{key[1] + 1})" if key[1] else "")
        a, b = old.get(key), new.get(key)
        if b is None:
            lines.append(f"{label}: in the record ({_verdict(a)}), not run now")
        elif a is None:
            lines.append(f"{label}: not in the record, {_verdict(b)} now" + (f" ({b['hint']})" if b.get("hint") else ""))
        elif bool(a.get("passed")) != bool(b.get("passed")):
            hint = f" (hint now: {b['hint']})" if b.get("hint") else f" (hint then: {a['hint']})" if a.get("hint") else ""
            lines.append(f"{label}: {_verdict(a)} then, {_verdict(b)} now{hint}")
        elif a.get("hint") != b.get("hint"):
            lines.append(f"{label}: hint changed: {a.get('hint')!r} -> {b.get('hint')!r}")
    return lines


def compare(then: dict, now: dict) -> list[str]:
    """The differences between a record and a regrade of it (no notes): per check, per cell, total."""
    lines = []
    old, new = then["cells"], now["cells"]
    for gid in list(old) + [g for g in new if g not in old]:
        a, b = old.get(gid), new.get(gid)
        if b is None:
            lines.append(f"{gid}: in the record ({_points(a['points'])}/{_points(a['max_points'])}), not graded now")
            continue
        if a is None:
            lines.append(f"{gid}: not in the record, {_points(b['points'])}/{_points(b['max_points'])} now")
            continue
        lines += _check_lines(gid, a["checks"], b["checks"])
        if round(float(a["points"]), 2) != round(float(b["points"]), 2) or float(a["max_points"]) != float(b["max_points"]):
            lines.append(f"{gid}: points {_points(a['points'])}/{_points(a['max_points'])} then, "
                         f"{_points(b['points'])}/{_points(b['max_points'])} now")
    if round(float(then["score"]), 2) != round(float(now["score"]), 2) or float(then["max_score"]) != float(now["max_score"]):
        lines.append(f"total: {_points(then['score'])}/{_points(then['max_score'])} then, "
                     f"{_points(now['score'])}/{_points(now['max_score'])} now")
    return lines


NOTED = {  # reproduce key -> what a change of it means
    "suite_sha256": "the hidden suite changed since grading",
    "spec_sha256": "the public spec module changed since grading",
    "tolerances": "the suite's tolerances changed",
    "torch": "another torch version",
    "cuda": "another CUDA version",
    "device": "graded on another device",
    "device_name": "another machine",
    "python": "another Python version",
    "grader_commit": "another grader commit",
    "sandbox": "another bubblewrap",
}


def environment_notes(then: dict, now: dict) -> list[str]:
    """Notes (prefixed with :data:`NOTE`) on what differs between the record's environment and the
    regrade's, and on a record whose source no longer matches its own hash."""
    notes = []
    if sha256_text(then.get("source", "")) != then.get("source_sha256"):
        notes.append(f"{NOTE}the record's source does not match its source_sha256: the record was edited "
                     "after grading, so this replay grades other code than was graded")
    a, b = then["reproduce"], now["reproduce"]
    for key, meaning in NOTED.items():
        if a.get(key) != b.get(key):
            notes.append(f"{NOTE}{meaning}: {key} {_short(a.get(key))!r} then, {_short(b.get(key))!r} now")
    return notes


def _short(value):
    """A hash or commit shortened to 12 characters for a note; other values as they are."""
    return value[:12] + "..." if isinstance(value, str) and len(value) > 40 else value


def replay(record: dict, device: str | None = None, sandbox="default") -> list[str]:
    """Regrade the record's source (production sandbox, the record's device unless ``device``)
    and return the differences, then the environment notes (lines starting with :data:`NOTE`;
    :func:`split_notes` separates them). An empty list: the same grade, in the same setting."""
    now = regrade(record, device, sandbox)
    return compare(record, now) + environment_notes(record, now)


def _no_gpu(device: str) -> str | None:
    """Why ``device`` cannot be used on this node, or None."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    if torch.cuda.is_available():
        return None
    return (f"device {device!r}, but torch {torch.__version__} sees no CUDA device here "
            f"(CUDA_VISIBLE_DEVICES={options.cuda_visible_devices()!r})")


def replay_main(course_root: Path, assignment: str, student: str, device: str | None) -> int:
    """``python -m autograder replay``: regrade a student's recorded submission and report.

    Exit status: 0 the same grade (notes may remain), 1 differences, 2 bad input (no or a bad
    record, unknown assignment, a CUDA device on a node without one, no sandbox).
    """
    from autograder.engine.sandbox import SandboxUnavailable
    from autograder.suites import load_suite

    def fail(message: str) -> int:
        print(f"replay: {message}", file=sys.stderr)
        return 2

    if device is not None and not (device == "cpu" or str(device).startswith("cuda")):
        return fail(f"--device {device!r}: expected cpu or cuda")
    if device and _no_gpu(device):
        return fail(f"--device: {_no_gpu(device)}; run on a GPU node or use --device cpu")
    try:
        load_suite(assignment)
        path = record_path(Path(course_root), assignment, student)
    except ValueError as err:  # RecordError is one
        return fail(str(err))
    if not path.exists():
        return fail(f"no grade record for {student} in {assignment}: looked for {path}; "
                    f"`python -m autograder autograde {assignment} --student {student}` grades the "
                    "submission and writes it")
    try:
        record = read_record(path)
    except RecordError as err:
        return fail(str(err))
    if record["assignment"] != assignment or (record["student"] not in (None, student)):
        return fail(f"grade record {path} is of {record['student']!r} in {record['assignment']!r}, "
                    f"not of {student!r} in {assignment!r}")
    use = device or record["reproduce"]["device"] or "cpu"
    if _no_gpu(use):
        return fail(f"the record was graded on {use!r}: {_no_gpu(use)}; replay on a GPU node, or "
                    "pass --device cpu (tolerances and hints may then differ)")

    print(f"grade record {path}")
    print(f"graded {record['graded_at']} on {record['reproduce']['device']} "
          f"({record['reproduce']['device_name']}) in {float(record['timings']['grading_s']):.1f} s; "
          f"replaying on {use}")
    try:
        now = regrade(record, use)
    except SandboxUnavailable as err:
        return fail(str(err))
    differences, notes = compare(record, now), environment_notes(record, now)
    print(f"score: {_points(record['score'])}/{_points(record['max_score'])} then, "
          f"{_points(now['score'])}/{_points(now['max_score'])} now ({now['timings']['grading_s']:.1f} s)")
    if differences:
        print(f"{len(differences)} difference(s):")
        for line in differences:
            print(f"  {line}")
    else:
        print("no differences: the same checks pass and fail, with the same hints and points")
    for line in notes:
        print(f"  {line}")
    differences += _late_lines(Path(course_root), record)
    return 1 if differences else 0


def _late_lines(course_root: Path, record: dict) -> list[str]:
    """Print the record's late policy result and the one today's calendar gives (no code run);
    a different final score is a difference."""
    from autograder import calendar, late

    then = record.get("late")
    if then is None and not record.get("submission_timestamp"):
        return []
    try:
        cal = calendar.load(course_root)
    except calendar.CalendarError as err:
        print(f"  late: the calendar cannot be read: {err}")
        return [str(err)]
    now = late.apply_to_record(course_root, cal, json.loads(json.dumps(record)),
                               calendar.parse_timestamp(record["submission_timestamp"])
                               if record.get("submission_timestamp") else None,
                               (then or {}).get("on_time"))["late"]
    if then:
        print(f"late: {then['rule']}; final {_points(then['final_score'])}/{_points(record['max_score'])} "
              f"({then['counted']} submission counted)")
    if (then or {}).get("final_score") == (now or {}).get("final_score") and \
            (then or {}).get("counted") == (now or {}).get("counted"):
        print("late: the calendar gives the same final score today")
        return []
    line = (f"late: final {_points(late.final_score(record))} then, "
            f"{_points(now['final_score'] if now else record['score'])} with today's calendar"
            f" ({now['rule'] if now else 'no due date'}): `python -m autograder recompute-late` applies it")
    print(f"  {line}")
    return [line]
