"""The late policy applied by the grader: the ``late`` object of a grade record, the
gradebook's penalty, the feedback's note, the on-time copy, recomputation and students' view.

The rules are :mod:`autograder.calendar`'s (pure). This module applies them:

- The submission time: ``timestamp.txt`` is written by the student's own nbgrader, so it
  is bounded by what the student cannot set back: the latest inode change time of the
  exchange's inbound entry and everything in it (:func:`submission_time`, measured by
  ``python -m autograder collect`` from the inbound entry, never from the TA's copy, kept in
  ``autograded/.received/``): a backdated timestamp.txt, or files changed in an on-time
  folder after the deadline, count from when they were last written.
- :class:`~autograder.nbgrader_hooks.apply_late_policy.ApplyLatePolicy` is the autograde step after nbgrader's ``SaveAutoGrades`` (it
  replaces nbgrader's ``AssignLatePenalties``, which never had a due date): it takes the
  submission's time (:func:`collected_time`, kept in the record's ``submission_time`` with
  which time was used and why), computes the ``late`` object against that student's own due
  date, grades the kept on-time copy (``ontime/STUDENT/ASSIGNMENT/``, see
  :func:`keep_on_time`) when the latest submission is penalized, counts the better one,
  stores the result in the gradebook (export's ``score`` = raw - penalty is the final score)
  and puts a note at the top of the autograded notebook, hence the student's feedback.
- :func:`recompute` redoes all of that from the grade records alone (no code is run) after
  a due date, extension or late-day budget changed, and returns who changed by how much.
- :func:`publish_student_calendars` writes each student's own due dates and late days into
  the exchange (``EXCHANGE/COURSE/calendar/STUDENT.json``, readable by that student only);
  ``lec4.homework.deadlines`` shows it in their notebook.

The ``late`` object (a grade record's key; null when the assignment has no due date)::

    {"due": ISO, "timezone": IANA name | null (the due date's, for showing it),
     "extension": {"until", "reason", "granted_by"} | null, "submitted": ISO,
     "lateness_s": float, "late_days_used": int, "penalty": float (points), "rule": str,
     "raw_score": float, "final_score": float, "counted": "latest" | "on-time",
     "on_time": {"submitted": ISO, "score": float, "cells": {grade_id: points}} | null,
     "submitted_from": {"used": "timestamp.txt" | "exchange" | "timestamp.txt (not measured)",
                        "timestamp": ISO, "changed": ISO, "why": str}}   (from the record's
                        ``submission_time``, see :func:`submission_time`)

``raw_score`` and ``penalty`` are the latest submission's; ``final_score`` is what counts.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from autograder import calendar, records

ONTIME = "ontime"  # COURSE/ontime/STUDENT/ASSIGNMENT/: the last on-time submission, when a later one exists
NOTE_KEY = "autograder_late"  # metadata key of the late note cell in the autograded notebook


def timestamp_of(folder: Path) -> dt.datetime | None:
    """The exchange timestamp of a submission folder (its ``timestamp.txt``), or None."""
    path = Path(folder) / "timestamp.txt"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return calendar.parse_timestamp(text).astimezone(dt.timezone.utc)  # UTC: compares safely across zones


RECEIVED = Path("autograded") / ".received"  # ASSIGNMENT/STUDENT.json: collect's measured submission times
SLACK_S = 120.0  # nbgrader's submit writes timestamp.txt, then copies the files: a copy may take this long


def last_change(folder: Path) -> dt.datetime:
    """The latest inode change time (ctime) of ``folder`` and of every entry in it (links not
    followed), in UTC. Writing, renaming, linking or chmod-ing anything there sets it to now,
    and nobody but root (by setting the clock) can set it back: the earliest instant the
    submission's files can have been in the state they are in now."""
    latest = os.lstat(folder).st_ctime
    for parent, dirs, files in os.walk(folder):  # never follows a symbolic link
        for name in dirs + files:
            try:
                latest = max(latest, os.lstat(os.path.join(parent, name)).st_ctime)
            except FileNotFoundError:  # removed meanwhile: its folder's ctime changed
                continue
    return dt.datetime.fromtimestamp(math.ceil(latest), dt.timezone.utc)  # whole seconds, never earlier


