"""A simulated class through the whole TA pipeline: generate -> release -> submit -> collect ->
autograde (2 workers) -> feedback -> export, checking every score and that feedback leaks nothing."""
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.suites import assignments, load_suite  # noqa: E402

from classgen import UNGRADABLE, make_class  # noqa: E402
from conftest import autograde_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures"
# The real assignments always; the small fixture assignment (a faster pipeline check while
# developing the grader) with AUTOGRADER_E2E_FIXTURE=1.
# Time limits: a correct cell or hidden call takes a second at most here; a hung one costs its limit.
CELL_TIMEOUT, CALL_TIMEOUT = 20, 20
GRADING = ("--device", "cpu", "--cell-timeout", str(CELL_TIMEOUT), "--notebook-timeout", "120",
           "--call-timeout", str(CALL_TIMEOUT))
ASSIGNMENTS = assignments() + (["hw-fixture"] if os.environ.get("AUTOGRADER_E2E_FIXTURE") == "1" else [])
# The broken and hostile students attack the harness (notebook, kernel, sandbox, outcome files),
# whatever the assignment: hw-attention's class has them all but one; hw-conv's has the students
# whose grade depends on its own suite (correct, one partial per function -- its cnn_logits runs
# through two of them --, blank, an infinite loop in its first function, the forbidden call
# reached dynamically). The infinite loop is graded once, in hw-conv's class, where it also proves
# that the hung function's callers cost no timeout more: it holds a worker for a cell timeout and a
# call timeout (2 x 20 s: --call-timeout, whose limit its feedback names), and its path through the
# harness does not depend on the assignment.
OWN_SUITE = {"correct", "blank", "infinite_loop", "hostile_dynamic_forbidden"}
CLASS = {"hw-conv": lambda student: student in OWN_SUITE or student.startswith("partial_"),
         "hw-attention": lambda student: student != "infinite_loop"}


def cli(course, *args, env):
    return subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course),
                           "--exchange", str(course.parent / "exchange"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_class(tmp_path, assignment, monkeypatch):
    # options as flags (GRADING); the environment only names the fixture's suite folder
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["AUTOGRADER_SUITE_PATH"] = str(FIXTURE / "suites")
    monkeypatch.setenv("AUTOGRADER_SUITE_PATH", env["AUTOGRADER_SUITE_PATH"])
    suite = load_suite(assignment)
    course = tmp_path / "course"
    src = (FIXTURE / "course" if assignment == "hw-fixture" else ROOT) / "solutions" / assignment
    shutil.copytree(src, course / "solutions" / assignment)
    (tmp_path / "exchange").mkdir(mode=0o777)
    os.chmod(tmp_path / "exchange", 0o777)

    assert cli(course, "generate", assignment, env=env).returncode == 0
    r = cli(course, "release", assignment, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    released = tmp_path / "exchange" / "10423-lec4" / "outbound" / assignment / suite.NOTEBOOK
    assert released.exists()

    # students "submit": the exchange's inbound layout, as `nbgrader submit` writes it
    drafts = tmp_path / "drafts"
    everyone = make_class(course / "solutions" / assignment / suite.NOTEBOOK, released, suite, drafts)
    assert len(everyone) >= 20
    expected = {s: score for s, score in everyone.items() if CLASS.get(assignment, lambda _: True)(s)}
    assert assignment != "hw-conv" or OWN_SUITE <= set(expected), expected
    inbound = tmp_path / "exchange" / "10423-lec4" / "inbound"
    for student in expected:
        stamp = "2026-01-15 12:00:00.000000 UTC"
        dest = inbound / f"{student}+{assignment}+{stamp}+0"
        shutil.copytree(drafts / student, dest)
        (dest / "timestamp.txt").write_text(stamp)

    r = cli(course, "collect", assignment, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    start = time.monotonic()
    r = cli(course, "autograde", assignment, "--workers", "2", *GRADING, "--json", env=env)
    elapsed = time.monotonic() - start
    print(r.stderr[-20000:])  # the TA's table
    print(f"{assignment}: {len(expected)} submissions in {elapsed:.0f} s, {elapsed / len(expected):.1f} s each (2 workers)")
    ungradable = UNGRADABLE & set(expected)
    assert r.returncode == (1 if ungradable else 0), r.stdout + r.stderr[-3000:]  # an ungradable notebook: 1
    results = autograde_results(r)
    assert sorted(results) == sorted(expected), r.stdout[-3000:]
    for student in expected:
        status = "failed" if student in UNGRADABLE else "graded"
        assert results[student]["status"] == status, results[student]
        if student in UNGRADABLE:
            assert results[student]["score"] == 0, results[student]

    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course}/gradebook.db", "10423-lec4") as gb:
        got = {s: gb.find_submission(assignment, s).score for s in expected}
    wrong = {s: (got[s], expected[s]) for s in expected if abs(got[s] - expected[s]) > 1e-6}
    assert not wrong, f"(got, expected): {wrong}\n{r.stdout}"

    # rerun: nothing regraded, nothing double counted
    r2 = cli(course, "autograde", assignment, *GRADING, "--json", env=env)
    assert json.loads(r2.stdout)["counts"]["skipped"] >= len(expected) - len(ungradable), r2.stdout
    with Gradebook(f"sqlite:///{course}/gradebook.db", "10423-lec4") as gb:
        assert {s: gb.find_submission(assignment, s).score for s in expected} == got

    assert cli(course, "feedback", assignment, env=env).returncode == 0
    suite_source = (Path(suite.__file__)).read_text()
    secrets = [line.strip() for line in suite_source.splitlines() if len(line.strip()) > 30]
    solution_lines = [l.strip() for l in (course / "solutions" / assignment / suite.NOTEBOOK).read_text().split("\\n")
                      if "BEGIN SOLUTION" not in l and len(l.strip()) > 25]
    for html in (course / "feedback").rglob("*.html"):
        text = html.read_text()
        assert "autograder/suites" not in text and "build_checks" not in text
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{html}: hidden suite text in feedback: {leaked[:3]}"
        if "blank" in str(html):
            assert "PASS" not in text
        if "infinite_loop" in str(html):  # the hung function's call stopped at --call-timeout
            assert f"timed out (limit {CALL_TIMEOUT} s)" in text, text[-3000:]

    out = tmp_path / "grades.csv"
    assert cli(course, "export", "--to", str(out), env=env).returncode == 0
    rows = {row["student_id"]: row for row in csv.DictReader(out.open()) if row["assignment"] == assignment}
    for student, score in expected.items():
        assert float(rows[student]["score"]) == pytest.approx(score)
