"""nbgrader hooks: sandboxed execution and trusted verdicts inside plain ``nbgrader autograde``.

The repo's ``nbgrader_config.py`` loads this file (``load_subconfig``), which calls
:func:`configure`. From then on ``nbgrader autograde`` (and ``python -m autograder
autograde``, whose workers, :mod:`autograder.worker`, run nbgrader's autograde in-process
submission after submission) does:

1. sanitize (nbgrader's own): clear outputs, drop duplicate ids, restore the kernel spec
   and the instructor's test cells and metadata, re-add deleted test cells;
   then :class:`StartTrustedGrading` starts step 3's hidden suite, which runs beside step 2;
2. :class:`SandboxedExecute`: run the notebook in a kernel confined by bubblewrap
   (:mod:`autograder.engine.sandbox`, connected over Unix sockets since it has no network),
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
``c.SandboxedExecute.timeout``, ...); :func:`configure` fills them from ``AUTOGRADER_*``
environment variables only for a TA's plain ``nbgrader`` use.
"""
from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, DeduplicateIds, Execute,
                                    IgnorePattern, LimitOutput, NbGraderPreprocessor, OverwriteCells,
                                    OverwriteKernelspec, SaveAutoGrades)
from traitlets import Instance, Integer, Unicode

ROOT = Path(__file__).resolve().parents[1]

from autograder import diagnosis, exchange, feedback, records  # noqa: E402
from autograder.notebook import submission_source  # noqa: E402
from autograder.engine.sandbox import Limits, default_sandbox  # noqa: E402

KERNEL_HOME = Path(os.environ.get("AUTOGRADER_SCRATCH", tempfile.gettempdir()))
GRADED_OUTSIDE = "[graded outside your notebook by the course's grader]\n"
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


def is_graded_test(cell) -> bool:
    """A test cell nbgrader grades (code, ``grade`` and not ``solution``): the trusted verdict fills it."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def submission_sha256(folder: Path) -> str:
    """Hash of every file of a submission folder (names and contents): "the same submission"."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel started inside the bubblewrap sandbox, talking over Unix sockets in its workdir."""

    workdir = Instance(Path, allow_none=True)
    cpu_seconds = Integer(900)
    device = Unicode("")
    assignment = Unicode("")  # its public spec may set its own scratch and memory limits

    def sandbox(self):
        return default_sandbox(grading_device(self.device), self.assignment or None, cpu_seconds=self.cpu_seconds)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        return self.sandbox().wrap(cmd, self.workdir)

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if os.geteuid() == 0:  # the kernel runs as nobody and must read its connection file
            os.chown(self.connection_file, 65534, 65534)