def submission_time(folder: Path) -> dict:
    """When the submission in the exchange folder ``folder`` (the inbound entry, never a copy
    of it) was made, bounded by what its student cannot set back:

    ``timestamp.txt`` is written by the student's own nbgrader (they can write any time in
    it), so the time used is the later of it and :func:`last_change` of the folder --
    except that a last change at most :data:`SLACK_S` after the timestamp is the submit's
    own copy, and the timestamp is used. Returns ``{"time", "timestamp", "timestamp_text",
    "changed", "used": "timestamp.txt" | "exchange", "why"}`` (ISO strings; ``time`` is the
    submission time). CalendarError when timestamp.txt is unreadable."""
    folder = Path(folder)
    changed = last_change(folder)
    try:
        text = (folder / "timestamp.txt").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = None
    stamp = None if text is None else calendar.parse_timestamp(text).astimezone(dt.timezone.utc)
    out = {"timestamp": calendar.iso(stamp), "timestamp_text": text, "changed": calendar.iso(changed)}
    if stamp is None:
        return {**out, "time": calendar.iso(changed), "used": "exchange",
                "why": "no timestamp.txt: the time its files were last changed in the exchange"}
    ahead = (changed - stamp).total_seconds()
    if ahead <= SLACK_S:
        return {**out, "time": calendar.iso(stamp), "used": "timestamp.txt",
                "why": (f"timestamp.txt (nbgrader submit's time); its files were last changed in the exchange "
                        f"{'before it' if ahead <= 0 else calendar.duration(ahead) + ' after it (the copy)'}")}
    return {**out, "time": calendar.iso(changed), "used": "exchange",
            "why": (f"its files were last changed in the exchange {calendar.duration(ahead)} after the time in "
                    f"its timestamp.txt ({calendar.iso(stamp)}): a submission counts as made no earlier than "
                    "its files were last written")}


def received_path(course_root: Path, assignment: str, student: str) -> Path:
    """``COURSE/autograded/.received/ASSIGNMENT/STUDENT.json`` (staff only, beside the records)."""
    records.record_path(course_root, assignment, student)  # refuses names that are paths
    return Path(course_root) / RECEIVED / assignment / f"{student}.json"


