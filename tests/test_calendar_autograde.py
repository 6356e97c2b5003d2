"""The calendar through the TA's CLI and a real ``python -m autograder autograde`` of late
submissions: the grade record's ``late`` object, the gradebook (nbgrader's export), the
feedback HTML, ``recompute-late`` after an extension, ``replay``; and the CLI's refusals
(exit 2, nothing changed). The fixture course of tests/test_cli.py (7 points)."""
from __future__ import annotations

import csv
import json
import shutil

import nbformat
import pytest

from conftest import autograde_results
from test_cli import ASSIGNMENT, FIXTURE, NOTEBOOK, cli, record_of, submit

DUE = "2026-12-10 23:59 America/New_York"  # = 2026-12-11 04:59 UTC


def stamp(folder, text: str) -> None:
    (folder / "timestamp.txt").write_text(text)


def broken_softmax(course):
    """row_softmax returns its input: every row_softmax check fails, "leaves its input unchanged" too
    (it needs a correct result as well), so 3/7 (scaled_add's points)."""
    nb = nbformat.read(course / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "row_softmax")
    cell.source = "def row_softmax(x):\n    return x\n"
    return nb


def calendar_state(course) -> tuple[bytes, bytes]:
    return (course / "calendar.json").read_bytes(), (course / "calendar.audit.jsonl").read_bytes()