class SandboxedExecute(Execute):
    """nbgrader's Execute, with the kernel sandboxed and time and output really bounded.

    ``timeout`` (per cell, s) and ``notebook_timeout`` (whole notebook, s, wall clock) end
    execution: the cell that overran gets an error output, the kernel is stopped and the
    remaining cells are marked as not run. (nbgrader's default interrupts the kernel and
    goes on, which a cell that catches KeyboardInterrupt defeats.) Output beyond
    ``max_output_bytes`` per notebook is dropped while it arrives, not after.

    Graded test cells (:func:`is_graded_test`) are not run: they get :data:`GRADED_OUTSIDE`
    and then :class:`TrustedVerdicts`' verdict. Running them would only cost time (hw-conv's
    trains a CNN) for output that is replaced, and the hidden suite grades the code alone.
    """

    device = Unicode("", help="the kernel sandbox's device (cpu / cuda); empty: auto").tag(config=True)

    timeout = Integer(CELL_TIMEOUT_S, help="seconds per cell").tag(config=True)
    notebook_timeout = Integer(NOTEBOOK_TIMEOUT_S, help="wall-clock seconds for the whole notebook").tag(config=True)
    max_output_bytes = Integer(2 * 2**20, help="output kept per notebook").tag(config=True)
    interrupt_on_timeout = False
    startup_timeout = 120

    def preprocess(self, nb, resources=None, km=None):
        workdir = Path(tempfile.mkdtemp(prefix="kernel-", dir=KERNEL_HOME))
        source_dir = Path(resources.get("metadata", {}).get("path") or ".") if resources else Path(".")
        info = (resources or {}).get("nbgrader", {})
        refused = []
        if source_dir.is_dir():  # data files the notebook reads: regular files only, links never followed
            refused = exchange.copy_regular_files(source_dir, workdir, None, ignore=_notebooks)
        if info.get("assignment") and info.get("student"):
            noted = exchange.read_refusals(Path(CourseDirectory(config=self.config).root), info["assignment"],
                                           info["student"])
            refused = noted + [line for line in refused if line not in noted]
        if refused:  # the student's feedback says what was left out and why
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(exchange.feedback_markdown(refused)))
            resources.setdefault("autograder", {})["refused"] = refused
        self._deadline = time.monotonic() + self.notebook_timeout
        self._stopped = None
        self._output_bytes = 0
        self.kernel_manager_class = SandboxedKernelManager
        self.kernel_name = "python3"
        km = SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(workdir / "kernel"),
                                    connection_file=str(workdir / "connection.json"),
                                    workdir=workdir, cpu_seconds=self.notebook_timeout + 60, device=self.device,
                                    assignment=info.get("assignment", ""))
        self._over_limit = None
        watch = km.sandbox().watch(workdir, lambda message: self._kill_kernel(km, message))
        started = time.monotonic()
        try:
            return super().preprocess(nb, resources, km=km)
        finally:
            watch.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            self.log.info("notebook run in the sandboxed kernel: %.1f s", time.monotonic() - started)

    def _kill_kernel(self, km, message: str) -> None:
        """The scratch watch's alarm (its own thread): the kernel wrote more than its sandbox
        allows; kill the sandbox now (the running cell then reports it, see async_execute_cell)."""
        self._over_limit = message
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None:
            try:
                os.kill(process.pid, 9)  # bwrap: its PID namespace (the kernel) dies with it
            except ProcessLookupError:
                pass

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell
        if is_graded_test(cell):
            cell.outputs = [_stream(GRADED_OUTSIDE, "stdout")]
            return cell
        if self._stopped:
            cell.outputs = [_stream(f"[not run: {self._stopped}]\n", "stdout")]
            return cell
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._stopped = f"the notebook's time limit ({self.notebook_timeout} s) was reached"
            cell.outputs = [_error("NotebookTimeoutError", self._stopped)]
            await self._stop_kernel()
            return cell
        per_cell = self.timeout
        self.timeout = max(1, int(min(per_cell, remaining)))
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellTimeoutError:
            self._stopped = f"an earlier cell ran longer than {self.timeout} s"
            cell.outputs.append(_error("CellTimeoutError", f"this cell ran longer than {self.timeout} s "
                                       "and was stopped; the kernel was shut down"))
            await self._stop_kernel()
            return cell
        except DeadKernelError:
            if self._over_limit:
                self._stopped = f"the kernel was stopped in an earlier cell: the notebook {self._over_limit}"
                cell.outputs.append(_error("ScratchLimitError", f"the kernel was stopped while running this "
                                           f"cell: the notebook {self._over_limit}"))
                return cell
            self._stopped = "the kernel died in an earlier cell"
            cell.outputs.append(_error("DeadKernelError", "the kernel died while running this cell "
                                       "(crash, os._exit, memory limit, ...)"))
            return cell
        finally:
            self.timeout = per_cell

    # nbclient binds its synchronous wrapper to its own coroutine: rebind it to ours
    execute_cell = run_sync(async_execute_cell)

    async def _stop_kernel(self):
        if self.km is not None:
            try:
                await self.km.shutdown_kernel(now=True)
            except Exception:  # already gone
                pass

    def output(self, outs, msg, display_id, cell_index):
        size = len(str(msg.get("content", "")))
        self._output_bytes += size
        if self._output_bytes > self.max_output_bytes:
            if self._output_bytes - size <= self.max_output_bytes:
                outs.append(_stream(f"\n[output beyond {self.max_output_bytes} bytes dropped]\n", "stdout"))
            return None
        return super().output(outs, msg, display_id, cell_index)


