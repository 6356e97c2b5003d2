"""``python -m autograder export --format canvas --roster ROSTER.csv [--to FILE]``: Canvas's gradebook CSV.

Canvas imports a gradebook CSV (Grades > Import) whose first columns identify the student --
``Student`` (the name, "Last, First"), ``ID`` (Canvas's user id), ``SIS User ID``, ``SIS Login
ID``, ``Section`` -- followed by one column per assignment; its export puts a ``Points Possible``
row right under the header (the student columns blank, each assignment's maximum), which the
import reads too. An assignment column whose header is not an existing assignment's
``Name (id)`` creates a new assignment of that name.

The **roster** is Canvas's own gradebook export (or any CSV with those five columns): the
names, Canvas ids, SIS ids and sections come from it, never from the grader. A grader's
student id (the JupyterHub / nbgrader user name) is found in the roster column ``--match``
(default ``SIS Login ID``).

Scores come from the grade records only (``autograded/.records/ASSIGNMENT/*.json``): the
late-adjusted ``late.final_score`` when a record carries H21's ``late`` object, else ``score``.
Nothing is dropped silently (:func:`build`'s ``problems``):

- a roster student with no grade record gets 0 and is listed;
- a grade record whose student is not in the roster is not exported (Canvas could not place
  it) and is listed; the exit status is then 1;
- a student id that appears twice in the roster is an error (exit 2, nothing written): which
  row should get the grade is ambiguous.

``--per-task`` adds one column per graded function (``ASSIGNMENT: function``), which Canvas
imports as extra assignments. ``--name ASSIGNMENT=HEADER`` sets the column header, e.g. the
existing Canvas assignment's ``HW 1: attention (123456)``.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autograder import records

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")  # Canvas's student columns, in order
POINTS_POSSIBLE = "Points Possible"


class ExportError(ValueError):
    """The export cannot be made (bad roster, duplicate ids, no records): exit status 2."""


@dataclass
class Export:
    header: list[str]
    rows: list[list[str]]              # the Points Possible row first, then one per roster student
    problems: list[str] = field(default_factory=list)   # reported, each a full sentence
    blocking: bool = False             # a problem that must make the command exit 1

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buf.getvalue()


def read_roster(path: Path, match: str) -> tuple[list[dict], dict[str, dict]]:
    """The roster's rows and {grader id: row}; ExportError for a missing column or duplicate ids."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ExportError(f"roster {path} could not be read: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in IDENTITY if c not in columns]
    if missing:
        raise ExportError(f"roster {path} lacks the column(s) {missing}; expected Canvas's gradebook export "
                          f"with the columns {list(IDENTITY)} (found {columns})")
    if match not in IDENTITY:
        raise ExportError(f"--match {match!r}: expected one of {list(IDENTITY)}")
    rows = []
    for row in reader:
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        if row.get("Student", "").strip().lower() in (POINTS_POSSIBLE.lower(), "test student", "student, test"):
            continue  # the export's Points Possible row and Canvas's "Test Student"
        rows.append(row)
    by_id: dict[str, dict] = {}
    duplicates: dict[str, int] = {}
    blank = [n + 2 for n, r in enumerate(rows) if not r[match]]
    for row in rows:
        if row[match]:
            if row[match] in by_id:
                duplicates[row[match]] = duplicates.get(row[match], 1) + 1
            by_id[row[match]] = row
    if duplicates:
        raise ExportError(f"roster {path}: {match} not unique: " + ", ".join(
            f"{k!r} ({n} rows)" for k, n in sorted(duplicates.items())) + "; fix the roster (which row gets the grade?)")
    if blank:
        raise ExportError(f"roster {path}: rows {blank} have an empty {match!r}; every student needs one")
    return rows, by_id


def _final(record: dict) -> float:
    """The score that counts: H21's late-policy final score when the record has one (one rule, autograder/late.py)."""
    from autograder.late import final_score

    return final_score(record)


def load_scores(course_root: Path, assignment: str) -> tuple[dict[str, dict], list[str]]:
    """{student: record} of ``assignment`` and the problems met (unreadable records)."""
    folder = Path(course_root) / records.RECORDS / assignment
    found, problems = {}, []
    for path in sorted(folder.glob("*.json")):
        try:
            found[path.stem] = records.read_record(path)
        except records.RecordError as err:
            problems.append(f"{assignment}: {err}; that student gets 0 until it is regraded")
    return found, problems


