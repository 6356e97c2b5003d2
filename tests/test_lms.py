"""``python -m autograder export --format canvas``: Canvas's gradebook import CSV from the grade records.

The format, as Canvas documents it for Grades > Import (and writes it in Grades > Export): the
student columns ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section`` first, then one
column per assignment (a header that is not an existing assignment's ``Name (id)`` creates one),
and a ``Points Possible`` row under the header with each column's maximum. The roster is such an
export; grades come from real grade records (made by records.make_record from the check API)."""
from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import lms, records
from autograder.checks import CellGrade, CheckResult
from autograder.suites import load_suite

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
ROSTER = [  # what Canvas's gradebook export starts with (its Points Possible row and Test Student included)
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Old quiz (4411)"],
    ["    Points Possible", "", "", "", "", "10"],
    ["Lovelace, Ada", "101", "S0001", "alovelace", "10423 A", "9"],
    ["Turing, Alan", "102", "S0002", "aturing", "10423 B", "8"],
    ["Hopper, Grace", "103", "S0003", "ghopper", "10423 A", "7"],
    ["Student, Test", "999", "", "teststudent", "10423 A", "0"],
]


def _record(course: Path, assignment: str, student: str, fraction: float, late: float | None = None) -> dict:
    """A grade record whose every cell got ``fraction`` of its points."""
    suite = load_suite(assignment)
    cells = {gid: CellGrade(gid, fn, round(points * fraction, 2), float(points),
                            [CheckResult(gid, "value", fraction == 1.0, None if fraction == 1.0 else "wrong")])
             for gid, (fn, points) in suite.GRADE_CELLS.items()}
    rec = records.make_record(assignment=assignment, student=student, suite=suite, source="# code\n", cells=cells,
                              device="cpu", seconds=1.0, submission_sha256=None)
    if late is not None:
        rec["late"] = {"due": "2026-02-01T23:59:00+00:00", "extension": None, "submitted": "2026-02-02T10:00:00+00:00",
                       "lateness_s": 36060.0, "penalty": late, "rule": "10 points per started day", "raw_score":
                       rec["score"], "final_score": rec["score"] - late, "counted": "latest"}
    records.write_record(records.record_path(course, assignment, student), rec)
    return rec


@pytest.fixture
def course(tmp_path):
    _record(tmp_path, "hw-attention", "alovelace", 1.0)
    _record(tmp_path, "hw-attention", "aturing", 0.5, late=10.0)
    _record(tmp_path, "hw-attention", "stranger", 1.0)        # graded, but not in the roster
    _record(tmp_path, "hw-conv", "alovelace", 0.25)
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="") as out:
        csv.writer(out).writerows(ROSTER)
    return tmp_path, roster


def _cli(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course), "export", "--format",
                           "canvas", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_canvas_csv_has_the_documented_layout_and_the_records_scores(course):
    root, roster = course
    out = root / "canvas.csv"
    done = _cli(root, "--roster", str(roster), "--to", str(out))
    assert done.returncode == 1, done.stderr  # a graded student is not in the roster: a decision for the TA
    rows = list(csv.reader(out.open(newline="")))
    assert rows[0] == HEADER + ["hw-attention", "hw-conv"]
    assert rows[1] == ["Points Possible", "", "", "", ""] + ["100", "40"]
    body = {r[3]: r for r in rows[2:]}
    assert list(body) == ["alovelace", "aturing", "ghopper"]  # roster order; Test Student left out
    assert body["alovelace"] == ["Lovelace, Ada", "101", "S0001", "alovelace", "10423 A", "100", "10"]
    assert body["aturing"][5:] == ["40", "0"]         # 50 points, minus the record's late penalty of 10
    assert body["ghopper"][5:] == ["0", "0"]          # no submission: 0
    assert "stranger" not in out.read_text()
    assert "1 graded student(s) not in the roster (by SIS Login ID), NOT exported: stranger" in done.stderr
    assert "hw-attention: 1 roster student(s) without a grade record get 0: ghopper" in done.stderr
    assert "hw-conv: 2 roster student(s) without a grade record get 0: aturing, ghopper" in done.stderr


def test_per_task_columns_and_names(course):
    root, roster = course
    export = lms.build(root, roster, ["hw-attention"], per_task=True, names={"hw-attention": "HW 1 (5521)"})
    assert export.header[5:] == ["HW 1 (5521)", "HW 1 (5521): apply_rope", "HW 1 (5521): gqa_attention",
                                 "HW 1 (5521): sliding_window_attention"]
    assert export.rows[0][5:] == ["100", "30", "30", "40"]
    turing = next(r for r in export.rows if r[3] == "aturing")
    assert turing[5:] == ["40", "15", "15", "20"]  # tasks are raw points; the total carries the late penalty
    # the file parses back as CSV with one value per column
    parsed = list(csv.reader(io.StringIO(export.csv_text())))
    assert all(len(r) == len(export.header) for r in parsed)


def test_bad_rosters_are_refused_with_a_reason(course, tmp_path, capsys):
    root, roster = course
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text(roster.read_text() + "\"Lovelace, A.\",104,S0004,alovelace,10423 B,1\n")
    done = _cli(root, "--roster", str(duplicate), "--to", str(tmp_path / "x.csv"))
    assert done.returncode == 2 and "SIS Login ID not unique: 'alovelace' (2 rows)" in done.stderr
    assert not (tmp_path / "x.csv").exists()
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,email\nAda,ada@example.org\n")
    with pytest.raises(lms.ExportError, match=r"lacks the column\(s\) \['Student', 'ID', 'SIS User ID'"):
        lms.build(root, wrong)
    with pytest.raises(lms.ExportError, match="no grade records under"):
        lms.build(tmp_path / "empty", roster)
    args = argparse.Namespace(roster=None, name=[], assignment=None, match="SIS Login ID", per_task=False, to="x.csv")
    assert lms.run(args, root) == 2
    assert "--roster ROSTER.csv is required" in capsys.readouterr().err


def test_matching_on_another_roster_column(course, tmp_path):
    root, roster = course
    for student in ("S0001", "S0002", "S0003"):
        _record(tmp_path / "c2", "hw-conv", student, 1.0)
    export = lms.build(tmp_path / "c2", roster, match="SIS User ID")
    assert [r[5] for r in export.rows[1:]] == ["40", "40", "40"] and export.problems == []