def collected_time(course_root: Path, assignment: str, student: str, folder: Path) -> dict | None:
    """The measured time (:func:`submission_time`) of the inbound entry collected into
    ``folder`` (``submitted/`` or ``ontime/``: copies, whose own ctimes are the TA's copy
    time), as ``python -m autograder collect`` wrote it; the entry is the one whose
    timestamp.txt the copy holds. A plain ``timestamp.txt`` reading (``used`` = "timestamp.txt
    (not measured)") when collect did not measure it; None without a timestamp."""
    folder = Path(folder)
    try:
        text = (folder / "timestamp.txt").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    try:
        kept = json.loads(received_path(course_root, assignment, student).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        kept = {}
    for key in ("latest", "on_time"):
        if kept.get(key) and kept[key].get("timestamp_text") == text:
            return kept[key]
    stamp = calendar.parse_timestamp(text).astimezone(dt.timezone.utc)
    return {"time": calendar.iso(stamp), "timestamp": calendar.iso(stamp), "timestamp_text": text, "changed": None,
            "used": "timestamp.txt (not measured)",
            "why": "timestamp.txt only: this submission was not collected by `python -m autograder collect`, "
                   "which measures when its files were last changed in the exchange"}


def late_days_spent(course_root: Path, cal: calendar.Calendar, assignment: str, student: str) -> int:
    """Late days ``student`` spent on the assignments due before ``assignment`` (from their records)."""
    spent = 0
    for other in cal.assignments():
        if other == assignment:
            break
        try:
            late = records.read_record(records.record_path(course_root, other, student)).get("late")
        except records.RecordError:
            continue
        spent += int((late or {}).get("late_days_used", 0))
    return spent


def late_object(cal: calendar.Calendar, assignment: str, student: str, submitted: dt.datetime | None,
                raw_score: float, max_score: float, late_days_left: int,
                on_time: dict | None = None) -> dict | None:
    """The record's ``late`` object for a submission (see the module doc); None without a due date."""
    due, ext = calendar.effective_due(cal, assignment, student)
    if due is None:
        return None
    zone = cal.due(assignment)[1]
    if submitted is None:  # no timestamp.txt (a submission put in submitted/ by hand): taken as on time
        return {"due": calendar.iso(due), "timezone": zone, "extension": _ext(ext), "submitted": None,
                "lateness_s": 0.0,
                "late_days_used": 0, "penalty": 0.0,
                "rule": "no exchange timestamp (timestamp.txt) with this submission: no late penalty applied",
                "raw_score": raw_score, "final_score": raw_score, "counted": "latest", "on_time": on_time}
    label = calendar.shown(due, zone) + (f", extended: {ext.reason}" if ext else "")
    a = calendar.assess(due=due, submitted=submitted, policy=cal.policy(assignment), raw_score=raw_score,
                        max_score=max_score, late_days_left=late_days_left, due_label=label)
    late = {"due": calendar.iso(due), "timezone": zone, "extension": _ext(ext), "submitted": calendar.iso(submitted),
            "lateness_s": round(a.lateness_s, 3), "late_days_used": a.late_days_used, "penalty": a.penalty,
            "rule": a.rule, "raw_score": raw_score, "final_score": a.final_score, "counted": "latest",
            "on_time": on_time}
    if on_time is not None and a.penalty > 0 and on_time["score"] > a.final_score:
        late["final_score"] = on_time["score"]
        late["counted"] = "on-time"
        late["late_days_used"] = 0
        late["rule"] += (f"; your on-time submission of {calendar.shown(dt.datetime.fromisoformat(on_time['submitted']), zone)} "
                         f"scored {on_time['score']:g}, more than {a.final_score:g}: it counts")
    elif on_time is not None and a.penalty > 0:
        late["rule"] += (f"; your on-time submission scored {on_time['score']:g}, not more than "
                         f"{a.final_score:g}: the latest counts")
    return late


def _ext(ext: calendar.Extension | None) -> dict | None:
    return None if ext is None else {"until": calendar.iso(ext.until), "reason": ext.reason,
                                     "granted_by": ext.granted_by}


def final_score(record: dict) -> float:
    """What counts: the late object's final score, else the record's score."""
    late = record.get("late")
    return float(late["final_score"]) if late else float(record["score"])


def note_text(late: dict | None, max_score: float) -> str | None:
    """The feedback's late note (Markdown) for a ``late`` object; None when nothing is to say."""
    if not late:
        return None
    lines = ["### Due date and late policy", ""]
    due = dt.datetime.fromisoformat(late["due"])
    zone = late.get("timezone")
    lines.append(f"- Your due date: **{calendar.shown(due, zone)}**" +
                 (f" (extension granted: {late['extension']['reason']})" if late.get("extension") else ""))
    if late.get("submitted"):
        lines.append(f"- Submitted: {calendar.shown(dt.datetime.fromisoformat(late['submitted']), zone)}")
        source = late.get("submitted_from") or {}
        if source.get("used") == "exchange":
            lines.append(f"- Submission time: {source['why']}")
    lines.append(f"- Rule applied: {late['rule']}")
    if late["counted"] == "on-time":
        lines.append(f"- **Your on-time submission counts: {late['final_score']:g} / {max_score:g}** "
                     f"(this late one scored {late['raw_score']:g}, minus {late['penalty']:g} for lateness; "
                     "the checks below are those of this late submission)")
    elif late["penalty"] > 0:
        lines.append(f"- **Late penalty: -{late['penalty']:g} points: {late['raw_score']:g} -> "
                     f"{late['final_score']:g} / {max_score:g}**")
    else:
        lines.append(f"- No late penalty: {late['final_score']:g} / {max_score:g}")
    if late.get("late_days_used"):
        lines.append(f"- Late days used on this assignment: {late['late_days_used']}")
    return "\n".join(lines) + "\n"


def put_note(nb, late: dict | None, max_score: float) -> None:
    """Replace (or add) the late note as the first cell of ``nb``; remove it when there is none.
    The notebook's due-date cell (``deadlines.show``, run by the grader where no student
    calendar is) gets as its output what the late policy used, or a pointer to the note."""
    import nbformat

    nb.cells = [c for c in nb.cells if not c.get("metadata", {}).get(NOTE_KEY)]
    text = note_text(late, max_score)
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and "deadlines.show(" in cell.get("source", ""):
            shown = ("As graded: see 'Due date and late policy' at the top of this feedback (your due date, "
                     "when you submitted, the rule applied)." if text else
                     "As graded: this assignment had no due date when it was graded.")
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=shown + "\n")]
    if text:
        cell = nbformat.v4.new_markdown_cell(text)
        cell.metadata[NOTE_KEY] = True
        cell.pop("id", None)
        nb.cells.insert(0, cell)


