"""nbgrader hooks: sandboxed execution and trusted verdicts inside plain ``nbgrader autograde``.

The repo's ``nbgrader_config.py`` loads :mod:`~autograder.nbgrader_hooks.config`
(``load_subconfig``), which calls :func:`configure`. From then on ``nbgrader autograde`` (and
``python -m autograder autograde``, whose workers, :mod:`autograder.worker`, run nbgrader's
autograde in-process submission after submission) does:

1. sanitize (nbgrader's own): clear outputs, drop duplicate ids, restore the kernel spec
   and the instructor's test cells and metadata (:class:`RestoreMetadata`), re-add deleted test cells;
   then :class:`StartTrustedGrading` starts step 3's hidden suite, which runs beside step 2;
2. :class:`SandboxedExecute`: run the notebook in a kernel confined by bubblewrap
   (:mod:`autograder.engine.sandbox`, connected over Unix sockets since it has no network:
   :class:`SandboxedKernelManager`),
   with a per-cell timeout, a per-notebook time budget, a cap on output size, a cap on the
   bytes it writes (:class:`autograder.engine.sandbox.ScratchWatch`), and a clear note in the
   cell where the kernel died, timed out or wrote too much. Its working folder gets the
   submission's other files through :func:`autograder.exchange.copy_regular_files` (links are
   never followed); refused entries are listed in a note at the top of the notebook. Graded test cells are *not*
   run there (their output would be replaced anyway, and the hidden suite grades the code,
   not the notebook's state): they get :data:`GRADED_OUTSIDE`;
3. :class:`TrustedVerdicts`: grade the submission's code with the assignment's hidden
   suite (:func:`autograder.engine.grading.grade`, its own sandboxed runner, verdicts computed
   outside), *replace* every graded cell's output by that verdict -- a pass/fail list
   with short hints and the partial credit as the ``execute_result`` nbgrader reads -- and
   make the submission's grade record (:mod:`autograder.records`), from which
   ``python -m autograder autograde`` decides; :class:`WriteGradeRecord`, the last step,
   writes it once nbgrader has saved the grades. So whatever the kernel printed, raised or
   patched, nbgrader's ``SaveAutoGrades`` only sees the trusted result.

Configuration is by traitlets options (``c.TrustedVerdicts.device``,
``c.SandboxedExecute.timeout``, ...); :func:`configure` fills them from the ``AUTOGRADER_*``
environment variables (:mod:`autograder.options`, the one place they are read): a TA's plain
``nbgrader`` and the Slurm scripts set options that way; ``python -m autograder``'s flags,
passed to its workers as traitlets options, win over them.

One module per job, the way nbgrader lays out its own ``preprocessors/``:

- ``restore_metadata``: :class:`RestoreMetadata` (sanitize step);
- ``start_trusted_grading``: :class:`StartTrustedGrading` (step 1);
- ``sandboxed_execute``: :class:`SandboxedExecute` (step 2);
- ``kernel_manager``: :class:`SandboxedKernelManager`, the sandboxed kernel step 2 runs;
- ``trusted_verdicts``: :class:`TrustedVerdicts` and :func:`verdict_outputs` (step 3);
- ``apply_late_policy``: :class:`ApplyLatePolicy` (after nbgrader's ``SaveAutoGrades``: :mod:`autograder.late`);
- ``write_grade_record``: :class:`WriteGradeRecord` (last step) and :func:`submission_sha256`;
- ``hidden_suite``: the hidden suite on the submission's code (steps 1 and 3);
- ``cells``: which cells are graded test cells, and the outputs the hooks write;
- ``settings``: default time limits (:data:`CELL_TIMEOUT_S`, :data:`NOTEBOOK_TIMEOUT_S`, written in
  :mod:`autograder.options`), device, the ``AUTOGRADER_*`` variables mapped onto traitlets options;
- ``pipeline``: :func:`configure`, the preprocessors' order in nbgrader's pipeline;
- ``config``: the file ``nbgrader_config.py`` loads.
"""
from autograder.nbgrader_hooks.cells import KERNEL_PROBLEMS, is_graded_test
from autograder.nbgrader_hooks.kernel_manager import SandboxedKernelManager
from autograder.nbgrader_hooks.pipeline import configure
from autograder.nbgrader_hooks.restore_metadata import RestoreMetadata
from autograder.nbgrader_hooks.sandboxed_execute import GRADED_OUTSIDE, SandboxedExecute
from autograder.nbgrader_hooks.settings import (CELL_TIMEOUT_S, NOTEBOOK_TIMEOUT_S, configure_from_environment,
                                                grading_device)
from autograder.nbgrader_hooks.start_trusted_grading import StartTrustedGrading
from autograder.nbgrader_hooks.trusted_verdicts import TrustedVerdicts, verdict_outputs
from autograder.nbgrader_hooks.write_grade_record import WriteGradeRecord, submission_sha256

__all__ = ["CELL_TIMEOUT_S", "GRADED_OUTSIDE", "KERNEL_PROBLEMS", "NOTEBOOK_TIMEOUT_S", "RestoreMetadata",
           "SandboxedExecute", "SandboxedKernelManager", "StartTrustedGrading", "TrustedVerdicts",
           "WriteGradeRecord", "configure", "configure_from_environment", "grading_device", "is_graded_test",
           "submission_sha256", "verdict_outputs"]
