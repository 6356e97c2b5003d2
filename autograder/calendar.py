"""The course calendar: due dates, late policy, extensions and late days, with an audit log.

One JSON file kept with the course (under version control with it), ``COURSE/calendar.json``::

    {
     "schema": 1,
     "late_days": 3,                      # per-student budget for the term (null: none)
     "policy": {"grace_minutes": 15, "penalty_percent": 10, "per": "day", "zero_after_hours": 120},
     "assignments": {
      "hw-attention": {"due": "2026-12-10T23:59:00-05:00", "timezone": "America/New_York",
                       "policy": {"penalty_percent": 5, "per": "hour"}}       # overrides the course's
     },
     "extensions": {
      "hw-attention": {"student1": {"until": "2026-12-12T23:59:00-05:00", "reason": "medical",
                                   "granted_by": "ta", "granted_at": "2026-12-09T10:00:00+00:00"}}
     }
    }

Beside it, ``COURSE/calendar.audit.jsonl`` is the append-only audit log: one JSON line per
change (``at``, ``who`` = the OS user, ``what``, and the SHA-256 of the calendar file it
wrote). Every change goes through :func:`transaction`: an exclusive ``flock`` on
``COURSE/.calendar.lock`` (two commands never lose an update), read and validate, change,
validate again, write atomically (``records.write_atomic``: temp file, fsync, ``os.replace``), append the audit line.
A file that is malformed, or that differs from what the audit log's last line wrote (a
hand edit, a ``git checkout`` of another version), is refused with a :class:`CalendarError`
saying what is wrong and how to fix it (``python -m autograder calendar --accept-edit``
validates such a file and audits it); nothing is changed.

Rules (pure functions, :func:`assess`):

- A due date is an instant. It is given with its time zone (an offset, ``Z``, or an IANA
  zone name such as ``America/New_York``); a date without one is refused. When given with an
  IANA zone, ``--days N`` is N calendar days in that zone (same wall-clock time, also across
  a daylight-saving change).
- A student's own due date (:func:`effective_due`) is the later of the assignment's and
  their extension's ``until``.
- Lateness = submission time - own due date, in real seconds. Within ``grace_minutes``:
  on time. Beyond it, the student's remaining late days are used first (each covers one
  started day, like an extension of 24 h), then every started ``per`` (hour or day) of
  the lateness left costs ``penalty_percent`` % of the maximum score; lateness left beyond
  ``zero_after_hours`` scores 0. A penalty never exceeds the raw score.
- Late days are spent in the order of the assignments' due dates.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autograder import options

SCHEMA = 1
FILE = "calendar.json"
AUDIT = "calendar.audit.jsonl"
LOCK = ".calendar.lock"
UNITS = {"hour": 3600.0, "day": 86400.0}
DAY = 86400.0
DEFAULT_POLICY = {"grace_minutes": 15, "penalty_percent": 10, "per": "day", "zero_after_hours": 120}
POLICY_KEYS = set(DEFAULT_POLICY)
DATETIME_HELP = ("expected an ISO 8601 date and time with its time zone, e.g. 2026-12-10T23:59-05:00, "
                 "2026-12-10T23:59Z or '2026-12-10 23:59 America/New_York'")


class CalendarError(ValueError):
    """A calendar file, change or date that is not valid; the message says what and what is expected."""


# --- dates ---------------------------------------------------------------------------------------

def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; CalendarError when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"unknown time zone {name!r}: expected an IANA name such as America/New_York, "
                            "Europe/Berlin or UTC") from None


def parse_datetime(text: str) -> tuple[dt.datetime, str | None]:
    """(an aware datetime, its IANA zone name or None) from what a TA types (see DATETIME_HELP)."""
    text = str(text).strip()
    name = None
    head, _, tail = text.rpartition(" ")
    if head and ("/" in tail or tail.upper() == "UTC"):  # "2026-12-10 23:59 America/New_York"
        name, text = ("UTC" if tail.upper() == "UTC" else tail), head.strip()
    try:
        when = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise CalendarError(f"{text!r} is not a date and time: {DATETIME_HELP}") from None
    if name is not None:
        if when.tzinfo is not None:
            raise CalendarError(f"{text!r} {name}: give either an offset or a zone name, not both")
        when = when.replace(tzinfo=zone(name))
        if when.utcoffset() != when.replace(fold=1).utcoffset():
            raise CalendarError(f"{text} does not exist or happens twice in {name} (daylight-saving "
                                "change): give the offset, e.g. 2026-11-01T01:30-05:00")
    elif when.tzinfo is None:
        raise CalendarError(f"{text!r} has no time zone: {DATETIME_HELP}")
    return when, name


def parse_timestamp(text: str) -> dt.datetime:
    """An nbgrader exchange timestamp (``timestamp.txt``) as an aware datetime.

    nbgrader writes ``Exchange.timestamp_format`` (default ``%Y-%m-%d %H:%M:%S.%f %Z``) in
    ``Exchange.timezone`` (default UTC). Accepted: ISO 8601 with an offset, or date, time and
    a zone that is UTC/GMT, a numeric offset (``+0900``) or an IANA name. A zone abbreviation
    such as ``JST`` or ``CET`` is refused: nbgrader's own parser reads an unknown one as UTC,
    which is hours wrong for a student in another time zone.
    """
    text = str(text).strip()
    try:
        when = dt.datetime.fromisoformat(text)
        if when.tzinfo is not None:
            return when
    except ValueError:
        pass
    parts = text.split()
    if len(parts) == 3:
        date_time, name = " ".join(parts[:2]), parts[2]
        try:
            naive = dt.datetime.fromisoformat(date_time)
        except ValueError:
            naive = None
        if naive is not None and naive.tzinfo is None:
            if name.upper() in ("UTC", "GMT", "Z"):
                return naive.replace(tzinfo=dt.timezone.utc)
            if name[:1] in "+-" and name[1:].replace(":", "").isdigit():
                digits = name[1:].replace(":", "")
                if len(digits) == 4:
                    offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                    return naive.replace(tzinfo=dt.timezone(offset if name[0] == "+" else -offset))
            if "/" in name:
                return naive.replace(tzinfo=zone(name))
            raise CalendarError(f"submission timestamp {text!r}: time zone {name!r} is an abbreviation, "
                                "which does not name one offset; expected UTC, a numeric offset (+0900) or an "
                                "IANA name (students' nbgrader: Exchange.timezone = 'UTC')")
    raise CalendarError(f"submission timestamp {text!r} is not readable: expected nbgrader's "
                        "'YYYY-MM-DD HH:MM:SS.ffffff ZONE' or ISO 8601 with an offset")


def iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


def shown(when: dt.datetime, name: str | None = None) -> str:
    """``when`` for people: in zone ``name`` when given (with its abbreviation), and in UTC."""
    local = when.astimezone(zone(name)) if name else when
    utc = when.astimezone(dt.timezone.utc)
    label = f"{local:%a %Y-%m-%d %H:%M} {local.tzname() or local.strftime('%z')}"
    return label if local.utcoffset() == dt.timedelta(0) else f"{label} ({utc:%Y-%m-%d %H:%M} UTC)"


def duration(seconds: float) -> str:
    """``1 d 2 h 3 min`` (rounded down to minutes; seconds below a minute shown as such)."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    d, rest = divmod(minutes, 1440)
    h, m = divmod(rest, 60)
    return " ".join(p for p in (f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m else "") if p)