class RestoreMetadata(NbGraderPreprocessor):
    """Sanitize step: every cell's nbgrader metadata comes from the source notebook (by
    ``grade_id``); metadata naming no source cell is dropped. nbgrader's OverwriteCells
    crashes on e.g. a solution cell turned into a grade cell; after this it cannot."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        source_nb = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / \
            f"{info['notebook']}.ipynb"
        source = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(source_nb, 4).cells
                  if c.metadata.get("nbgrader", {}).get("grade_id")}
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in source and source[gid].cell_type == cell.cell_type:
                cell.metadata["nbgrader"] = dict(source[gid].metadata["nbgrader"])
            else:
                cell.metadata.pop("nbgrader", None)
        self._restore_deleted_cells(nb, list(source.values()))
        return nb, resources

    @staticmethod
    def _restore_deleted_cells(nb, source_cells) -> None:
        """Put deleted test and read-only cells back after the previous source cell present.

        nbgrader's own OverwriteCells.add_missing_cells crashes (KeyError) when the cell
        before a deleted test cell is a read-only cell. Solution cells are not restored:
        a deleted answer stays an empty answer.
        """
        def gid_of(cell):
            return cell.metadata.get("nbgrader", {}).get("grade_id")

        for position, cell in enumerate(source_cells):
            meta = cell.metadata["nbgrader"]
            if meta.get("solution") or not (meta.get("grade") or meta.get("locked")):
                continue
            present = {gid_of(c): i for i, c in enumerate(nb.cells) if gid_of(c)}
            if meta["grade_id"] in present:
                continue
            before = [present[gid_of(c)] for c in source_cells[:position] if gid_of(c) in present]
            restored = nbformat.from_dict(copy.deepcopy(dict(cell)))
            if restored.cell_type == "code":
                restored.outputs, restored.execution_count = [], None
            nb.cells.insert(max(before) + 1 if before else 0, restored)


class StartTrustedGrading(NbGraderPreprocessor):
    """First step of autograding: start the hidden suite on the submission's code in a
    background thread, so that it (its own grading sandbox) runs while the notebook runs in
    the kernel sandbox; :class:`TrustedVerdicts` takes the result. The code comes from the
    sanitized notebook's cell sources, which executing the notebook does not change
    (:class:`TrustedVerdicts` checks that, and grades again if they differ)."""

    device = Unicode("", help="cpu / cuda; empty: cuda when torch sees a GPU, else cpu").tag(config=True)

    def preprocess(self, nb, resources):
        suite, code = _suite_and_code(self.config, resources, nb)
        device = grading_device(self.device)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hidden-suite")
        future = pool.submit(_timed_grade, suite, code, device)
        pool.shutdown(wait=False)
        resources.setdefault("autograder", {})["started"] = (code, device, future)
        return nb, resources


def _suite_and_code(config, resources, nb):
    """(the assignment's hidden suite, the submission's code laid out by the source notebook)."""
    from autograder.suites import load_suite

    info = resources["nbgrader"]
    coursedir = CourseDirectory(config=config)
    source_nb = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / \
        f"{info['notebook']}.ipynb"
    return load_suite(info["assignment"]), submission_source(source_nb, nb)


def _notebooks(folder: str, names: list[str]) -> list[str]:
    """What the kernel's copy leaves out: the notebooks (the kernel runs the one being graded)."""
    return [name for name in names if name.endswith(".ipynb")]


def _timed_grade(suite, code: str, device: str):
    """(CellGrades, seconds) of the hidden suite on ``code`` in the production sandbox."""
    from autograder.engine.grading import grade

    started = time.monotonic()
    cells = grade(suite, code, device=device, sandbox=default_sandbox(device, suite.ASSIGNMENT))
    return cells, time.monotonic() - started


