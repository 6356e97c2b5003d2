"""The course calendar (autograder/calendar.py) and the late policy the grader applies
(autograder/late.py), with controlled timestamps: pure rules, the file (validation, audit,
lock), and the late object a grade record gets. The real ``autograde`` of a late submission
is in tests/test_calendar_autograde.py."""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from autograder import calendar as cal_mod
from autograder import late
from autograder.calendar import CalendarError

UTC = dt.timezone.utc
DUE = "2026-12-10T23:59:00-05:00"  # a Thursday, EST
POLICY = cal_mod.Policy(grace_minutes=15, penalty_percent=10, per="day", zero_after_hours=72)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def assess(submitted: str, due: str = DUE, policy=POLICY, raw=80.0, max_score=100.0, days=0):
    return cal_mod.assess(due=at(due), submitted=at(submitted), policy=policy, raw_score=raw,
                          max_score=max_score, late_days_left=days)


# --- the rule, with controlled timestamps --------------------------------------------------------

def test_on_time_has_no_penalty():
    a = assess("2026-12-10T23:58:59-05:00")
    assert (a.lateness_s, a.penalty, a.final_score) == (0.0, 0.0, 80.0)
    assert a.rule.startswith("on time")


def test_one_minute_late_is_inside_the_grace_period():
    a = assess("2026-12-11T00:00:00-05:00")
    assert a.lateness_s == 60.0 and a.penalty == 0.0 and a.final_score == 80.0
    assert "grace" in a.rule and "1 min late" in a.rule
    beyond = assess("2026-12-11T00:14:01-05:00")  # 15 min 1 s late: past the 15 min grace
    assert beyond.penalty == 10.0 and beyond.final_score == 70.0


def test_one_day_late_costs_one_started_day_and_a_second_one_starts_after_24_h():
    a = assess("2026-12-11T23:59:00-05:00")  # exactly 24 h
    assert a.lateness_s == 86400 and a.units == 1 and a.penalty == 10.0 and a.final_score == 70.0
    b = assess("2026-12-12T00:00:00-05:00")  # 24 h 1 min: a second day has started
    assert b.units == 2 and b.penalty == 20.0 and "2 started days" in b.rule


def test_penalty_per_started_hour_is_a_fraction_of_the_maximum_score_and_never_above_the_score():
    hourly = cal_mod.Policy(0, 5, "hour", None)
    a = assess("2026-12-11T02:30:00-05:00", policy=hourly, raw=90, max_score=40)  # 2 h 31 min: 3 hours
    assert a.units == 3 and a.penalty == pytest.approx(6.0) and a.final_score == pytest.approx(84.0)
    low = assess("2026-12-11T02:30:00-05:00", policy=hourly, raw=3, max_score=40)
    assert low.penalty == 3 and low.final_score == 0


def test_late_with_an_extension_counts_from_the_students_own_due_date():
    cal = cal_mod.Calendar()
    cal_mod.set_due(cal, "hw", DUE)
    cal_mod.grant(cal, "hw", "ann", days=2, reason="medical", granted_by="ta")
    due, ext = cal_mod.effective_due(cal, "hw", "ann")
    assert due == at("2026-12-12T23:59:00-05:00") and ext.reason == "medical"
    assert cal_mod.effective_due(cal, "hw", "bob")[1] is None
    submitted = at("2026-12-12T20:00:00-05:00")  # two days after the class's due date
    mine = late.late_object(cal, "hw", "ann", submitted, 80.0, 100.0, 0)
    theirs = late.late_object(cal, "hw", "bob", submitted, 80.0, 100.0, 0)
    assert mine["penalty"] == 0 and mine["final_score"] == 80 and mine["extension"]["reason"] == "medical"
    assert mine["due"] == "2026-12-12T23:59:00-05:00"
    assert theirs["penalty"] == 20 and theirs["final_score"] == 60 and theirs["extension"] is None
    late_anyway = late.late_object(cal, "hw", "ann", at("2026-12-13T23:59:00-05:00"), 80.0, 100.0, 0)
    assert late_anyway["penalty"] == 10 and "extended: medical" in late_anyway["rule"]


