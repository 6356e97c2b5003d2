"""Your own due dates, extensions and late days, as the course staff's calendar says.

The TA's ``python -m autograder calendar`` (and every ``due``/``extend``) writes one file per
student into the course's nbgrader exchange, ``EXCHANGE/COURSE/calendar/STUDENT.json``,
readable only by that student. In a notebook or a terminal of the course's JupyterHub::

    from lec4.homework import deadlines
    deadlines.show()                 # every assignment
    deadlines.show("hw-attention")   # one

or ``python -m lec4.homework.deadlines [ASSIGNMENT]``. The second cell of every homework notebook
(``solutions/*/``, hence the release) calls :func:`show` for its assignment: run it, and
the notebook shows your own due date where you work. The exchange and course come from the
hub's environment (``LEC4_EXCHANGE``, ``LEC4_COURSE_ID``), else nbgrader's defaults.
"""
from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

DEFAULT_EXCHANGE = "/srv/nbgrader/exchange"
DEFAULT_COURSE = "10423-lec4"


def calendar_file(student: str | None = None, exchange: str | None = None, course: str | None = None) -> Path:
    """Where the staff put ``student``'s (default: you) own calendar."""
    exchange = exchange or os.environ.get("LEC4_EXCHANGE", DEFAULT_EXCHANGE)
    course = course or os.environ.get("LEC4_COURSE_ID", DEFAULT_COURSE)
    return Path(exchange) / course / "calendar" / f"{student or getpass.getuser()}.json"


def load(student: str | None = None, exchange: str | None = None, course: str | None = None) -> dict:
    """Your calendar as the staff wrote it; FileNotFoundError saying so when there is none yet."""
    path = calendar_file(student, exchange, course)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not path.parents[2].is_dir():  # no exchange at all: not in the course's hub
            raise FileNotFoundError(f"no course calendar here ({path.parents[2]} does not exist): in the "
                                    "course's JupyterHub this shows your own due date and late days left") from None
        raise FileNotFoundError(f"no calendar for you at {path} yet: the course staff has not published "
                                "due dates (ask them, or check again later)") from None


def text(view: dict, assignment: str | None = None) -> str:
    """The lines :func:`show` prints."""
    rows = [r for r in view["assignments"] if assignment in (None, r["assignment"])]
    if assignment and not rows:
        return f"{assignment}: no due date set yet"
    lines = []
    for row in rows:
        ext = f" (your extension: {row['extension']['reason']})" if row.get("extension") else ""
        lines.append(f"{row['assignment']}: due {row['due_shown']}{ext}")
        lines.append(f"  late policy: {row['policy']}")
        if row.get("late_days_used"):
            lines.append(f"  late days used: {row['late_days_used']}")
    if view.get("late_days") is not None:
        lines.append(f"late days left for the term: {view['late_days_left']} of {view['late_days']}")
    return "\n".join(lines)


def show(assignment: str | None = None, **where) -> None:
    """Print your due date(s), extension and late days left (a line saying why not, never an
    error: the first cell of every homework notebook calls it)."""
    try:
        view = load(**where)
    except FileNotFoundError as err:
        print(err)
        return
    except (OSError, KeyError, ValueError) as err:  # unreadable, or not what the staff's tool writes
        print(f"your calendar could not be read ({type(err).__name__}: {err}): ask the course staff")
        return
    print(text(view, assignment))


if __name__ == "__main__":
    show(sys.argv[1] if len(sys.argv) > 1 else None)