class TrustedVerdicts(NbGraderPreprocessor):
    """Replace every graded cell's outputs with the trusted grader's verdict and write the
    submission's grade record (see module doc).

    The verdict is the one :class:`StartTrustedGrading` started (or, without it, computed
    here). It is all a graded test cell shows: :class:`SandboxedExecute` did not run it,
    so there is no "in your notebook this cell raised ..." line any more (the student sees
    their own visible tests' output when they run the notebook themselves).

    The grade record (:func:`autograder.records.make_record`, with the hash of the submitted
    folder, :func:`submission_sha256`) is made here and handed to :class:`WriteGradeRecord`,
    the pipeline's last step, which writes it once nbgrader has saved the grades: a record
    on disk means the gradebook has its grade, so ``python -m autograder autograde`` can
    decide from it (graded, score, "same submission: skip") even after a killed run.
    """

    device = Unicode("", help="cpu / cuda; empty: cuda when torch sees a GPU, else cpu").tag(config=True)

    def preprocess(self, nb, resources):
        suite, code = _suite_and_code(self.config, resources, nb)
        device = grading_device(self.device)
        started = resources.get("autograder", {}).pop("started", None)
        if started is not None and started[:2] == (code, device):
            cells, seconds = started[2].result()
        else:  # not started, or started on other code: grade this code now
            cells, seconds = _timed_grade(suite, code, device)
        self.log.info("graded by the hidden suite: %.1f s", seconds)
        resources.setdefault("autograder", {})["cells"] = cells
        # the known mistake the failures match (H23, autograder/diagnosis.py): named in its cells
        mistakes = diagnosis.likely_mistakes(resources["nbgrader"]["assignment"], {
            diagnosis.check_id(gid, r.name) for gid, c in cells.items() for r in c.results if not r.passed}, code)
        for cell in nb.cells:
            if is_graded_test(cell):
                verdict = cells.get(cell.metadata["nbgrader"].get("grade_id"))
                if verdict is None:  # a test cell the suite does not know: no points from it
                    cell.outputs = [_error("NotGraded", "this cell is not part of the graded tests")]
                else:
                    cell.outputs = verdict_outputs(verdict, [m for m in mistakes if any(
                        c.startswith(f"{verdict.grade_id}: ") for c in m.checks)])
        resources["autograder"]["record"] = _make_record(CourseDirectory(config=self.config), resources["nbgrader"],
                                                         suite, code, cells, device, seconds)
        if resources["autograder"].get("refused"):  # entries left out of the submission (autograder.exchange)
            resources["autograder"]["record"][1]["refused"] = resources["autograder"]["refused"]
        return nb, resources


def _make_record(coursedir, info, suite, code, cells, device, seconds) -> tuple[Path, dict]:
    """(where, what): the grade record of this submission, with the hash of its submitted folder."""
    student = info.get("student")
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, info["assignment"]))
    record = records.make_record(
        assignment=info["assignment"], student=student, suite=suite, source=code, cells=cells,
        device=device, seconds=seconds, submission_sha256=submission_sha256(submitted) if submitted.is_dir() else None)
    return records.record_path(Path(coursedir.root), info["assignment"], student), record


class WriteGradeRecord(NbGraderPreprocessor):
    """Last step of autograding: write the grade record :class:`TrustedVerdicts` made, now
    that nbgrader's SaveAutoGrades has stored the grades (see :class:`TrustedVerdicts`)."""

    def preprocess(self, nb, resources):
        made = resources.get("autograder", {}).pop("record", None)
        if made is not None:
            records.write_record(*made)
        return nb, resources


def verdict_outputs(verdict, mistakes=()) -> list:
    """Cell outputs for one CellGrade: readable list + the score nbgrader reads.

    Full or partial credit is an ``execute_result`` holding the points; zero is an error
    output (nbgrader gives 0 for an error). Only check names and hints appear, and the
    one-line description of each known mistake (``mistakes``: :class:`autograder.diagnosis.CatalogMatch`)
    the failures match.
    """
    lines = [f"Graded by the course's grader, outside your notebook: "
             f"{verdict.points:g} / {verdict.max_points:g} points"]
    for result in verdict.results:
        mark = "PASS" if result.passed else "FAIL"
        lines.append(f"  [{mark}] {result.name}" + ("" if result.passed else f": {result.hint}"))
    if not verdict.results:
        lines.append("  (no checks)")
    for mistake in mistakes:
        lines.append(f"  Likely mistake (these failures match a known one): {mistake.description}")
    text = "\n".join(lines) + "\n"
    if verdict.points <= 0 and verdict.max_points > 0:
        return [_error("TestsFailed", f"0 / {verdict.max_points:g} points", traceback=lines)]
    return [_stream(text, "stdout"),
            nbformat.v4.new_output("execute_result", data={"text/plain": f"{verdict.points:g}"},
                                   execution_count=None)]


def _stream(text: str, name: str):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _error(ename: str, evalue: str, traceback: list[str] | None = None):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=traceback or [f"{ename}: {evalue}"])


def configure(c) -> None:
    """Put the sandboxed execution and trusted verdicts into nbgrader's autograde pipeline."""
    from autograder.late import ApplyLatePolicy  # due dates, extensions, late policy (autograder/calendar.py)

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
    configure_from_environment(c, os.environ)


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


if "get_config" in globals() and __name__ != "autograder.nbgrader_hooks":  # loaded by nbgrader_config.py
    import importlib  # configure with the module's own classes, not this exec'd copy
    importlib.import_module("autograder.nbgrader_hooks").configure(get_config())  # noqa: F821