def test_late_beyond_the_cap_scores_zero():
    a = assess("2026-12-13T23:59:01-05:00")  # 72 h 1 s > zero_after_hours 72
    assert a.final_score == 0 and a.penalty == 80 and "0 points" in a.rule
    edge = assess("2026-12-13T23:59:00-05:00")  # exactly 72 h: 3 started days
    assert edge.final_score == 50


def test_late_days_cover_whole_days_until_the_budget_is_exhausted():
    two_days = "2026-12-12T20:00:00-05:00"  # 1 d 20 h 1 min late: needs 2 late days
    covered = assess(two_days, days=3)
    assert covered.late_days_used == 2 and covered.penalty == 0 and covered.final_score == 80
    partly = assess(two_days, days=1)  # one day covered, 20 h left: one started day
    assert partly.late_days_used == 1 and partly.penalty == 10 and "1 late day used" in partly.rule
    exhausted = assess(two_days, days=0)
    assert exhausted.late_days_used == 0 and exhausted.penalty == 20
    grace = assess("2026-12-11T00:05:00-05:00", days=3)  # within grace: no late day spent
    assert grace.late_days_used == 0 and grace.penalty == 0


def test_late_days_are_spent_in_due_date_order_across_assignments(tmp_path):
    from autograder import records

    cal = cal_mod.Calendar({"schema": 1, "late_days": 2, "policy": dict(cal_mod.DEFAULT_POLICY),
                            "assignments": {}, "extensions": {}})
    cal_mod.set_due(cal, "hw-b", "2026-12-20T23:59:00-05:00")
    cal_mod.set_due(cal, "hw-a", DUE)
    assert cal.assignments() == ["hw-a", "hw-b"]
    base = {"schema": 1, "graded_at": "x", "submission_sha256": "x", "source": "", "source_sha256": "",
            "max_score": 100.0, "cells": {}, "timings": {}, "reproduce": dict.fromkeys(records.REPRODUCE_KEYS)}
    first = late.apply_to_record(tmp_path, cal, {**base, "assignment": "hw-a", "student": "ann", "score": 90.0},
                                 at("2026-12-12T20:00:00-05:00"), None)  # 2 late days
    assert first["late"]["late_days_used"] == 2 and first["late"]["final_score"] == 90
    records.write_record(records.record_path(tmp_path, "hw-a", "ann"), first)
    second = late.apply_to_record(tmp_path, cal, {**base, "assignment": "hw-b", "student": "ann", "score": 90.0},
                                  at("2026-12-21T12:00:00-05:00"), None)
    assert second["late"]["late_days_used"] == 0, "the budget is exhausted by hw-a"
    assert second["late"]["penalty"] == 10 and second["late"]["final_score"] == 80


def test_a_due_date_across_a_daylight_saving_change():
    # New York leaves daylight-saving time on 2026-11-01 at 02:00: that day has 25 hours
    when, name = cal_mod.parse_datetime("2026-10-31 23:59 America/New_York")
    assert when.utcoffset() == dt.timedelta(hours=-4) and name == "America/New_York"
    cal = cal_mod.Calendar()
    cal_mod.set_due(cal, "hw", "2026-10-31 23:59 America/New_York")
    cal_mod.grant(cal, "hw", "ann", days=1, reason="travel", granted_by="ta")
    until = cal_mod.effective_due(cal, "hw", "ann")[0]
    assert until.isoformat() == "2026-11-01T23:59:00-05:00", "one calendar day: same wall-clock time"
    assert (until - when).total_seconds() == 25 * 3600
    # lateness is real time: submitted 23:59 EST the next day is 25 h late, so 2 started days
    a = cal_mod.assess(due=when, submitted=at("2026-11-01T23:59:00-05:00"), policy=POLICY, raw_score=80,
                       max_score=100)
    assert a.lateness_s == 25 * 3600 and a.units == 2
    # the same instants in the same zone object (Python subtracts those by wall clock: 24 h)
    z = cal_mod.zone("America/New_York")
    b = cal_mod.assess(due=when, submitted=dt.datetime(2026, 11, 1, 23, 59, tzinfo=z), policy=POLICY,
                       raw_score=80, max_score=100)
    assert b.lateness_s == 25 * 3600
    with pytest.raises(CalendarError, match="happens twice"):
        cal_mod.parse_datetime("2026-11-01 01:30 America/New_York")
    with pytest.raises(CalendarError, match="does not exist"):
        cal_mod.parse_datetime("2026-03-08 02:30 America/New_York")


