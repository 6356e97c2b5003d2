"""nbgrader hooks: sandboxed execution and trusted verdicts inside plain ``nbgrader autograde``.

The repo's ``nbgrader_config.py`` loads this file (``load_subconfig``), which calls
:func:`configure`. From then on ``nbgrader autograde`` (and ``python -m autograder
autograde``, which runs it per student) does:

1. sanitize (nbgrader's own): clear outputs, drop duplicate ids, restore the kernel spec
   and the instructor's test cells and metadata, re-add deleted test cells;
2. :class:`SandboxedExecute`: run the notebook in a kernel confined by bubblewrap
   (:mod:`autograder.engine.sandbox`, connected over Unix sockets since it has no network),
   with a per-cell timeout, a per-notebook time budget, a cap on output size, and a
   clear note in the cell where the kernel died or timed out;
3. :class:`TrustedVerdicts`: grade the submission's code with the assignment's hidden
   suite (:func:`autograder.engine.grading.grade`, its own sandboxed runner, verdicts computed
   outside) and *replace* every graded cell's output by that verdict -- a pass/fail list
   with short hints and the partial credit as the ``execute_result`` nbgrader reads. So
   whatever the kernel printed, raised or patched, nbgrader's ``SaveAutoGrades`` only
   sees the trusted result.
"""
from __future__ import annotations

import copy
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
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, Execute,
                                    IgnorePattern, LimitOutput, NbGraderPreprocessor, OverwriteCells,
                                    OverwriteKernelspec, SaveAutoGrades)
from traitlets import Float, Instance, Integer, Unicode

ROOT = Path(__file__).resolve().parents[1]

from autograder import feedback  # noqa: E402
from autograder.notebook import submission_source  # noqa: E402
from autograder.engine.sandbox import Limits, default_sandbox  # noqa: E402

KERNEL_HOME = Path(os.environ.get("AUTOGRADER_SCRATCH", tempfile.gettempdir()))


def grading_device() -> str:
    """``AUTOGRADER_DEVICE`` if set, else the GPU when torch sees one, else the CPU."""
    wanted = os.environ.get("AUTOGRADER_DEVICE")
    if wanted:
        return wanted
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel started inside the bubblewrap sandbox, talking over Unix sockets in its workdir."""

    workdir = Instance(Path, allow_none=True)
    cpu_seconds = Integer(900)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        sandbox = default_sandbox(grading_device(), cpu_seconds=self.cpu_seconds)
        return sandbox.wrap(cmd, self.workdir)

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
    """

    timeout = Integer(60, help="seconds per cell").tag(config=True)
    notebook_timeout = Integer(600, help="wall-clock seconds for the whole notebook").tag(config=True)
    max_output_bytes = Integer(2 * 2**20, help="output kept per notebook").tag(config=True)
    interrupt_on_timeout = False
    startup_timeout = 120

    def preprocess(self, nb, resources=None, km=None):
        workdir = Path(tempfile.mkdtemp(prefix="kernel-", dir=KERNEL_HOME))
        source_dir = Path(resources.get("metadata", {}).get("path") or ".") if resources else Path(".")
        for item in source_dir.iterdir() if source_dir.is_dir() else []:
            if item.is_file() and item.suffix != ".ipynb":  # data files the notebook reads
                shutil.copy(item, workdir / item.name)
        self._deadline = time.monotonic() + self.notebook_timeout
        self._stopped = None
        self._output_bytes = 0
        self.kernel_manager_class = SandboxedKernelManager
        self.kernel_name = "python3"
        km = SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(workdir / "kernel"),
                                    connection_file=str(workdir / "connection.json"),
                                    workdir=workdir, cpu_seconds=self.notebook_timeout + 60)
        try:
            return super().preprocess(nb, resources, km=km)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
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


class TrustedVerdicts(NbGraderPreprocessor):
    """Replace every graded cell's outputs with the trusted grader's verdict (see module doc)."""

    device = Unicode("", help="cpu / cuda; empty: AUTOGRADER_DEVICE or auto").tag(config=True)
    call_timeout_scale = Float(1.0).tag(config=True)

    def preprocess(self, nb, resources):
        from autograder.engine.grading import grade
        from autograder.suites import load_suite

        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        suite = load_suite(info["assignment"])
        source_nb = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / \
            f"{info['notebook']}.ipynb"
        code = submission_source(source_nb, nb)
        device = self.device or grading_device()
        cells = grade(suite, code, device=device, sandbox=default_sandbox(device))
        resources.setdefault("autograder", {})["cells"] = cells
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                verdict = cells.get(meta.get("grade_id"))
                if verdict is None:  # a test cell the suite does not know: no points from it
                    cell.outputs = [_error("NotGraded", "this cell is not part of the graded tests")]
                    continue
                kernel_note = _kernel_note(cell)
                cell.outputs = verdict_outputs(verdict, kernel_note)
        return nb, resources


def _kernel_note(cell) -> str | None:
    """One line on what the student's own kernel said when it ran this (visible) test."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {str(out.get('evalue'))[:200]}"
    return None


def verdict_outputs(verdict, kernel_note: str | None = None) -> list:
    """Cell outputs for one CellGrade: readable list + the score nbgrader reads.

    Full or partial credit is an ``execute_result`` holding the points; zero is an error
    output (nbgrader gives 0 for an error). Only check names and hints appear.
    """
    lines = [f"Graded by the course's grader, outside your notebook: "
             f"{verdict.points:g} / {verdict.max_points:g} points"]
    if kernel_note:
        lines.append(f"  (in your notebook this cell raised {kernel_note})")
    for result in verdict.results:
        mark = "PASS" if result.passed else "FAIL"
        lines.append(f"  [{mark}] {result.name}" + ("" if result.passed else f": {result.hint}"))
    if not verdict.results:
        lines.append("  (no checks)")
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
    c.Autograde.autograde_preprocessors = [
        SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        TrustedVerdicts, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, RestoreMetadata, OverwriteKernelspec,
                                          OverwriteCells, CheckCellMetadata]
    c.OverwriteCells.add_missing_cells = True  # a deleted test cell is graded anyway
    # nbgrader's own cut, per cell: stream lines and traceback lines (its only two options).
    # Bytes, whatever the line count (one gigantic line too), are capped per notebook while
    # they arrive: SandboxedExecute.max_output_bytes.
    c.LimitOutput.max_lines = 500
    c.LimitOutput.max_traceback = 100
    c.SandboxedExecute.timeout = int(os.environ.get("AUTOGRADER_CELL_TIMEOUT", 60))
    c.SandboxedExecute.notebook_timeout = int(os.environ.get("AUTOGRADER_NOTEBOOK_TIMEOUT", 600))
    feedback.configure(c)  # feedback HTML with MathJax inlined (renders offline)
    if os.environ.get("AUTOGRADER_DB_URL"):  # PostgreSQL (or any SQLAlchemy URL) for parallel TAs
        c.CourseDirectory.db_url = os.environ["AUTOGRADER_DB_URL"]
    if os.environ.get("AUTOGRADER_COURSE_ROOT"):
        c.CourseDirectory.root = os.environ["AUTOGRADER_COURSE_ROOT"]


if "get_config" in globals() and __name__ != "autograder.nbgrader_hooks":  # loaded by nbgrader_config.py
    import importlib  # configure with the module's own classes, not this exec'd copy
    importlib.import_module("autograder.nbgrader_hooks").configure(get_config())  # noqa: F821