def add_days(when: dt.datetime, days: float, name: str | None) -> dt.datetime:
    """``when`` + ``days`` calendar days in zone ``name`` (same wall-clock time), or in real
    time (24 h per day) when the due date has only an offset."""
    if not name:
        return when + dt.timedelta(days=days)
    local = when.astimezone(zone(name))
    return (local.replace(tzinfo=None) + dt.timedelta(days=days)).replace(tzinfo=zone(name))


# --- the calendar -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    grace_minutes: float
    penalty_percent: float
    per: str
    zero_after_hours: float | None

    def describe(self) -> str:
        zero = f"; 0 points when more than {self.zero_after_hours:g} h late" if self.zero_after_hours is not None else ""
        return (f"{self.grace_minutes:g} min grace, then {self.penalty_percent:g}% of the maximum score "
                f"per started {self.per}{zero}")


@dataclass(frozen=True)
class Extension:
    until: dt.datetime
    reason: str
    granted_by: str
    granted_at: str

    def as_dict(self) -> dict:
        return {"until": iso(self.until), "reason": self.reason, "granted_by": self.granted_by,
                "granted_at": self.granted_at}


@dataclass
class Calendar:
    """The parsed calendar file (see the module doc); :func:`load` validates, :meth:`as_json` writes."""

    data: dict = field(default_factory=lambda: {"schema": SCHEMA, "late_days": None, "policy": dict(DEFAULT_POLICY),
                                                "assignments": {}, "extensions": {}})

    @property
    def late_days(self) -> int | None:
        return self.data.get("late_days")

    def assignments(self) -> list[str]:
        """Assignments with a due date, in due-date order (the order late days are spent in)."""
        return sorted(self.data["assignments"], key=lambda a: (self.due(a)[0].astimezone(dt.timezone.utc), a))

    def due(self, assignment: str) -> tuple[dt.datetime, str | None] | None:
        entry = self.data["assignments"].get(assignment)
        if entry is None:
            return None
        return dt.datetime.fromisoformat(entry["due"]), entry.get("timezone")

    def policy(self, assignment: str) -> Policy:
        merged = {**DEFAULT_POLICY, **self.data.get("policy", {}),
                  **self.data["assignments"].get(assignment, {}).get("policy", {})}
        return Policy(float(merged["grace_minutes"]), float(merged["penalty_percent"]), merged["per"],
                      None if merged["zero_after_hours"] is None else float(merged["zero_after_hours"]))

    def extension(self, assignment: str, student: str) -> Extension | None:
        entry = self.data["extensions"].get(assignment, {}).get(student)
        if entry is None:
            return None
        return Extension(dt.datetime.fromisoformat(entry["until"]), entry["reason"], entry["granted_by"],
                         entry["granted_at"])

    def extensions(self, assignment: str) -> dict[str, Extension]:
        return {s: self.extension(assignment, s) for s in sorted(self.data["extensions"].get(assignment, {}))}

    def as_json(self) -> str:
        return json.dumps(self.data, indent=1, sort_keys=False) + "\n"