# --- gradebook -------------------------------------------------------------------------------------

def store_in_gradebook(db_url: str, assignment: str, student: str, record: dict) -> None:
    """The gradebook's total becomes the late object's final score: per-cell auto scores of the
    counted submission, and its late penalty on the (single) notebook; the gradebook's due
    date and the student's extension follow the calendar (nbgrader's own fields)."""
    from nbgrader.api import Gradebook

    late = record.get("late")
    cells = ({gid: c["points"] for gid, c in record["cells"].items()} if not late or late["counted"] == "latest"
             else dict(late["on_time"]["cells"]))
    penalty = late["penalty"] if late and late["counted"] == "latest" else 0.0
    with Gradebook(db_url) as gb:
        sub = gb.find_submission(assignment, student)
        for notebook in sub.notebooks:
            for grade in notebook.grades:
                if grade.name in cells and not grade.needs_manual_grade:
                    grade.auto_score = cells[grade.name]
        for n, notebook in enumerate(sub.notebooks):  # one notebook per assignment (as the record)
            notebook.late_submission_penalty = (penalty or None) if n == 0 else None
        if late:
            due = dt.datetime.fromisoformat(late["due"])
            base = due if not late.get("extension") else None
            if base is not None:
                sub.assignment.duedate = due.astimezone(dt.timezone.utc).replace(tzinfo=None)
                sub.extension = None
            elif sub.assignment.duedate is not None:
                sub.extension = due.astimezone(dt.timezone.utc).replace(tzinfo=None) - sub.assignment.duedate
            when = late["on_time"]["submitted"] if late["counted"] == "on-time" else late.get("submitted")
            if when:
                sub.timestamp = dt.datetime.fromisoformat(when).astimezone(dt.timezone.utc).replace(tzinfo=None)
        gb.db.commit()


