"""The hooks' configuration: the notebook run's default time limits, where sandboxed kernels get
their working folders, which device grades, and the ``AUTOGRADER_*`` environment variables a
TA's plain ``nbgrader`` sets options with."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

KERNEL_HOME = Path(os.environ.get("AUTOGRADER_SCRATCH", tempfile.gettempdir()))
# The notebook run's default time limits (SandboxedExecute), the one place they are written:
# ``--cell-timeout`` / ``--notebook-timeout`` and AUTOGRADER_CELL_TIMEOUT / _NOTEBOOK_TIMEOUT override them.
CELL_TIMEOUT_S = 60  # seconds per cell
NOTEBOOK_TIMEOUT_S = 600  # wall-clock seconds for the whole notebook


def grading_device(wanted: str = "") -> str:
    """``wanted`` if set, else the GPU when torch sees one, else the CPU."""
    if wanted:
        return wanted
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def configure_from_environment(c, environ) -> None:
    """A TA's plain ``nbgrader`` (or a Slurm job) may set options by environment variables:
    ``AUTOGRADER_CELL_TIMEOUT`` / ``_NOTEBOOK_TIMEOUT`` (s), ``AUTOGRADER_DEVICE``,
    ``AUTOGRADER_DB_URL``, ``AUTOGRADER_COURSE_ROOT``. ``python -m autograder`` does not rely
    on them: it passes its options as traitlets configuration (see :mod:`autograder.worker`),
    which is applied after this file and wins."""
    c.SandboxedExecute.timeout = int(environ.get("AUTOGRADER_CELL_TIMEOUT", CELL_TIMEOUT_S))
    c.SandboxedExecute.notebook_timeout = int(environ.get("AUTOGRADER_NOTEBOOK_TIMEOUT", NOTEBOOK_TIMEOUT_S))
    if environ.get("AUTOGRADER_DEVICE"):
        for section in ("StartTrustedGrading", "SandboxedExecute", "TrustedVerdicts"):
            c[section].device = environ["AUTOGRADER_DEVICE"]
    if environ.get("AUTOGRADER_DB_URL"):  # PostgreSQL (or any SQLAlchemy URL) for parallel TAs
        c.CourseDirectory.db_url = environ["AUTOGRADER_DB_URL"]
    if environ.get("AUTOGRADER_COURSE_ROOT"):
        c.CourseDirectory.root = environ["AUTOGRADER_COURSE_ROOT"]
