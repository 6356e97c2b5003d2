"""Autograde step after nbgrader's ``SaveAutoGrades``: due dates, extensions and the late policy
of :mod:`autograder.late` applied to the submission's grade record and the gradebook."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from autograder import calendar
from autograder.late import apply_to_record, collected_time, grade_on_time, put_note, store_in_gradebook
from autograder.nbgrader_hooks.settings import grading_device


class ApplyLatePolicy(NbGraderPreprocessor):
    """Autograde step after ``SaveAutoGrades``: the late policy (see the module doc)."""

    device = Unicode("", help="cpu / cuda for grading the on-time copy; empty: auto").tag(config=True)

    def preprocess(self, nb, resources):
        made = resources.get("autograder", {}).get("record")
        if made is None:
            return nb, resources
        _, record = made
        info = resources["nbgrader"]
        root = Path(CourseDirectory(config=self.config).root)
        cal = calendar.load(root)  # a malformed or unaudited calendar stops grading with its message
        folder = root / "submitted" / info["student"] / info["assignment"]
        measured = collected_time(root, info["assignment"], info["student"], folder)
        submitted = None if measured is None else dt.datetime.fromisoformat(measured["time"])
        record["submission_time"] = measured  # which time was used, and why
        apply_to_record(root, cal, record, submitted, None)
        late = record["late"]
        if late and late["penalty"] > 0:
            on_time = grade_on_time(root, info["assignment"], info["student"], info["notebook"],
                                    grading_device(self.device))
            if on_time is not None:
                apply_to_record(root, cal, record, submitted, on_time)
        store_in_gradebook(info["db_url"], info["assignment"], info["student"], record)
        put_note(nb, record["late"], float(record["max_score"]))
        if record["late"]:
            self.log.info("late policy: %s", record["late"]["rule"])
        return nb, resources