def test_a_student_working_in_another_time_zone(tmp_path):
    # nbgrader writes timestamp.txt in the student's configured zone; 13:30 in Tokyo on the 11th
    # is 23:30 in New York on the 10th: on time.
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "timestamp.txt").write_text("2026-12-11 13:30:00.000000 +0900")
    submitted = late.timestamp_of(folder)
    assert submitted == at("2026-12-10T23:30:00-05:00")
    assert assess(submitted.isoformat()).final_score == 80
    (folder / "timestamp.txt").write_text("2026-12-11 13:30:00.000000 Asia/Tokyo")
    assert late.timestamp_of(folder) == submitted
    # nbgrader's own parser reads an abbreviation it does not know as UTC (9 h off): refused
    (folder / "timestamp.txt").write_text("2026-12-11 13:30:00.000000 JST")
    with pytest.raises(CalendarError, match="abbreviation"):
        late.timestamp_of(folder)
    (folder / "timestamp.txt").write_text("2026-12-11 04:30:00.000000 UTC")  # nbgrader's default
    assert late.timestamp_of(folder) == submitted


def test_dates_without_a_time_zone_are_refused_with_what_is_expected():
    for text in ("2026-12-10 23:59", "2026-12-10T23:59", "next friday"):
        with pytest.raises(CalendarError, match="expected an ISO 8601"):
            cal_mod.parse_datetime(text)
    with pytest.raises(CalendarError, match="unknown time zone"):
        cal_mod.parse_datetime("2026-12-10 23:59 Mars/Olympus")
    assert cal_mod.parse_datetime("2026-12-11T04:59Z")[0] == at(DUE)


def test_an_extension_before_the_due_date_and_one_without_a_reason_are_refused():
    cal = cal_mod.Calendar()
    with pytest.raises(CalendarError, match="no due date yet"):
        cal_mod.grant(cal, "hw", "ann", days=1, reason="x")
    cal_mod.set_due(cal, "hw", DUE)
    with pytest.raises(CalendarError, match="ends before the due date"):
        cal_mod.grant(cal, "hw", "ann", until="2026-12-09T12:00Z", reason="x")
    with pytest.raises(CalendarError, match="reason"):
        cal_mod.grant(cal, "hw", "ann", days=1, reason=" ")
    with pytest.raises(CalendarError, match="days"):
        cal_mod.grant(cal, "hw", "ann", days=-1, reason="x")
    assert cal.data["extensions"] == {}


def test_on_time_copy_counts_when_better_than_the_penalized_late_one():
    cal = cal_mod.Calendar()
    cal_mod.set_due(cal, "hw", DUE)
    on_time = {"submitted": "2026-12-10T22:00:00-05:00", "score": 75.0, "cells": {"a": 75.0}}
    two_days = at("2026-12-12T20:00:00-05:00")
    counted = late.late_object(cal, "hw", "ann", two_days, 90.0, 100.0, 0, on_time)  # 90 - 20 = 70 < 75
    assert counted["counted"] == "on-time" and counted["final_score"] == 75 and counted["penalty"] == 20
    better = late.late_object(cal, "hw", "ann", two_days, 100.0, 100.0, 0, on_time)  # 100 - 20 = 80 > 75
    assert better["counted"] == "latest" and better["final_score"] == 80


# --- the file: validation, audit log, lock -------------------------------------------------------

def _grant(root: str, student: str) -> None:
    what: list[str] = []
    with cal_mod.transaction(Path(root), what) as cal:
        what.append(cal_mod.grant(cal, "hw", student, days=1, reason=f"for {student}", granted_by="test"))