def build(course_root: Path, roster: Path, assignments: list[str] | None = None, match: str = "SIS Login ID",
          per_task: bool = False, names: dict[str, str] | None = None) -> Export:
    """The Canvas CSV (see module doc)."""
    course_root = Path(course_root)
    names = names or {}
    rows, by_id = read_roster(roster, match)
    base = course_root / records.RECORDS
    if not assignments:
        assignments = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if not assignments:
        raise ExportError(f"no grade records under {base}: run `python -m autograder autograde ASSIGNMENT` first")
    unknown = [a for a in names if a not in assignments]
    if unknown:
        raise ExportError(f"--name for {unknown}, which is not exported (exported: {assignments})")
    header, points, problems, blocking = list(IDENTITY), [POINTS_POSSIBLE, "", "", "", ""], [], False
    columns = []  # (assignment, task or None)
    loaded = {}
    for a in assignments:
        recs, bad = load_scores(course_root, a)
        problems += bad
        if not recs and not bad:
            raise ExportError(f"no grade records for {a!r} in {base / a}")
        loaded[a] = recs
        first = recs[min(recs)] if recs else None
        header.append(names.get(a, a))
        points.append(f"{float(first['max_score']):g}" if first else "")
        columns.append((a, None))
        if per_task and first:
            tasks: dict[str, float] = {}
            for cell in first["cells"].values():
                tasks[cell["function"]] = tasks.get(cell["function"], 0.0) + float(cell["max_points"])
            for task, top in tasks.items():
                header.append(f"{names.get(a, a)}: {task}")
                points.append(f"{top:g}")
                columns.append((a, task))
        strangers = sorted(set(recs) - set(by_id))
        if strangers:
            blocking = True
            problems.append(f"{a}: {len(strangers)} graded student(s) not in the roster (by {match}), NOT exported: "
                            + ", ".join(strangers))
        absent = sorted(s for s in by_id if s not in recs)
        if absent:
            problems.append(f"{a}: {len(absent)} roster student(s) without a grade record get 0: " + ", ".join(absent))
    out = [points]
    for row in rows:
        line = [row[c] for c in IDENTITY]
        for a, task in columns:
            rec = loaded[a].get(row[match])
            if rec is None:
                line.append("0")
            elif task is None:
                line.append(f"{_final(rec):g}")
            else:
                line.append(f"{sum(float(c['points']) for c in rec['cells'].values() if c['function'] == task):g}")
        out.append(line)
    return Export(header, out, problems, blocking)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``export`` that only ``--format canvas`` reads."""
    parser.add_argument("--roster", help="--format canvas: Canvas's gradebook export (Student, ID, SIS User ID, "
                        "SIS Login ID, Section)")
    parser.add_argument("--assignment", action="append", help="--format canvas: only this assignment (repeatable; "
                        "default: every assignment with grade records)")
    parser.add_argument("--match", default="SIS Login ID", help="--format canvas: the roster column that holds the "
                        "grader's student id (default: SIS Login ID)")
    parser.add_argument("--per-task", action="store_true", help="--format canvas: one more column per graded function")
    parser.add_argument("--name", action="append", default=[], metavar="ASSIGNMENT=HEADER",
                        help="--format canvas: the column header of an assignment, e.g. 'hw-attention=HW 1 (123456)'")


def run(args: argparse.Namespace, course_root: Path) -> int:
    """``export --format canvas``: write the CSV, report problems; exit 0, 1 (problems that need a
    decision: graded students not in the roster) or 2 (nothing written)."""
    if not args.roster:
        print("export --format canvas: --roster ROSTER.csv is required (Canvas's gradebook export: Grades > "
              "Export)", file=sys.stderr)
        return 2
    names = {}
    for item in args.name:
        if "=" not in item:
            print(f"export: --name {item!r}: expected ASSIGNMENT=HEADER", file=sys.stderr)
            return 2
        key, value = item.split("=", 1)
        names[key] = value
    try:
        export = build(course_root, Path(args.roster), args.assignment, args.match, args.per_task, names)
    except ExportError as err:
        print(f"export: {err}", file=sys.stderr)
        return 2
    to = Path(args.to)
    to.write_text(export.csv_text(), encoding="utf-8")
    print(f"export: {to} ({len(export.rows) - 1} students, {len(export.header) - len(IDENTITY)} column(s))")
    for problem in export.problems:
        print(f"export: {problem}", file=sys.stderr)
    return 1 if export.blocking else 0
