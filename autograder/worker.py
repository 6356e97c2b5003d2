"""A grading worker: one long-lived process that autogrades submission after submission.

``python -m autograder autograde --workers N`` starts N of these (:class:`Worker`) and sends
each one submission at a time. A worker loads nbgrader, the course's configuration (with
:mod:`autograder.nbgrader_hooks`) and torch once, then runs nbgrader's ``Autograde``
converter in-process for every request -- what ``nbgrader autograde ASSIGNMENT --student
STUDENT --force`` does, without a fresh interpreter and imports per submission. Isolation
is unchanged: every submission still gets its own sandboxed kernel and its own grading
sandbox (both bubblewrap with ``--die-with-parent``).

Protocol (JSON lines; the worker's real stdout is reserved for it, anything else printed
goes to its stderr):

- parent -> worker, first line: ``{"config": {Section: {option: value}}}``, traitlets options
  applied on top of ``nbgrader_config.py`` (course root, gradebook URL, device, timeouts);
- worker -> parent: ``{"ready": true}`` once loaded;
- parent -> worker: ``{"assignment": A, "student": S, "log": PATH}``;
- worker -> parent: ``{"ok": bool, "error": str | null, "locked": bool}``: whether nbgrader
  finished without an exception (the error: the exception, not a log line), and whether
  that exception was SQLite's "database is locked" (worth a retry). What was graded is in
  the grade record :class:`~autograder.nbgrader_hooks.TrustedVerdicts` wrote, which the parent reads.

The parent enforces the time limit per submission: it kills the worker's whole process
group (:meth:`Worker.kill`) and starts a fresh worker for the next submission.
"""
from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SQLITE_LOCKED = "database is locked"  # SQLite's error when another writer holds the gradebook: worth a retry

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 300.0  # s for a worker to import nbgrader, the hooks and torch


# --- the worker process ------------------------------------------------------------------------