def test_concurrent_writers_lose_no_update(tmp_path):
    what: list[str] = []
    with cal_mod.transaction(tmp_path, what) as cal:
        what.append(cal_mod.set_due(cal, "hw", DUE))
    students = [f"s{i:02d}" for i in range(24)]
    ctx = multiprocessing.get_context("fork")  # separate processes, each with its own lock fd
    with ctx.Pool(8) as pool:
        pool.starmap(_grant, [(str(tmp_path), s) for s in students])
    cal = cal_mod.load(tmp_path)
    assert sorted(cal.extensions("hw")) == students
    lines = cal_mod.audit_lines(tmp_path)
    assert len(lines) == 1 + len(students) and all(x["who"] for x in lines)
    assert lines[-1]["sha256"] == cal_mod.sha256((tmp_path / "calendar.json").read_text())
    # each line continues the one before: no write was based on a stale read
    assert all(b["previous_sha256"] == a["sha256"] for a, b in zip(lines, lines[1:]))


def test_without_the_lock_updates_are_lost(tmp_path, monkeypatch):
    """The check above can fail: with the lock disabled, two interleaved transactions lose one."""
    import contextlib

    what: list[str] = []
    with cal_mod.transaction(tmp_path, what) as cal:
        what.append(cal_mod.set_due(cal, "hw", DUE))
    monkeypatch.setattr(cal_mod, "_locked", lambda root, exclusive: contextlib.nullcontext())
    monkeypatch.setattr(cal_mod, "_read", lambda root, accept_edit=False: (cal_mod.validate(
        json.loads((root / "calendar.json").read_text())), None))
    w1: list[str] = []
    w2: list[str] = []
    with cal_mod.transaction(tmp_path, w1) as c1:
        with cal_mod.transaction(tmp_path, w2) as c2:
            w2.append(cal_mod.grant(c2, "hw", "bob", days=1, reason="b", granted_by="t"))
        w1.append(cal_mod.grant(c1, "hw", "ann", days=1, reason="a", granted_by="t"))
    assert sorted(cal_mod.validate(json.loads((tmp_path / "calendar.json").read_text())).extensions("hw")) == ["ann"]


def _state(root: Path) -> tuple[bytes, bytes]:
    return (root / "calendar.json").read_bytes(), (root / "calendar.audit.jsonl").read_bytes()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t[:-5], "not valid JSON"),
    (lambda t: t.replace('"schema": 1', '"schema": 7'), "schema = 7"),
    (lambda t: t.replace('"due": "2026-12-10T23:59:00-05:00"', '"due": "2026-12-10T23:59:00"'), "no time zone offset"),
    (lambda t: t.replace('"per": "day"', '"per": "week"'), "per = 'week'"),
    (lambda t: t.replace('"reason": "medical"', '"reason": ""'), "reason: expected a non-empty"),
    (lambda t: t.replace('"until": "2026-12-12', '"until": "tomorrow'), "not an ISO 8601"),
])
def test_a_malformed_file_is_refused_and_nothing_changes(tmp_path, edit, message):
    what: list[str] = []
    with cal_mod.transaction(tmp_path, what) as cal:
        what.append(cal_mod.set_due(cal, "hw", DUE))
        what.append(cal_mod.grant(cal, "hw", "ann", days=2, reason="medical", granted_by="t"))
    file = tmp_path / "calendar.json"
    file.write_text(edit(file.read_text()))
    before = _state(tmp_path)
    with pytest.raises(CalendarError, match=message):
        cal_mod.load(tmp_path)
    with pytest.raises(CalendarError, match=message):
        _grant(str(tmp_path), "bob")
    assert _state(tmp_path) == before