def set_gradebook_duedate(db_url: str, assignment: str, due: dt.datetime) -> None:
    """nbgrader's own due date field (Formgrader, export's duedate column), in naive UTC."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            gb.find_assignment(assignment).duedate = due.astimezone(dt.timezone.utc).replace(tzinfo=None)
            gb.db.commit()
        except MissingEntry:
            pass


# --- the autograde step ----------------------------------------------------------------------------

def grade_on_time(course_root: Path, assignment: str, student: str, notebook: str, device: str) -> dict | None:
    """The kept on-time copy graded by the hidden suite (its own sandbox), as the late object's
    ``on_time``; None when no copy is kept."""
    folder = Path(course_root) / ONTIME / student / assignment
    nb_path = folder / f"{notebook}.ipynb"
    measured = collected_time(course_root, assignment, student, folder) if folder.is_dir() else None
    if measured is None or not nb_path.is_file():
        return None
    when = dt.datetime.fromisoformat(measured["time"])
    from autograder.engine.grading import grade
    from autograder.engine.sandbox import default_sandbox
    from autograder.notebook import submission_source
    from autograder.suites import load_suite

    source_nb = Path(course_root) / "solutions" / assignment / f"{notebook}.ipynb"
    code = submission_source(source_nb, nb_path)
    cells = grade(load_suite(assignment), code, device=device, sandbox=default_sandbox(device, assignment))
    return {"submitted": calendar.iso(when), "score": round(sum(float(c.points) for c in cells.values()), 2),
            "cells": {gid: float(c.points) for gid, c in cells.items()}, "source_sha256": records.sha256_text(code)}


def apply_to_record(course_root: Path, cal: calendar.Calendar, record: dict, submitted: dt.datetime | None,
                    on_time: dict | None) -> dict:
    """``record`` with its ``late`` object and ``submission_timestamp`` set (in place; returned)."""
    assignment, student = record["assignment"], record["student"]
    left = 0
    if cal.late_days is not None:
        left = max(0, cal.late_days - late_days_spent(course_root, cal, assignment, student))
    record["submission_timestamp"] = calendar.iso(submitted)
    record["late"] = late_object(cal, assignment, student, submitted, float(record["score"]),
                                 float(record["max_score"]), left, on_time)
    measured = record.get("submission_time")
    if record["late"] and measured:  # which time was used and why (the feedback says it)
        record["late"]["submitted_from"] = {k: measured.get(k) for k in ("used", "timestamp", "changed", "why")}
    return record


# --- recompute from records ------------------------------------------------------------------------

@dataclass
class Change:
    assignment: str
    student: str
    before: float
    after: float
    rule: str


def recompute(course_root: Path, db_url: str, only: str | None = None) -> tuple[list[Change], list[str]]:
    """Apply the current calendar to every grade record (in due-date order, so late days are
    spent in that order) without running code: record, gradebook and autograded notebook's
    note. Returns (changes of final score, problems)."""
    course_root = Path(course_root)
    cal = calendar.load(course_root)
    base = course_root / records.RECORDS
    names = [a for a in cal.assignments()] + sorted(
        p.name for p in base.glob("*") if p.is_dir() and p.name not in cal.data["assignments"])
    changes, problems = [], []
    for assignment in names:
        for path in sorted((base / assignment).glob("*.json")):
            try:
                record = records.read_record(path)
            except records.RecordError as err:
                problems.append(str(err))
                continue
            old_late = record.get("late")
            before = final_score(record)
            submitted = (dt.datetime.fromisoformat(record["submission_timestamp"])
                         if record.get("submission_timestamp") else None)
            if "submission_timestamp" not in record:
                problems.append(f"{assignment}/{record['student']}: graded before due dates were recorded "
                                "(no submission_timestamp): regrade with autograde --regrade")
                continue
            on_time = (old_late or {}).get("on_time")
            apply_to_record(course_root, cal, record, submitted, on_time)
            late = record["late"]
            if late and late["penalty"] > 0 and on_time is None and (
                    course_root / ONTIME / record["student"] / assignment).is_dir():
                problems.append(f"{assignment}/{record['student']}: an on-time copy is kept but was never graded: "
                                f"`python -m autograder autograde {assignment} --student {record['student']} --regrade`")
            if late == old_late:
                continue
            records.write_record(path, record)
            try:
                store_in_gradebook(db_url, assignment, record["student"], record)
            except Exception as err:  # noqa: BLE001 -- reported, the other students go on
                problems.append(f"{assignment}/{record['student']}: gradebook not updated ({type(err).__name__}: {err})")
            _update_autograded_note(course_root, assignment, record)
            after = final_score(record)
            if only is None or only == assignment:
                changes.append(Change(assignment, record["student"], before, after, (late or {}).get("rule", "no due date")))
    return changes, problems


def _update_autograded_note(course_root: Path, assignment: str, record: dict) -> None:
    import nbformat

    for path in sorted((course_root / "autograded" / record["student"] / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        put_note(nb, record.get("late"), float(record["max_score"]))
        # a new file renamed over the old one: never half-written, and it needs only the folder's
        # write permission (the grader may leave the notebook itself read-only)
        text = nbformat.writes(nb)
        records.write_atomic(path, text if text.endswith("\n") else text + "\n",
                             stat.S_IMODE(path.stat().st_mode) | 0o200)


# --- collect: keep the last on-time submission -----------------------------------------------------

def inbound_submissions(exchange: Path, course_id: str, assignment: str) -> dict[str, list[tuple[dt.datetime, Path, dict]]]:
    """{student: [(submission time, inbound folder, :func:`submission_time`)] oldest first} of
    ``assignment`` in the exchange's inbound; folders that are links, not owned by the student
    they name, or without a readable timestamp are left out (as
    :class:`autograder.exchange.SafeCollect` does)."""
    import stat

    from autograder.exchange import _uid_of

    inbound = Path(exchange) / course_id / "inbound"
    found: dict[str, list] = {}
    for entry in sorted(inbound.glob(f"*+{assignment}+*")) if inbound.is_dir() else []:
        student = entry.name.split("+", 1)[0]
        try:
            st = os.lstat(entry)
            uid = _uid_of(student)
            if not stat.S_ISDIR(st.st_mode) or (uid is not None and st.st_uid != uid):
                continue
            ts = entry / "timestamp.txt"
            if not stat.S_ISREG(os.lstat(ts).st_mode):
                continue
            measured = submission_time(entry)
        except (OSError, calendar.CalendarError):
            continue
        found.setdefault(student, []).append((dt.datetime.fromisoformat(measured["time"]), entry, measured))
    return {s: sorted(v, key=lambda x: x[0]) for s, v in found.items()}


def keep_on_time(course_root: Path, exchange: Path, course_id: str, assignment: str) -> list[str]:
    """After nbgrader's collect: measure every student's submissions in the exchange's inbound
    (:func:`submission_time`: never earlier than their files' last change there, whatever
    timestamp.txt says) and write them to :func:`received_path` (``latest``: the entry
    collected into ``submitted/``; ``on_time``: the kept copy's), which autograde uses as
    the submission times. For every student whose latest submission is after their own due
    date + grace, copy their last submission before it into ``ontime/STUDENT/ASSIGNMENT/``
    (with :func:`autograder.exchange.copy_regular_files`); remove a kept copy that is no
    longer needed. Returns one line per kept copy (and per refused entry, and per submission
    whose time is its last change rather than its timestamp.txt).

    Measured after the copy: reading a folder leaves its ctime as it is, and a submission made
    while collect runs is measured too."""
    from autograder.exchange import _uid_of, copy_regular_files

    cal = calendar.load(course_root)
    lines = []
    for student, subs in inbound_submissions(exchange, course_id, assignment).items():
        received = {"latest": None, "on_time": None}
        try:
            collected = (Path(course_root) / "submitted" / student / assignment / "timestamp.txt").read_text(
                encoding="utf-8").strip()
        except OSError:
            collected = None
        matching = [s for s in subs if s[2]["timestamp_text"] == collected]
        if matching:  # the entry nbgrader collected (the latest measured of any bearing its timestamp)
            received["latest"] = {**matching[-1][2], "inbound": matching[-1][1].name}
            if received["latest"]["used"] == "exchange":
                lines.append(f"{student}: submission {matching[-1][1].name}: {received['latest']['why']}")
        due, _ = calendar.effective_due(cal, assignment, student)
        dest = Path(course_root) / ONTIME / student / assignment
        limit = None if due is None else due + dt.timedelta(minutes=cal.policy(assignment).grace_minutes)
        on_time = [] if limit is None else [s for s in subs if s[0] <= limit]
        if limit is None or subs[-1][0] <= limit or not on_time:
            if dest.exists():
                shutil.rmtree(dest)
        else:
            when, folder, measured = on_time[-1]
            if dest.exists():
                shutil.rmtree(dest)
            refused = copy_regular_files(folder, dest, _uid_of(student))
            received["on_time"] = {**measured, "inbound": folder.name}
            lines.append(f"{student}: latest submission {calendar.iso(subs[-1][0])} is late; kept the on-time one of "
                         f"{calendar.iso(when)} in {dest.relative_to(course_root)}")
            lines += [f"{student}: {x}" for x in refused]
        path = received_path(course_root, assignment, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        records.write_atomic(path, json.dumps(received, indent=1) + "\n")
    return lines


# --- what students see -----------------------------------------------------------------------------

def student_view(course_root: Path, cal: calendar.Calendar, student: str) -> dict:
    """One student's own due dates (with their extensions) and late days: what they may see."""
    spent = 0
    rows = []
    for assignment in cal.assignments():
        due, ext = calendar.effective_due(cal, assignment, student)
        zone = cal.due(assignment)[1]
        try:
            late = records.read_record(records.record_path(course_root, assignment, student)).get("late")
        except records.RecordError:
            late = None
        used = int((late or {}).get("late_days_used", 0))
        spent += used
        rows.append({"assignment": assignment, "due": calendar.iso(due), "due_shown": calendar.shown(due, zone),
                     "extension": None if ext is None else {"until": calendar.iso(ext.until), "reason": ext.reason},
                     "policy": cal.policy(assignment).describe(), "late_days_used": used})
    return {"student": student, "late_days": cal.late_days,
            "late_days_left": None if cal.late_days is None else max(0, cal.late_days - spent),
            "assignments": rows, "written_at": calendar.iso(dt.datetime.now(dt.timezone.utc))}


def grant_read(path: Path, uid: int) -> None:
    """Let user ``uid`` read ``path`` (mode 0600, owned by whoever runs this) with a POSIX ACL,
    which the file's owner may set without root: owner rw, that user r, nobody else."""
    import struct

    def entry(tag: int, perm: int, who: int = 0xFFFFFFFF) -> bytes:
        return struct.pack("<HHI", tag, perm, who)
    acl = (struct.pack("<I", 2) + entry(0x01, 6) + entry(0x02, 4, uid) + entry(0x04, 0) + entry(0x10, 4)
           + entry(0x20, 0))  # USER_OBJ, USER, GROUP_OBJ, MASK, OTHER (the kernel's xattr layout)
    os.setxattr(path, "system.posix_acl_access", acl)


def publish_student_calendars(course_root: Path, exchange: Path, course_id: str, students: list[str]) -> list[str]:
    """Write ``EXCHANGE/COURSE/calendar/STUDENT.json`` per student: mode 0600 for whoever runs
    this (a TA, root) plus a POSIX ACL letting that student (when a user here) read it; the
    folder is 0711 (students cannot list it). Returns what was written."""
    from autograder.exchange import _uid_of

    cal = calendar.load(course_root)
    folder = Path(exchange) / course_id / "calendar"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o711)
    written = []
    for student in students:
        path = folder / f"{student}.json"
        text = json.dumps(student_view(course_root, cal, student), indent=1) + "\n"
        tmp = folder / f".{student}.json.tmp"
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        uid = _uid_of(student)
        if uid is not None:
            grant_read(tmp, uid)
        os.replace(tmp, path)
        written.append(str(path))
    return written
