"""The marks the grader and the runner in the sandbox share: the cell separator of a submission's
source (the one definition, shared by the side that writes the source,
:func:`autograder.notebook.submission_source`, loaded by every nbgrader command through the hooks'
configuration, and the runner that splits it in the sandbox) and the file by which the runner says
that the submission's top-level code has run. A module of its own, without torch, so that loading
nbgrader's configuration does not import torch (1.1 s of CPU per command)."""
from __future__ import annotations

import re

CELL_MARKER = "# --- cell {grade_id} ---"
LOADED = "loaded"  # written by the runner into its out folder once the top-level code has run
CELL_MARK = re.compile("^" + re.escape(CELL_MARKER).replace(re.escape("{grade_id}"), ".*") + "$", re.M)


def cell_marker(grade_id: str) -> str:
    """The line that starts the cell ``grade_id`` in a submission's source (see :data:`CELL_MARK`)."""
    return CELL_MARKER.format(grade_id=grade_id)
