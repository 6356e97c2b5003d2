"""The autograde pipeline: where the hooks (and nbgrader's own preprocessors) go in nbgrader's
sanitize and autograde steps, and nbgrader's options for them."""
from __future__ import annotations

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, DeduplicateIds, IgnorePattern, LimitOutput,
                                    OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

from autograder import feedback
from autograder.nbgrader_hooks.apply_late_policy import ApplyLatePolicy  # due dates, extensions, late policy
from autograder.nbgrader_hooks.restore_metadata import RestoreMetadata
from autograder.nbgrader_hooks.sandboxed_execute import SandboxedExecute
from autograder.nbgrader_hooks.settings import configure_from_environment
from autograder.nbgrader_hooks.start_trusted_grading import StartTrustedGrading
from autograder.nbgrader_hooks.trusted_verdicts import TrustedVerdicts
from autograder.nbgrader_hooks.write_grade_record import WriteGradeRecord


def configure(c) -> None:
    """Put the sandboxed execution and trusted verdicts into nbgrader's autograde pipeline."""
    c.Autograde.autograde_preprocessors = [
        StartTrustedGrading, SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        TrustedVerdicts, SaveAutoGrades, ApplyLatePolicy, CheckCellMetadata, WriteGradeRecord]
    c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, RestoreMetadata, OverwriteKernelspec,
                                          OverwriteCells, CheckCellMetadata]
    c.OverwriteCells.add_missing_cells = True  # a deleted test cell is graded anyway
    # nbgrader's own cut, per cell: stream lines and traceback lines (its only two options).
    # Bytes, whatever the line count (one gigantic line too), are capped per notebook while
    # they arrive: SandboxedExecute.max_output_bytes.
    c.LimitOutput.max_lines = 500
    c.LimitOutput.max_traceback = 100
    feedback.configure(c)  # feedback HTML with MathJax inlined (renders offline)
    configure_from_environment(c)  # AUTOGRADER_* (autograder/options.py)