def test_a_hand_edit_is_refused_until_accepted_and_audited(tmp_path):
    what: list[str] = []
    with cal_mod.transaction(tmp_path, what) as cal:
        what.append(cal_mod.set_due(cal, "hw", DUE))
    file = tmp_path / "calendar.json"
    data = json.loads(file.read_text())
    data["assignments"]["hw"]["due"] = "2026-12-17T23:59:00-05:00"  # valid, but not through the CLI
    file.write_text(json.dumps(data))
    before = _state(tmp_path)
    with pytest.raises(CalendarError, match="changed outside"):
        cal_mod.load(tmp_path)
    with pytest.raises(CalendarError, match="accept-edit"):
        _grant(str(tmp_path), "bob")
    assert _state(tmp_path) == before
    accepted: list[str] = ["accepted a hand edit"]
    with cal_mod.transaction(tmp_path, accepted, accept_edit=True):
        pass
    assert cal_mod.load(tmp_path).due("hw")[0] == at("2026-12-17T23:59:00-05:00")
    assert cal_mod.audit_lines(tmp_path)[-1]["what"] == "accepted a hand edit"
    file.unlink()
    with pytest.raises(CalendarError, match="missing"):
        cal_mod.load(tmp_path)


def test_no_calendar_means_no_due_dates_and_no_late_object(tmp_path):
    cal = cal_mod.load(tmp_path)
    assert cal.assignments() == [] and cal_mod.effective_due(cal, "hw", "ann") == (None, None)
    assert late.late_object(cal, "hw", "ann", at(DUE), 5.0, 10.0, 0) is None


def test_the_feedback_note_states_the_penalty_and_why():
    cal = cal_mod.Calendar()
    cal_mod.set_due(cal, "hw", "2026-12-10 23:59 America/New_York")
    lt = late.late_object(cal, "hw", "ann", at("2026-12-11T10:00:00-05:00"), 7.0, 7.0, 0)
    text = late.note_text(lt, 7.0)
    assert "Thu 2026-12-10 23:59 EST" in text and "10 h 1 min late" in text
    assert "Late penalty: -0.7 points: 7 -> 6.3 / 7" in text


# --- collect's on-time copy and the students' own view ---------------------------------------------

def _inbound(exchange: Path, student: str, stamp: str, content: str) -> Path:
    folder = exchange / "course" / "inbound" / f"{student}+hw+{stamp}+{abs(hash(content)) % 10**6}"
    folder.mkdir(parents=True)
    (folder / "hw.ipynb").write_text(content)
    (folder / "timestamp.txt").write_text(stamp)
    return folder


def _course_with_due(root: Path, **grant) -> None:
    what: list[str] = []
    with cal_mod.transaction(root, what) as cal:
        what.append(cal_mod.set_due(cal, "hw", DUE))  # 2026-12-11 04:59 UTC, 15 min grace
        if grant:
            what.append(cal_mod.grant(cal, "hw", granted_by="t", **grant))


def test_collect_keeps_the_last_on_time_submission_of_a_late_student(tmp_path):
    root, exchange = tmp_path / "course", tmp_path / "exchange"
    root.mkdir()
    _course_with_due(root, student="cleo", days=3, reason="medical")
    _inbound(exchange, "ann", "2026-12-11 01:00:00.000000 UTC", "ann first")
    _inbound(exchange, "ann", "2026-12-11 05:10:00.000000 UTC", "ann in grace")  # last on time (grace)
    _inbound(exchange, "ann", "2026-12-12 09:00:00.000000 UTC", "ann late")
    _inbound(exchange, "bob", "2026-12-11 02:00:00.000000 UTC", "bob only")  # on time: nothing to keep
    _inbound(exchange, "cleo", "2026-12-11 02:00:00.000000 UTC", "cleo early")
    _inbound(exchange, "cleo", "2026-12-13 02:00:00.000000 UTC", "cleo within extension")
    link = exchange / "course" / "inbound" / "dan+hw+2026-12-11 01:00:00.000000 UTC+1"
    link.symlink_to(root)  # a link is never taken for a submission
    _inbound(exchange, "dan", "2026-12-12 09:00:00.000000 UTC", "dan late")
    lines = late.keep_on_time(root, exchange, "course", "hw")
    kept = root / "ontime" / "ann" / "hw"
    assert (kept / "hw.ipynb").read_text() == "ann in grace"
    assert late.timestamp_of(kept).isoformat() == "2026-12-11T05:10:00+00:00"
    assert not (root / "ontime" / "bob").exists() and not (root / "ontime" / "cleo").exists()
    assert not (root / "ontime" / "dan").exists(), "dan's only on-time folder is a link"
    assert len(lines) == 1 and lines[0].startswith("ann:"), lines
    _inbound(exchange, "ann", "2026-12-13 09:00:00.000000 UTC", "ann later still")  # collect again
    late.keep_on_time(root, exchange, "course", "hw")
    assert (kept / "hw.ipynb").read_text() == "ann in grace"