def load_config(overrides: dict):
    """The course's nbgrader configuration (``nbgrader_config.py``, hooks included) with
    ``overrides`` ({Section: {option: value}}) applied on top."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    config.merge(Config(overrides))
    return config


def _autograde_class():
    """nbgrader's Autograde with copies of regular files only (:func:`autograder.exchange.safe_autograde_class`),
    keeping the exception that failed a submission (nbgrader logs it and raises a generic
    "see the log" error instead)."""
    from autograder.exchange import safe_autograde_class

    class RecordingAutograde(safe_autograde_class()):
        failure: BaseException | None = None

        def init_assignment(self, assignment_id, student_id):
            try:
                super().init_assignment(assignment_id, student_id)
            except Exception as err:
                self.failure = err
                raise

        def convert_single_notebook(self, notebook_filename):
            try:
                super().convert_single_notebook(notebook_filename)
            except Exception as err:
                self.failure = err
                raise

    return RecordingAutograde


def _describe(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text[:300]


def autograde_one(config, assignment: str, student: str, log_path: Path) -> dict:
    """Autograde one submission in this process (nbgrader's converter, our hooks); its log
    goes to ``log_path``. Returns the reply of the protocol (see the module docstring)."""
    from nbgrader.coursedir import CourseDirectory

    logger = logging.getLogger(f"autograder.worker.{os.getpid()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("[%(levelname)s %(asctime)s] %(message)s"))
    logger.addHandler(handler)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id, coursedir.student_id = assignment, student
    app = _autograde_class()(coursedir=coursedir, config=config, log=logger)
    app.force, app.create_student = True, True
    try:
        app.start()
        return {"ok": True, "error": None, "locked": False}
    except Exception as err:
        cause = app.failure or err
        logger.exception("autograde failed")
        return {"ok": False, "error": _describe(cause), "locked": SQLITE_LOCKED in str(cause)}
    finally:
        logger.removeHandler(handler)
        handler.close()


def serve(requests, replies) -> None:
    """The worker's loop: configuration line, ``ready``, then one reply per request until EOF."""
    def send(message: dict) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    first = json.loads(requests.readline())
    config = load_config(first["config"])
    import nbgrader.converters  # noqa: F401  (loaded now, not during the first submission)
    import torch  # noqa: F401
    import autograder.engine.grading  # noqa: F401
    send({"ready": True})
    for line in requests:
        request = json.loads(line)
        send(autograde_one(config, request["assignment"], request["student"], Path(request["log"])))


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")  # the protocol's channel; a stray print must not corrupt it
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


# --- the parent's handle on a worker -----------------------------------------------------------

class WorkerDied(RuntimeError):
    """The worker ended (crash, kill) or did not answer in time; the message says which."""


class Worker:
    """One worker process, started on first use and again after :meth:`kill` or a crash.

    ``config``: the traitlets overrides for every submission; ``env``: the worker's
    environment (e.g. ``CUDA_VISIBLE_DEVICES`` of its GPU); ``stderr``: where its own
    output goes (a file; None: inherited).

    Each process gets its own scratch folder (``scratch``: ``worker-*`` in the configured
    scratch, its ``AUTOGRADER_SCRATCH`` and ``TMPDIR``): the sandboxes' ``grade-*`` and
    ``kernel-*`` folders are made in it, and :meth:`kill` removes it with whatever a killed
    worker could not remove itself (a submission's source among it).
    """

    def __init__(self, config: dict, env: dict[str, str] | None = None, stderr=None):
        self.config, self.env, self.stderr = config, env, stderr
        self.proc: subprocess.Popen | None = None
        self.scratch: Path | None = None
        self._buffer = b""
        self.stopped = False  # set by stop(): no process is started any more
        self._starting = threading.Lock()  # start() (the worker's thread) against stop() (a signal handler)

    def start(self) -> None:
        """Start the process and wait until it has loaded nbgrader and the hooks (a process that
        died meanwhile is reaped first, its scratch folder removed)."""
        from autograder import options

        self.kill()
        env = options.child_env(self.env or {})
        with self._starting:
            if self.stopped:
                raise WorkerDied("grading was stopped before this submission")
            self.scratch = Path(tempfile.mkdtemp(prefix="worker-", dir=options.Options.from_environment(env).scratch))
            env.update(AUTOGRADER_SCRATCH=str(self.scratch), TMPDIR=str(self.scratch))
            self.proc = subprocess.Popen([sys.executable, "-m", "autograder.worker"], cwd=ROOT, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                         start_new_session=True)
        self._buffer = b""
        self._send({"config": self.config})
        if self._receive(STARTUP_TIMEOUT, "starting the grading worker").get("ready") is not True:
            self.kill()
            raise WorkerDied("the grading worker did not start")

    def grade(self, assignment: str, student: str, log: Path, timeout: float) -> dict:
        """Autograde one submission; WorkerDied (after killing the worker) when it takes
        longer than ``timeout`` seconds or the worker dies meanwhile."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self._send({"assignment": assignment, "student": student, "log": str(log)})
        try:
            return self._receive(timeout, "grading")
        except WorkerDied:
            self.kill()
            raise

    def _send(self, message: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as err:
            self.kill()
            raise WorkerDied(f"the grading worker is gone ({err})") from None

    def _receive(self, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        proc = self.proc  # kill() from another thread may clear self.proc meanwhile
        fd = proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerDied(f"{what} exceeded {timeout:.0f} s (the worker and its sandboxes were killed)")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    status = proc.wait()
                    if self.stopped:
                        raise WorkerDied("grading was stopped (SIGTERM or SIGINT): the worker was killed")
                    raise WorkerDied(f"the grading worker died (exit status {status})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def stop(self) -> None:
        """From another thread (the CLI's SIGTERM/SIGINT handler): kill the process group now and
        start no process any more. The thread using this worker then sees it die (WorkerDied) and
        reaps it through :meth:`kill`, which removes its folder."""
        with self._starting:
            self.stopped = True
            if self.proc is not None and self.proc.returncode is None:
                _kill_group(self.proc)

    def kill(self) -> None:
        """End the worker and everything in its process group now (its sandboxes die with it).
        Safe from two threads at once (a grading thread and a stopping service): one of them reaps."""
        with self._starting:
            proc, self.proc = self.proc, None
            scratch, self.scratch = self.scratch, None
        if proc is None:
            return
        _kill_group(proc)
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if scratch is not None:  # everything of the process group is dead: nothing writes there now
            shutil.rmtree(scratch, ignore_errors=True)

    def close(self) -> None:
        """Let an idle worker end (EOF on its input); kill it if it does not within 10 s."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to the worker's whole process group (its sandboxes included); gone already is fine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main()