def effective_due(cal: Calendar, assignment: str, student: str) -> tuple[dt.datetime | None, Extension | None]:
    """(the student's own due date, the extension that set it or None); (None, None) when the
    assignment has no due date. An extension ending before a (later moved) due date changes nothing."""
    due = cal.due(assignment)
    if due is None:
        return None, None
    ext = cal.extension(assignment, student)
    if ext is not None and ext.until.astimezone(dt.timezone.utc) > due[0].astimezone(dt.timezone.utc):
        return ext.until, ext
    return due[0], None


# --- validation -----------------------------------------------------------------------------------

def _check_policy(policy, where: str) -> list[str]:
    if not isinstance(policy, dict):
        return [f"{where} is a {type(policy).__name__}, expected an object with {sorted(POLICY_KEYS)}"]
    problems = [f"{where}: unknown key {k!r} (expected {sorted(POLICY_KEYS)})" for k in policy if k not in POLICY_KEYS]
    for key in ("grace_minutes", "penalty_percent"):
        if key in policy and (not isinstance(policy[key], (int, float)) or isinstance(policy[key], bool)
                              or policy[key] < 0 or not math.isfinite(policy[key])):
            problems.append(f"{where}.{key} = {policy[key]!r}: expected a number >= 0")
    if "penalty_percent" in policy and isinstance(policy["penalty_percent"], (int, float)) and policy["penalty_percent"] > 100:
        problems.append(f"{where}.penalty_percent = {policy['penalty_percent']!r}: expected at most 100")
    if "per" in policy and policy["per"] not in UNITS:
        problems.append(f"{where}.per = {policy['per']!r}: expected one of {sorted(UNITS)}")
    if "zero_after_hours" in policy and policy["zero_after_hours"] is not None and (
            not isinstance(policy["zero_after_hours"], (int, float)) or isinstance(policy["zero_after_hours"], bool)
            or policy["zero_after_hours"] <= 0):
        problems.append(f"{where}.zero_after_hours = {policy['zero_after_hours']!r}: expected a number > 0 or null")
    return problems


