"""The notebook run: nbgrader's Execute preprocessor with the kernel in the bubblewrap sandbox
(:class:`~autograder.nbgrader_hooks.kernel_manager.SandboxedKernelManager`) and its time, output
and written bytes really bounded; graded test cells are left to the hidden suite."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets import Integer, Unicode

from autograder import exchange, options
from autograder.nbgrader_hooks.cells import (CELL_TIMEOUT, DEAD_KERNEL, NOTEBOOK_TIMEOUT, SCRATCH_LIMIT, _error, _stream,
                                            is_graded_test)
from autograder.nbgrader_hooks.kernel_manager import SandboxedKernelManager
from autograder.nbgrader_hooks.settings import CELL_TIMEOUT_S, NOTEBOOK_TIMEOUT_S

GRADED_OUTSIDE = "[graded outside your notebook by the course's grader]\n"
UNIX_SOCKET_PATH_MAX = 107  # bytes of a Unix socket's path (sun_path, less its NUL)
KERNEL_PORTS = 5  # a kernel's channels (shell, iopub, stdin, control, heartbeat): ipc sockets IP-1 ... IP-5


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
        scratch = options.current().scratch
        workdir = Path(tempfile.mkdtemp(prefix="kernel-", dir=scratch))
        socket = workdir / f"kernel-{KERNEL_PORTS}"  # the longest of the kernel's sockets (ip below, -1 ... -5)
        if len(os.fsencode(socket)) > UNIX_SOCKET_PATH_MAX:
            shutil.rmtree(workdir, ignore_errors=True)
            raise RuntimeError(f"the scratch folder {scratch} is too long for the notebook kernel's sockets "
                               f"({socket}: {len(os.fsencode(socket))} bytes, at most "
                               f"{UNIX_SOCKET_PATH_MAX}); set AUTOGRADER_SCRATCH (or TMPDIR) to a shorter folder")
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
            cell.outputs = [_error(NOTEBOOK_TIMEOUT, self._stopped)]
            await self._stop_kernel()
            return cell
        per_cell = self.timeout
        self.timeout = max(1, int(min(per_cell, remaining)))
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellTimeoutError:
            self._stopped = f"an earlier cell ran longer than {self.timeout} s"
            cell.outputs.append(_error(CELL_TIMEOUT, f"this cell ran longer than {self.timeout} s "
                                       "and was stopped; the kernel was shut down"))
            await self._stop_kernel()
            return cell
        except DeadKernelError:
            if self._over_limit:
                self._stopped = f"the kernel was stopped in an earlier cell: the notebook {self._over_limit}"
                cell.outputs.append(_error(SCRATCH_LIMIT, f"the kernel was stopped while running this "
                                           f"cell: the notebook {self._over_limit}"))
                return cell
            self._stopped = "the kernel died in an earlier cell"
            cell.outputs.append(_error(DEAD_KERNEL, "the kernel died while running this cell "
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


def _notebooks(folder: str, names: list[str]) -> list[str]:
    """What the kernel's copy leaves out: the notebooks (the kernel runs the one being graded)."""
    return [name for name in names if name.endswith(".ipynb")]