def test_each_student_gets_their_own_due_date_and_late_days_in_a_private_file(tmp_path, request):
    root, exchange = tmp_path / "course", tmp_path / "exchange"
    root.mkdir()
    _course_with_due(root, student="ann", until="2026-12-12T23:59:00-05:00", reason="medical")
    what: list[str] = []
    with cal_mod.transaction(root, what) as cal:
        cal.data["late_days"] = 3
        what.append("late_days 3")
    written = late.publish_student_calendars(root, exchange, "course", ["ann", "bob"])
    folder = exchange / "course" / "calendar"
    assert sorted(Path(p).name for p in written) == ["ann.json", "bob.json"]
    assert folder.stat().st_mode & 0o777 == 0o711, "students cannot list the folder"
    assert (folder / "ann.json").stat().st_mode & 0o077 == 0, "nobody but the owner reads it"
    # a student who is a user here reads their own file (a POSIX ACL), and not another's
    import tempfile

    exchange = Path(tempfile.mkdtemp(prefix="h21-exchange-"))  # /tmp/pytest-of-root is 0700
    os.chmod(exchange, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(exchange, ignore_errors=True))
    folder = exchange / "course" / "calendar"
    late.publish_student_calendars(root, exchange, "course", ["ann", "bob", "nobody"])
    as_nobody = ["runuser", "-u", "nobody", "--", "cat"]
    mine = subprocess.run(as_nobody + [str(folder / "nobody.json")], capture_output=True, text=True)
    assert mine.returncode == 0 and json.loads(mine.stdout)["student"] == "nobody", mine.stderr
    other = subprocess.run(as_nobody + [str(folder / "ann.json")], capture_output=True, text=True)
    assert other.returncode != 0 and "Permission denied" in other.stderr, other
    listing = subprocess.run(["runuser", "-u", "nobody", "--", "ls", str(folder)], capture_output=True, text=True)
    assert listing.returncode != 0, listing.stdout
    ann = json.loads((folder / "ann.json").read_text())
    bob = json.loads((folder / "bob.json").read_text())
    assert ann["assignments"][0]["due"] == "2026-12-12T23:59:00-05:00" and ann["assignments"][0]["extension"]
    assert bob["assignments"][0]["due"] == "2026-12-10T23:59:00-05:00" and bob["assignments"][0]["extension"] is None
    assert ann["late_days_left"] == 3 and "medical" not in (folder / "bob.json").read_text()
    from lec4.homework import deadlines  # what the student runs in their notebook

    shown = deadlines.text(deadlines.load("ann", exchange=str(exchange), course="course"))
    assert "hw: due Sat 2026-12-12 23:59" in shown and "your extension: medical" in shown
    assert "late days left for the term: 3 of 3" in shown
    assert "Thu 2026-12-10 23:59" in deadlines.text(deadlines.load("bob", exchange=str(exchange), course="course"))


# --- the submission time: timestamp.txt bounded by the exchange's ctime --------------------------