def _check_instant(value, where: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{where} = {value!r}: expected an ISO 8601 string with an offset"]
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return [f"{where} = {value!r}: not an ISO 8601 date and time"]
    return [] if when.tzinfo is not None else [f"{where} = {value!r}: no time zone offset"]


def validate(data, path: str = FILE) -> Calendar:
    """A :class:`Calendar` of ``data`` (parsed JSON); CalendarError listing every problem."""
    if not isinstance(data, dict):
        raise CalendarError(f"{path} holds a JSON {type(data).__name__}, expected an object")
    problems = []
    if data.get("schema") != SCHEMA:
        problems.append(f"schema = {data.get('schema')!r}, expected {SCHEMA}")
    known = {"schema", "late_days", "policy", "assignments", "extensions"}
    problems += [f"unknown key {k!r} (expected {sorted(known)})" for k in data if k not in known]
    late_days = data.get("late_days")
    if late_days is not None and (not isinstance(late_days, int) or isinstance(late_days, bool) or late_days < 0):
        problems.append(f"late_days = {late_days!r}: expected a whole number >= 0 or null")
    problems += _check_policy(data.get("policy", {}), "policy")
    assignments = data.get("assignments", {})
    if not isinstance(assignments, dict):
        problems.append("assignments: expected an object {assignment: {due, timezone, policy}}")
        assignments = {}
    for name, entry in assignments.items():
        where = f"assignments.{name}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected an object with 'due'")
            continue
        problems += [f"{where}: unknown key {k!r} (expected due, timezone, policy)" for k in entry
                     if k not in ("due", "timezone", "policy")]
        problems += _check_instant(entry.get("due"), f"{where}.due")
        if entry.get("timezone") is not None:
            try:
                zone(entry["timezone"])
            except CalendarError as err:
                problems.append(f"{where}.timezone: {err}")
        if "policy" in entry:
            problems += _check_policy(entry["policy"], f"{where}.policy")
    extensions = data.get("extensions", {})
    if not isinstance(extensions, dict):
        problems.append("extensions: expected an object {assignment: {student: extension}}")
        extensions = {}
    for name, students in extensions.items():
        if name not in assignments:
            problems.append(f"extensions.{name}: an extension for an assignment with no due date")
        if not isinstance(students, dict):
            problems.append(f"extensions.{name}: expected an object {{student: extension}}")
            continue
        for student, ext in students.items():
            where = f"extensions.{name}.{student}"
            if not isinstance(ext, dict):
                problems.append(f"{where}: expected an object with until, reason, granted_by, granted_at")
                continue
            problems += [f"{where}: missing {k!r}" for k in ("until", "reason", "granted_by", "granted_at")
                         if k not in ext]
            problems += [f"{where}: unknown key {k!r}" for k in ext
                         if k not in ("until", "reason", "granted_by", "granted_at")]
            problems += _check_instant(ext.get("until"), f"{where}.until")
            if not isinstance(ext.get("reason"), str) or not ext.get("reason", "").strip():
                problems.append(f"{where}.reason: expected a non-empty text")
    if problems:
        shown_ = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise CalendarError(f"{path} is not a valid course calendar: {shown_}")
    full = {"schema": SCHEMA, "late_days": None, "policy": dict(DEFAULT_POLICY), "assignments": {}, "extensions": {}}
    full.update(data)
    return Calendar(full)


# --- files: load, lock, write, audit -------------------------------------------------------------

