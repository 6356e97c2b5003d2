"""What the hooks read from and write into notebook cells: which cells are graded test cells,
and the stream and error outputs the hooks put in them."""
from __future__ import annotations

import nbformat

# The errors the hooks write into a cell when the kernel could not finish it (sandboxed_execute),
# by name: autograde lists them in its summary (autograder.cli), the feedback shows them.
CELL_TIMEOUT, NOTEBOOK_TIMEOUT, DEAD_KERNEL, SCRATCH_LIMIT = KERNEL_PROBLEMS = (
    "CellTimeoutError", "NotebookTimeoutError", "DeadKernelError", "ScratchLimitError")
NOT_GRADED, TESTS_FAILED = "NotGraded", "TestsFailed"  # trusted_verdicts: a cell outside the tests; 0 points


def is_graded_test(cell) -> bool:
    """A test cell nbgrader grades (code, ``grade`` and not ``solution``): the trusted verdict fills it."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _stream(text: str, name: str):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _error(ename: str, evalue: str, traceback: list[str] | None = None):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=traceback or [f"{ename}: {evalue}"])
