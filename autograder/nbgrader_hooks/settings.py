"""The hooks' configuration: the notebook run's default time limits, which device grades, and the
traitlets options a TA's plain ``nbgrader`` (or a grading worker) takes from the ``AUTOGRADER_*``
environment variables. The variables, their types and defaults (the time limits among them) are
written once, in :mod:`autograder.options`; this module only maps them onto nbgrader's options."""
from __future__ import annotations

from typing import Mapping

from autograder import options
from autograder.options import CELL_TIMEOUT_S, NOTEBOOK_TIMEOUT_S

__all__ = ["CELL_TIMEOUT_S", "HIDDEN_SUITE_STEPS", "NOTEBOOK_TIMEOUT_S", "configure_from_environment", "grading_device"]

# The preprocessors that run the hidden suite (start it, or grade again): --call-timeout is theirs.
HIDDEN_SUITE_STEPS = ("StartTrustedGrading", "TrustedVerdicts")


def grading_device(wanted: str = "") -> str:
    """``wanted`` if set, else the GPU when torch sees one, else the CPU."""
    if wanted:
        return wanted
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def configure_from_environment(c, environ: Mapping[str, str] | None = None) -> None:
    """A TA's plain ``nbgrader`` (or a Slurm job) may set options by environment variables
    (:data:`autograder.options.VARIABLES`: ``AUTOGRADER_CELL_TIMEOUT`` / ``_NOTEBOOK_TIMEOUT`` /
    ``_CALL_TIMEOUT`` (s),
    ``AUTOGRADER_DEVICE``, ``AUTOGRADER_DB_URL``, ``AUTOGRADER_COURSE_ROOT``), read from ``environ``
    (default: this process's environment). ``python -m autograder`` passes its flags as traitlets
    configuration (see :mod:`autograder.worker`), which is applied after this file and wins."""
    given = options.Options.from_environment(environ)
    c.SandboxedExecute.timeout = given.cell_timeout
    c.SandboxedExecute.notebook_timeout = given.notebook_timeout
    if given.call_timeout is not None:
        for section in HIDDEN_SUITE_STEPS:
            c[section].call_timeout = given.call_timeout
    if given.device:
        for section in ("StartTrustedGrading", "SandboxedExecute", "TrustedVerdicts"):
            c[section].device = given.device
    if given.db_url:  # PostgreSQL (or any SQLAlchemy URL) for parallel TAs
        c.CourseDirectory.db_url = given.db_url
    if given.course_root:
        c.CourseDirectory.root = given.course_root
