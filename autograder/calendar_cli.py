"""``python -m autograder due | extend | calendar | recompute-late``: the course calendar's commands.

Assignments are the folders of ``COURSE/solutions/``. Students are those the gradebook knows
(``nbgrader db student add``, or anyone graded) and those with a folder in ``COURSE/submitted/``.
Bad input (an unknown assignment or student, a date without a time zone, an extension that
ends before the due date, a malformed or hand-edited calendar) exits 2 with the reason, and
nothing is changed. After every change the final scores are recomputed from the grade records
(no code is run) and each student whose final score changed is printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder import calendar, late

COMMANDS = ("due", "extend", "calendar", "recompute-late")


def add_arguments(sub) -> None:
    due = sub.add_parser("due", help="set or move an assignment's due date (and its late policy)")
    due.add_argument("assignment")
    due.add_argument("datetime", help=calendar.DATETIME_HELP)
    due.add_argument("--grace-minutes", type=float, help="late by at most this much: no penalty")
    due.add_argument("--penalty-percent", type=float, help="%% of the maximum score per started --per")
    due.add_argument("--per", choices=sorted(calendar.UNITS))
    due.add_argument("--zero-after-hours", type=float, help="later than this (after late days): 0 points")
    ext = sub.add_parser("extend", help="grant (or --revoke) a student's extension")
    ext.add_argument("assignment")
    ext.add_argument("student")
    when = ext.add_mutually_exclusive_group()
    when.add_argument("--until", help=calendar.DATETIME_HELP)
    when.add_argument("--days", type=float, help="N days after the due date (calendar days in its time zone)")
    ext.add_argument("--reason", help="why (kept in the calendar and its audit log; required to grant)")
    ext.add_argument("--revoke", action="store_true")
    cal = sub.add_parser("calendar", help="the table of due dates, extensions and late days (with --exchange: "
                         "also each student's own view into the exchange)")
    cal.add_argument("assignment", nargs="?")
    cal.add_argument("--late-days", type=int, help="set the term's late-day budget per student (-1: none)")
    cal.add_argument("--accept-edit", action="store_true",
                     help="validate a calendar.json changed by hand and record it in the audit log")
    rec = sub.add_parser("recompute-late", help="apply the calendar to every grade record again (no code run)")
    rec.add_argument("assignment", nargs="?")


def _fail(command: str, message: str) -> int:
    print(f"{command}: {message}", file=sys.stderr)
    return 2


def known_assignments(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "solutions").iterdir() if p.is_dir()) if (root / "solutions").is_dir() else []


def known_students(course) -> list[str]:
    """Students of the gradebook and of ``submitted/``."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        names = {s.id for s in gb.students}
    base = course.root / "submitted"
    names |= {p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")} if base.is_dir() else set()
    return sorted(names)


def _check_assignment(course, command: str, assignment: str | None) -> str | None:
    if assignment is None:
        return None
    known = known_assignments(course.root)
    if assignment not in known:
        return (f"unknown assignment {assignment!r}: expected one of {', '.join(known) or '(none)'} "
                f"(the folders of {course.root / 'solutions'})")
    return None


def run(args, course) -> int:
    command = args.command
    problem = _check_assignment(course, command, getattr(args, "assignment", None))
    if problem:
        return _fail(command, f"{problem}; nothing was changed")
    try:
        if command == "due":
            return _due(args, course)
        if command == "extend":
            return _extend(args, course)
        if command == "calendar":
            return _calendar(args, course)
        return _recompute(course, args.assignment)
    except calendar.CalendarError as err:
        return _fail(command, f"{err}; nothing was changed")


def _due(args, course) -> int:
    policy = {k: v for k, v in (("grace_minutes", args.grace_minutes), ("penalty_percent", args.penalty_percent),
                                ("per", args.per), ("zero_after_hours", args.zero_after_hours)) if v is not None}
    what: list[str] = []
    with calendar.transaction(course.root, what) as cal:
        what.append(calendar.set_due(cal, args.assignment, args.datetime, policy or None))
    cal = calendar.load(course.root)
    when, zone = cal.due(args.assignment)
    print(f"{args.assignment} is due {calendar.shown(when, zone)}; {cal.policy(args.assignment).describe()}")
    late.set_gradebook_duedate(course.db_url, args.assignment, when)
    return _recompute(course, None)


def _extend(args, course) -> int:
    students = known_students(course)
    if args.student not in students:
        return _fail("extend", f"unknown student {args.student!r}: expected a student of the gradebook or of "
                     f"{course.root / 'submitted'} ({len(students)} known; add one with `nbgrader db student add`); "
                     "nothing was changed")
    what: list[str] = []
    with calendar.transaction(course.root, what) as cal:
        if args.revoke:
            if args.until or args.days is not None:
                raise calendar.CalendarError("--revoke takes no --until/--days")
            what.append(calendar.revoke(cal, args.assignment, args.student) +
                        (f" reason {args.reason!r}" if args.reason else ""))
        else:
            what.append(calendar.grant(cal, args.assignment, args.student, until=args.until, days=args.days,
                                       reason=args.reason or ""))
    cal = calendar.load(course.root)
    due, ext = calendar.effective_due(cal, args.assignment, args.student)
    zone = cal.due(args.assignment)[1]
    print(f"{args.student}'s due date for {args.assignment}: {calendar.shown(due, zone)}"
          + (f" (extension: {ext.reason})" if ext else " (no extension)"))
    return _recompute(course, None)


def _recompute(course, only: str | None) -> int:
    changes, problems = late.recompute(course.root, course.db_url, only)
    for c in changes:
        print(f"  {c.assignment} {c.student}: final {c.before:g} -> {c.after:g} ({c.after - c.before:+g}): {c.rule}")
    print(f"recomputed from the grade records: {len(changes)} final score(s) changed")
    for p in problems:
        print(f"  problem: {p}", file=sys.stderr)
    published = _publish(course) if course.exchange is not None else 0
    return 1 if problems or published else 0


def _publish(course) -> int:
    folder = course.exchange / course.course_id / "calendar"
    try:
        written = late.publish_student_calendars(course.root, course.exchange, course.course_id,
                                                 known_students(course))
    except OSError as err:
        print(f"the calendar is saved, but the students' own calendars could not be written into {folder} "
              f"({err.strerror}: {err.filename}): run `calendar` as a user who may write there", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} student calendar(s) into {folder}")
    return 0


def _calendar(args, course) -> int:
    if args.late_days is not None or args.accept_edit:
        what: list[str] = []
        with calendar.transaction(course.root, what, accept_edit=args.accept_edit) as cal:
            if args.accept_edit:
                what.append("accepted a change made outside the CLI (validated)")
            if args.late_days is not None:
                if args.late_days < -1:
                    raise calendar.CalendarError(f"--late-days {args.late_days}: expected a number >= 0 (or -1: none)")
                cal.data["late_days"] = None if args.late_days == -1 else args.late_days
                what.append(f"late_days {cal.data['late_days']}")
        code = _recompute(course, None)
    else:
        code = _publish(course) if course.exchange is not None else 0
    print(table(course, args.assignment))
    return code


def table(course, only: str | None = None) -> str:
    """The TA's table: per assignment its due date and policy, then each student with an
    extension or late days spent (due date, extension, lateness, penalty, final score)."""
    from autograder import records

    cal = calendar.load(course.root)
    lines = []
    budget = cal.late_days
    lines.append(f"late days per student for the term: {'none' if budget is None else budget}")
    students = known_students(course)
    for assignment in cal.assignments():
        if only and assignment != only:
            continue
        when, zone = cal.due(assignment)
        lines.append(f"\n{assignment}: due {calendar.shown(when, zone)}; {cal.policy(assignment).describe()}")
        rows = []
        for student in students:
            due, ext = calendar.effective_due(cal, assignment, student)
            try:
                record = records.read_record(records.record_path(course.root, assignment, student))
            except records.RecordError:
                record = None
            lt = (record or {}).get("late")
            if ext is None and not (lt and (lt["penalty"] or lt.get("late_days_used") or lt["counted"] != "latest")):
                continue
            spent = late.late_days_spent(course.root, cal, assignment, student) + int((lt or {}).get("late_days_used", 0))
            rows.append((student, calendar.shown(due, zone), ext.reason if ext else "-",
                         calendar.duration(lt["lateness_s"]) if lt else "-",
                         f"{lt['penalty']:g}" if lt else "-",
                         f"{lt['final_score']:g}/{record['max_score']:g} ({lt['counted']})" if lt else "not graded",
                         str((lt or {}).get("late_days_used", 0)),
                         "-" if budget is None else str(max(0, budget - spent))))
        if not rows:
            lines.append("  no extensions, nobody late")
            continue
        head = ("student", "own due date", "extension", "late", "penalty", "final", "late days", "left")
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        for row in [head] + rows:
            lines.append("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    if not cal.assignments():
        lines.append("no due dates yet: `python -m autograder due ASSIGNMENT DATETIME`")
    return "\n".join(lines)