def paths(root: Path) -> tuple[Path, Path, Path]:
    root = Path(root)
    return root / FILE, root / AUDIT, root / LOCK


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def who() -> str:
    """The OS user running this (and the one behind sudo, when run with sudo)."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = f"uid {os.getuid()}"
    behind = options.sudo_user()
    return f"{name} (sudo by {behind})" if behind and behind != name else name


def _last_audit(audit: Path) -> dict | None:
    try:
        lines = [x for x in audit.read_text(encoding="utf-8").splitlines() if x.strip()]
    except FileNotFoundError:
        return None
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise CalendarError(f"the calendar's audit log {audit} has a malformed last line: it is append-only "
                            "and written by `python -m autograder`; restore it from version control") from None


def _read(root: Path, accept_edit: bool = False) -> tuple[Calendar, str | None]:
    """(the calendar, the SHA-256 of its file or None when there is none); no lock taken."""
    file, audit, _ = paths(root)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    last = _last_audit(audit)
    if text is None:
        if last is not None and last.get("sha256") is not None:
            raise CalendarError(f"{file} is missing, but its audit log {audit} says it was written (last change: "
                                f"{last.get('what')!r} by {last.get('who')} at {last.get('at')}): restore it "
                                "from version control")
        return Calendar(), None
    digest = sha256(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CalendarError(f"{file} is not valid JSON ({err}); it is written by `python -m autograder due/extend`: "
                            "undo the hand edit or restore it from version control") from None
    cal = validate(data, str(file))
    if not accept_edit and (last is None or last.get("sha256") != digest):
        since = ("the audit log has no entry for it" if last is None else
                 f"the audit log's last change ({last.get('what')!r} by {last.get('who')} at {last.get('at')}) "
                 "wrote another version")
        raise CalendarError(f"{file} was changed outside `python -m autograder` ({since}); nothing is applied "
                            "from an unaudited calendar. Undo the edit, or check it and run "
                            "`python -m autograder calendar --accept-edit` to record it in the audit log")
    return cal, digest


def _share_with_group(fd: int) -> None:
    """Make a course file this user owns group read-write (the course folder's group is the staff's);
    a file another staff member owns is left as it is."""
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o660)
    except OSError:
        pass


@contextlib.contextmanager
def _locked(root: Path, exclusive: bool) -> Iterator[None]:
    _, _, lock = paths(root)
    # flock needs no write access: read-only, so that every staff member (group lec4-staff in the
    # hub) can take the lock whoever created the file and whatever their umask was
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o660)
    _share_with_group(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def load(root: Path) -> Calendar:
    """The course's calendar (empty when there is none); CalendarError when it is malformed or
    was changed outside the CLI."""
    with _locked(root, exclusive=False):
        return _read(root)[0]


@contextlib.contextmanager
def transaction(root: Path, what: list[str] | None = None, accept_edit: bool = False) -> Iterator[Calendar]:
    """Change the calendar under an exclusive lock: yields the current calendar, whose ``data``
    the caller changes and whose audit text it appends to ``what``; on a normal exit the result
    is validated, written atomically and audited. On an exception nothing is written."""
    file, audit, _ = paths(root)
    what = [] if what is None else what
    with _locked(root, exclusive=True):
        cal, before = _read(root, accept_edit=accept_edit)
        yield cal
        cal = validate(json.loads(json.dumps(cal.data)), str(file))
        text = cal.as_json()
        if not what:
            raise CalendarError("internal: a calendar change without an audit text")
        if text == (file.read_text(encoding="utf-8") if file.exists() else None) and not accept_edit:
            return  # nothing changed: no write, no audit line
        from autograder.records import write_atomic  # the grader's one atomic write (imports torch)

        write_atomic(file, text, 0o644)
        line = {"at": iso(dt.datetime.now(dt.timezone.utc)), "who": who(), "what": "; ".join(what),
                "sha256": sha256(text), "previous_sha256": before}
        fd = os.open(audit, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o660)
        _share_with_group(fd)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
            out.flush()
            os.fsync(out.fileno())


def audit_lines(root: Path) -> list[dict]:
    _, audit, _ = paths(root)
    try:
        return [json.loads(x) for x in audit.read_text(encoding="utf-8").splitlines() if x.strip()]
    except FileNotFoundError:
        return []


# --- changes (used by the CLI) ---------------------------------------------------------------------

def set_due(cal: Calendar, assignment: str, text: str, policy: dict | None = None) -> str:
    """Set or move ``assignment``'s due date (and policy overrides); the audit text."""
    when, name = parse_datetime(text)
    entry = cal.data["assignments"].setdefault(assignment, {})
    old = entry.get("due")
    entry["due"] = iso(when)
    if name:
        entry["timezone"] = name
    else:
        entry.pop("timezone", None)
    if policy:
        entry.setdefault("policy", {}).update(policy)
        problems = _check_policy(entry["policy"], f"policy of {assignment}")
        if problems:
            raise CalendarError("; ".join(problems))
    change = f"due {assignment} {iso(when)}" + (f" ({name})" if name else "")
    change += f" (was {old})" if old else ""
    return change + (f" policy {json.dumps(policy, sort_keys=True)}" if policy else "")