def _nbgrader_stamp(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")  # nbgrader's timestamp_format


def _set_due(root: Path, when: dt.datetime, **policy) -> None:
    what: list[str] = []
    with cal_mod.transaction(root, what) as cal:
        what.append(cal_mod.set_due(cal, "hw", when.isoformat(timespec="seconds"), policy or None))


def _collect(root: Path, entry: Path, student: str) -> Path:
    """What nbgrader's collect does with an inbound entry: a copy into submitted/ (new ctimes)."""
    dest = root / "submitted" / student / "hw"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(entry, dest)
    return dest


def test_a_backdated_timestamp_counts_from_the_last_change_in_the_exchange(tmp_path):
    """eve submits 25 h after the deadline with timestamp.txt (and the folder's name) set back
    to an hour before it: the files' last change in the exchange, which she cannot set back,
    is her submission time, and the record says so."""
    root, exchange = tmp_path / "course", tmp_path / "exchange"
    root.mkdir()
    now = dt.datetime.now(UTC).replace(microsecond=0)
    due = now - dt.timedelta(hours=25)
    _set_due(root, due)  # default policy: 15 min grace, 10% per started day
    entry = _inbound(exchange, "eve", _nbgrader_stamp(due - dt.timedelta(hours=1)), "eve late, backdated")
    submitted = _collect(root, entry, "eve")
    lines = late.keep_on_time(root, exchange, "course", "hw")
    assert any(x.startswith("eve:") and "after the time in its timestamp.txt" in x for x in lines), lines
    measured = late.collected_time(root, "hw", "eve", submitted)
    assert measured["used"] == "exchange" and measured["timestamp"] == (due - dt.timedelta(hours=1)).isoformat()
    assert dt.datetime.fromisoformat(measured["time"]) >= now - dt.timedelta(seconds=5)
    record = {"assignment": "hw", "student": "eve", "score": 7.0, "max_score": 7.0, "submission_time": measured}
    lt = late.apply_to_record(root, cal_mod.load(root), record, dt.datetime.fromisoformat(measured["time"]), None)["late"]
    assert lt["lateness_s"] >= 25 * 3600 and lt["penalty"] == pytest.approx(1.4) and lt["final_score"] == pytest.approx(5.6)
    assert lt["submitted_from"]["used"] == "exchange"
    note = late.note_text(lt, 7.0)
    assert "last changed in the exchange" in note and "Late penalty: -1.4 points" in note, note
    # an honest submission: the copy's few seconds after timestamp.txt are no lateness
    honest = _inbound(exchange, "fred", _nbgrader_stamp(now - dt.timedelta(seconds=30)), "fred")
    assert late.submission_time(honest)["used"] == "timestamp.txt"


def test_a_later_collect_or_copy_cannot_make_an_on_time_submission_late(tmp_path, monkeypatch):
    """gil submits 2 s before the due date (no grace); the TA collects after it, twice, and
    changes the copy: the time stays the inbound entry's, on time. Measuring the TA's copy
    instead would have made it late (checked, so that the test can tell; no slack for the
    submit's copy, so that seconds count)."""
    import time

    monkeypatch.setattr(late, "SLACK_S", 0.0)
    root, exchange = tmp_path / "course", tmp_path / "exchange"
    root.mkdir()
    now = dt.datetime.now(UTC)
    entry = _inbound(exchange, "gil", _nbgrader_stamp(now), "gil on time")
    due = (now + dt.timedelta(seconds=2)).replace(microsecond=0) + dt.timedelta(seconds=1)
    _set_due(root, due, grace_minutes=0, per="hour")
    time.sleep(max(0.0, (due - dt.datetime.now(UTC)).total_seconds()) + 1.2)
    for _ in range(2):  # collect, then collect again later
        submitted = _collect(root, entry, "gil")
        late.keep_on_time(root, exchange, "course", "hw")
        os.chmod(submitted / "hw.ipynb", 0o640)  # the TA's copy changed after the due date
        measured = late.collected_time(root, "hw", "gil", submitted)
        assert measured["changed"] and dt.datetime.fromisoformat(measured["time"]) < due, measured
        lt = late.late_object(cal_mod.load(root), "hw", "gil", dt.datetime.fromisoformat(measured["time"]), 7.0, 7.0, 0)
        assert lt["lateness_s"] == 0 and lt["penalty"] == 0, lt
    assert dt.datetime.fromisoformat(late.submission_time(submitted)["time"]) > due, "the copy's own time is late"
