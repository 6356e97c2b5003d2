"""The assignment's hidden suite on a submission: which suite and which code (laid out by the
source notebook), and grading that code in the production sandbox. Shared by
:class:`~autograder.nbgrader_hooks.start_trusted_grading.StartTrustedGrading` and
:class:`~autograder.nbgrader_hooks.trusted_verdicts.TrustedVerdicts`."""
from __future__ import annotations

import time
from pathlib import Path

from nbgrader.coursedir import CourseDirectory

from autograder.engine.sandbox import default_sandbox
from autograder.notebook import submission_source


def _suite_and_code(config, resources, nb):
    """(the assignment's hidden suite, the submission's code laid out by the source notebook)."""
    from autograder.suites import load_suite

    info = resources["nbgrader"]
    coursedir = CourseDirectory(config=config)
    source_nb = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / \
        f"{info['notebook']}.ipynb"
    return load_suite(info["assignment"]), submission_source(source_nb, nb)


def _timed_grade(suite, code: str, device: str, call_timeout: int | None = None):
    """(CellGrades, seconds) of the hidden suite on ``code`` in the production sandbox; ``call_timeout``
    (s) limits every hidden call, None: each call's own limit."""
    from autograder.engine.grading import grade

    started = time.monotonic()
    cells = grade(suite, code, device=device, sandbox=default_sandbox(device, suite.ASSIGNMENT),
                  call_timeout=call_timeout)
    return cells, time.monotonic() - started