def grant(cal: Calendar, assignment: str, student: str, *, until: str | None = None, days: float | None = None,
          reason: str, granted_by: str | None = None) -> str:
    """Grant (or change) ``student``'s extension on ``assignment``; the audit text."""
    due = cal.due(assignment)
    if due is None:
        raise CalendarError(f"{assignment} has no due date yet: set it first with "
                            f"`python -m autograder due {assignment} DATETIME`")
    if not reason or not reason.strip():
        raise CalendarError("--reason: expected a non-empty reason (it is kept in the calendar and its audit log)")
    if (until is None) == (days is None):
        raise CalendarError("give exactly one of --until DATETIME and --days N")
    if days is not None:
        if not (days > 0) or not math.isfinite(days):
            raise CalendarError(f"--days {days:g}: expected a number of days > 0")
        when = add_days(due[0], days, due[1])
    else:
        when, _ = parse_datetime(until)
    if when.astimezone(dt.timezone.utc) <= due[0].astimezone(dt.timezone.utc):
        raise CalendarError(f"an extension until {iso(when)} ends before the due date of {assignment} "
                            f"({iso(due[0])}): expected a later date and time")
    ext = Extension(when, reason.strip(), granted_by or who(), iso(dt.datetime.now(dt.timezone.utc)))
    old = cal.data["extensions"].setdefault(assignment, {}).get(student)
    cal.data["extensions"][assignment][student] = ext.as_dict()
    return (f"extend {assignment} {student} until {iso(when)} reason {reason.strip()!r}"
            + (f" (was until {old['until']})" if old else ""))


def revoke(cal: Calendar, assignment: str, student: str) -> str:
    students = cal.data["extensions"].get(assignment, {})
    if student not in students:
        raise CalendarError(f"{student} has no extension on {assignment} to revoke")
    old = students.pop(student)
    if not students:
        cal.data["extensions"].pop(assignment)
    return f"revoke extension {assignment} {student} (was until {old['until']}, reason {old['reason']!r})"


# --- the rule -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Assessment:
    """What the late policy makes of one submission (all numbers plain; see :func:`assess`)."""

    lateness_s: float
    late_days_used: int
    units: int
    penalty: float
    final_score: float
    rule: str


def days_needed(lateness_s: float, policy: Policy) -> int:
    """Late days a submission this late would need to be on time (0 within the grace period)."""
    if lateness_s <= policy.grace_minutes * 60:
        return 0
    return math.ceil(lateness_s / DAY)


def assess(*, due: dt.datetime, submitted: dt.datetime, policy: Policy, raw_score: float, max_score: float,
           late_days_left: int = 0, due_label: str | None = None) -> Assessment:
    """The late policy applied to one submission (pure; see the module doc for the rules)."""
    # in UTC: Python subtracts two datetimes of the *same* ZoneInfo by wall clock, which is an
    # hour off across a daylight-saving change
    lateness = (submitted.astimezone(dt.timezone.utc) - due.astimezone(dt.timezone.utc)).total_seconds()
    label = due_label or shown(due)
    if lateness <= 0:
        return Assessment(0.0, 0, 0, 0.0, raw_score, f"on time (due {label})")
    if lateness <= policy.grace_minutes * 60:
        return Assessment(lateness, 0, 0, 0.0, raw_score,
                          f"{duration(lateness)} late, within the {policy.grace_minutes:g} min grace period "
                          f"(due {label}): no penalty")
    used = min(max(0, int(late_days_left)), days_needed(lateness, policy))
    left = max(0.0, lateness - used * DAY)
    parts = [f"{duration(lateness)} late (due {label})"]
    if used:
        parts.append(f"{used} late day{'s' * (used != 1)} used")
    if left <= 0:
        return Assessment(lateness, used, 0, 0.0, raw_score, "; ".join(parts) + ": no penalty")
    if policy.zero_after_hours is not None and left > policy.zero_after_hours * 3600:
        parts.append(f"more than {policy.zero_after_hours:g} h late{' after late days' if used else ''}: 0 points")
        return Assessment(lateness, used, 0, round(raw_score, 2), 0.0, "; ".join(parts))
    units = math.ceil(left / UNITS[policy.per])
    penalty = min(raw_score, round(units * policy.penalty_percent / 100 * max_score, 2))
    parts.append(f"{units} started {policy.per}{'s' * (units != 1)} x {policy.penalty_percent:g}% of "
                 f"{max_score:g} points = -{penalty:g}" + (" (capped at the score)" if penalty >= raw_score and units else ""))
    return Assessment(lateness, used, units, penalty, round(raw_score - penalty, 2), "; ".join(parts))