def export(course) -> dict[str, dict]:
    out = course / "grades.csv"
    r = cli(course, "export", "--to", str(out))
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    with open(out) as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh) if row["assignment"] == ASSIGNMENT}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("calendar") / "course"
    shutil.copytree(FIXTURE / "course" / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    r = cli(course, "generate", ASSIGNMENT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = cli(course, "due", ASSIGNMENT, DUE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "due Thu 2026-12-10 23:59 EST" in r.stdout, r.stdout
    stamp(submit(course, "ann"), "2026-12-11 04:58:00.000000 UTC")  # on time
    stamp(submit(course, "bob"), "2026-12-12 05:30:00.000000 UTC")  # 1 d 31 min late: 2 started days
    stamp(submit(course, "carl"), "2026-12-12 05:30:00.000000 UTC")  # the same, with an extension
    stamp(submit(course, "dora", broken_softmax(course)), "2026-12-12 05:30:00.000000 UTC")  # worse and late,
    ontime = course / "ontime" / "dora" / ASSIGNMENT  # and her earlier on-time submission kept by collect
    ontime.mkdir(parents=True)
    shutil.copy(course / "solutions" / ASSIGNMENT / NOTEBOOK, ontime / NOTEBOOK)
    stamp(ontime, "2026-12-11 04:00:00.000000 UTC")
    r = cli(course, "extend", ASSIGNMENT, "carl", "--days", "2", "--reason", "medical note")
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli(course, "autograde", ASSIGNMENT, "--device", "cpu", "--workers", "2", "--json")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    results = autograde_results(r)
    assert all(results[s]["status"] == "graded" for s in ("ann", "bob", "carl", "dora")), results
    return course


@pytest.mark.slow
def test_the_record_holds_the_late_object(course):
    late = {s: json.loads(record_of(course, s).read_text())["late"] for s in ("ann", "bob", "carl", "dora")}
    assert late["ann"]["penalty"] == 0 and late["ann"]["final_score"] == 7 and late["ann"]["lateness_s"] == 0
    bob = late["bob"]
    assert bob["due"] == "2026-12-10T23:59:00-05:00" and bob["submitted"] == "2026-12-12T05:30:00+00:00"
    assert bob["lateness_s"] == 86400 + 31 * 60 and bob["extension"] is None
    assert bob["raw_score"] == 7 and bob["penalty"] == pytest.approx(1.4) and bob["final_score"] == pytest.approx(5.6)
    assert bob["counted"] == "latest" and "2 started days" in bob["rule"]
    carl = late["carl"]
    assert carl["extension"]["reason"] == "medical note" and carl["due"] == "2026-12-12T23:59:00-05:00"
    assert carl["penalty"] == 0 and carl["final_score"] == 7
    dora = late["dora"]  # latest: 3/7 - 1.4 = 1.6 < her on-time 7/7
    assert dora["raw_score"] == 3 and dora["counted"] == "on-time" and dora["final_score"] == 7
    assert dora["on_time"]["score"] == 7 and dora["on_time"]["submitted"] == "2026-12-11T04:00:00+00:00"


@pytest.mark.slow
def test_the_gradebook_total_is_the_final_score(course):
    rows = export(course)
    assert float(rows["bob"]["raw_score"]) == 7 and float(rows["bob"]["late_submission_penalty"]) == pytest.approx(1.4)
    assert float(rows["bob"]["score"]) == pytest.approx(5.6)
    assert float(rows["ann"]["score"]) == 7 and float(rows["carl"]["score"]) == 7
    assert float(rows["dora"]["score"]) == 7 and float(rows["dora"]["late_submission_penalty"]) == 0
    assert rows["bob"]["duedate"].startswith("2026-12-11 04:59")  # nbgrader's own field, UTC


@pytest.mark.slow
def test_the_feedback_states_the_penalty_and_why(course):
    r = cli(course, "feedback", ASSIGNMENT)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    bob = (course / "feedback" / "bob" / ASSIGNMENT / "hw-fixture.html").read_text()
    assert "Late penalty: -1.4 points: 7 -&gt; 5.6 / 7" in bob or "Late penalty: -1.4 points: 7 -> 5.6 / 7" in bob
    assert "Thu 2026-12-10 23:59 EST" in bob and "2 started days" in bob
    carl = (course / "feedback" / "carl" / ASSIGNMENT / "hw-fixture.html").read_text()
    assert "extension granted: medical note" in carl and "No late penalty" in carl
    dora = (course / "feedback" / "dora" / ASSIGNMENT / "hw-fixture.html").read_text()
    assert "Your on-time submission counts: 7 / 7" in dora


@pytest.mark.slow
def test_the_cli_refuses_bad_input_and_changes_nothing(course):
    before = calendar_state(course)
    cases = [
        (("due", "hw-nope", DUE), "unknown assignment 'hw-nope'"),
        (("due", ASSIGNMENT, "2026-12-10 23:59"), "has no time zone"),
        (("extend", ASSIGNMENT, "zed", "--days", "1", "--reason", "x"), "unknown student 'zed'"),
        (("extend", ASSIGNMENT, "ann", "--until", "2026-12-09T12:00Z", "--reason", "x"), "ends before the due date"),
        (("extend", ASSIGNMENT, "ann", "--days", "1"), "reason"),
        (("extend", ASSIGNMENT, "ann", "--revoke"), "no extension"),
        (("calendar", "hw-nope"), "unknown assignment"),
    ]
    for args, message in cases:
        r = cli(course, *args)
        assert r.returncode == 2 and message in r.stderr and "nothing was changed" in r.stderr, (args, r.stderr)
        assert calendar_state(course) == before, args
    text = (course / "calendar.json").read_text()
    (course / "calendar.json").write_text(text.replace("2026-12-10T23:59", "2026-12-17T23:59"))
    r = cli(course, "extend", ASSIGNMENT, "ann", "--days", "1", "--reason", "x")
    assert r.returncode == 2 and "changed outside" in r.stderr, r.stderr
    (course / "calendar.json").write_text(text)
    assert calendar_state(course) == before


@pytest.mark.slow
def test_an_extension_recomputes_final_scores_without_grading_and_replay_agrees(course):
    r = cli(course, "calendar", ASSIGNMENT)
    assert r.returncode == 0, r.stderr
    table = r.stdout
    assert "carl" in table and "medical note" in table and "bob" in table and "5.6/7 (latest)" in table, table
    assert "ann" not in table.split(ASSIGNMENT, 1)[1], "on time, no extension: not listed"
    graded_at = json.loads(record_of(course, "bob").read_text())["graded_at"]
    r = cli(course, "extend", ASSIGNMENT, "bob", "--until", "2026-12-12T06:00Z", "--reason", "late registration")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bob: final 5.6 -> 7 (+1.4)" in r.stdout, r.stdout
    record = json.loads(record_of(course, "bob").read_text())
    assert record["graded_at"] == graded_at, "recomputed from the record, not regraded"
    assert record["late"]["final_score"] == 7 and record["late"]["extension"]["reason"] == "late registration"
    assert float(export(course)["bob"]["score"]) == 7
    r = cli(course, "replay", ASSIGNMENT, "bob", "--device", "cpu")
    assert r.returncode == 0 and "the calendar gives the same final score today" in r.stdout, r.stdout + r.stderr
    r = cli(course, "extend", ASSIGNMENT, "bob", "--revoke", "--reason", "granted by mistake")
    assert r.returncode == 0 and "bob: final 7 -> 5.6 (-1.4)" in r.stdout, r.stdout + r.stderr
    audit = [json.loads(x) for x in (course / "calendar.audit.jsonl").read_text().splitlines()]
    assert [a["what"].split()[0] for a in audit] == ["due", "extend", "extend", "revoke"]
    assert all(a["who"] and a["at"] for a in audit)


@pytest.mark.slow
def test_collect_through_the_cli_keeps_the_on_time_copy_and_the_better_score_counts(tmp_path):
    """fay submits on time (7/7), then a day late with a worse answer (3/7) into a real exchange's
    inbound (nbgrader submit's layout); `python -m autograder collect` (nbgrader's collect, the
    measured submission times, the on-time copy) and `autograde`: her record counts the on-time
    submission by the default policy (the better of the on-time score and the penalized late
    one: 7 > 3 - 1.4), and the gradebook's score is that final score."""
    import secrets

    from autograder.cli import Course

    course = tmp_path / "course"
    shutil.copytree(FIXTURE / "course" / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    r = cli(course, "generate", ASSIGNMENT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = cli(course, "due", ASSIGNMENT, DUE)
    assert r.returncode == 0, r.stdout + r.stderr
    exchange = tmp_path / "exchange"
    inbound = exchange / Course.load(str(course)).course_id / "inbound"
    inbound.mkdir(parents=True)

    def send(nb, stamp: str) -> None:
        folder = inbound / f"fay+{ASSIGNMENT}+{stamp}+{secrets.token_hex(4)}"
        folder.mkdir()
        nbformat.write(nb, folder / NOTEBOOK)
        stamp_file = folder / "timestamp.txt"
        stamp_file.write_text(stamp)

    send(nbformat.read(course / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4), "2026-12-11 04:00:00.000000 UTC")
    send(broken_softmax(course), "2026-12-12 05:30:00.000000 UTC")  # 1 d 31 min late: 2 started days
    r = cli(course, "--exchange", str(exchange), "collect", ASSIGNMENT)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "fay: latest submission 2026-12-12T05:30:00+00:00 is late; kept the on-time one" in r.stdout, r.stdout
    assert (course / "submitted" / "fay" / ASSIGNMENT / "timestamp.txt").read_text() == "2026-12-12 05:30:00.000000 UTC"
    r = cli(course, "autograde", ASSIGNMENT, "--device", "cpu", "--json")
    assert r.returncode == 0 and autograde_results(r)["fay"]["status"] == "graded", r.stdout + r.stderr[-3000:]
    record = json.loads(record_of(course, "fay").read_text())
    late = record["late"]
    assert late["raw_score"] == 3 and late["penalty"] == pytest.approx(1.4), late
    assert late["counted"] == "on-time" and late["final_score"] == 7, late
    assert late["on_time"]["score"] == 7 and late["on_time"]["submitted"] == "2026-12-11T04:00:00+00:00", late
    assert record["submission_time"]["used"] == "timestamp.txt" and record["submission_time"]["changed"], record
    row = export(course)["fay"]  # the gradebook holds the counted (on-time) submission's cell scores
    assert float(row["score"]) == 7 and float(row["late_submission_penalty"]) == 0, row
