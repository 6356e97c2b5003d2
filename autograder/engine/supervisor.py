"""Supervision of the runs of a submission's code: launch, deadlines, outcomes.

:func:`run_calls` sends :class:`~autograder.checks.Call`s into a run of
:mod:`autograder.engine.runner` -- in the production sandbox, forked by the sandbox's trusted
parent :mod:`autograder.engine.reaper` (:class:`SandboxLauncher`); without a sandbox, a fresh
process (:class:`LocalLauncher`, the engine's own tests) -- watches the load and call deadlines
from outside and reads back one :class:`~autograder.checks.Outcome` per call.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import torch

from autograder import options
from autograder.checks import Call, Outcome
from autograder.engine import reaper  # the protocol's words
from autograder.engine.callgraph import CallGraph
from autograder.engine.marker import CELL_MARK, LOADED
from autograder.engine.runner import exhausted_memory, not_run_after_memory
from autograder.engine.sandbox import NOBODY, SCRATCH_DIRS, empty_folder

ROOT = Path(__file__).resolve().parents[2]
MAX_OUTCOME_BYTES = 256 * 2**20
JOB_PREFIX = "job-"  # a run's folder in a launcher's working folder
LOAD_DEATHS = 2  # fresh processes that may end during the top-level code before every call fails


class Sandbox(Protocol):
    def wrap_reaper(self, workdir: Path, home: Path, report_fd: int, control_fd: int) -> list[str]:
        """The command that runs :mod:`autograder.engine.reaper` confined (see
        :meth:`autograder.engine.sandbox.BwrapSandbox.wrap_reaper`)."""

    def scratch_mount_points(self, workdir: Path) -> dict[str, tuple[str, ...]]:
        """The entries of its scratch folders that hold mount points (see
        :meth:`autograder.engine.sandbox.BwrapSandbox.scratch_mount_points`)."""


def _load_outcome(path: Path) -> Outcome:
    try:  # never through a link the graded code may have planted
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        return Outcome(ok=False, error=f"unreadable outcome ({type(err).__name__})")
    with os.fdopen(fd, "rb") as file:
        size = os.fstat(fd).st_size
        if size > MAX_OUTCOME_BYTES:
            return Outcome(ok=False, error=f"output too large ({size} bytes)")
        try:
            raw = torch.load(file, weights_only=True)
            return Outcome(**{k: raw.get(k) for k in Outcome.__dataclass_fields__ if k in raw})
        except Exception as err:  # a file the submission forged or broke
            return Outcome(ok=False, error=f"unreadable outcome ({type(err).__name__})")


LOAD_TIMEOUT = 60.0  # s for the submission's module-level code (imports included)
REAPER_START_TIMEOUT = 300.0  # s for the sandbox's trusted parent to start (it imports torch)


class LocalLauncher:
    """Runs without a sandbox (the protocol's own tests): a fresh ``python -m autograder.engine.runner``
    per run; its peak memory is ``wait4``'s ``ru_maxrss`` of that process."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env, self.proc = env, None
        self.stopped: dict[str, str] = {}  # function -> why its calls are no longer run (see run_calls)
        self._tmp = tempfile.TemporaryDirectory(prefix="grade-", dir=options.current().scratch)
        self.workdir = Path(self._tmp.name)

    def new_job(self) -> tuple[Path, Path]:
        """(folder for the grader's inputs, folder where the run writes its outcomes)."""
        job = Path(tempfile.mkdtemp(prefix=JOB_PREFIX, dir=self.workdir))
        (job / "out").mkdir()
        return job, job / "out"

    def start(self, job: Path, out: Path, devices: list[str]) -> None:
        """Run ``job`` (its calls use ``devices``), writing outcomes to ``out``."""
        run_env = options.child_env(self.env or {}, PYTHONPATH=_python_path())
        self.proc = subprocess.Popen([sys.executable, "-m", "autograder.engine.runner", str(job), str(out)],
                                     cwd=out, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def prestart(self) -> None:
        pass

    def next_submission(self) -> None:
        """Start over for another (trusted) submission: see :meth:`SandboxLauncher.next_submission`."""
        self.stopped = {}
        empty_folder(self.workdir)

    def take_limit_event(self) -> str | None:
        return None  # no sandbox, no scratch limit

    def poll(self) -> tuple[int, int | None] | None:
        """(exit status, peak RSS in bytes) once the run has ended, else None."""
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid != self.proc.pid:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode, usage.ru_maxrss * 1024

    def kill(self) -> tuple[int, int | None]:
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode, usage.ru_maxrss * 1024

    def close(self) -> None:
        self._tmp.cleanup()


class SandboxLauncher:
    """Runs in the production sandbox: one bubblewrap sandbox per submission, whose trusted
    :mod:`autograder.engine.reaper` forks every run (torch already imported) and reports its exit
    status and peak memory on a pipe the graded code cannot reach.

    Layout of ``workdir`` (host side, bound writable into the sandbox): ``home/`` belongs to
    the graded code (``nobody``); each run's ``job-*/`` (job.pt) belongs to the
    grader, with an ``out/`` folder for the code's outcomes -- so the grader never writes
    where the code could have planted a link. If the sandbox dies, the next run starts a new one.
    """

    def __init__(self, sandbox, env: dict[str, str] | None = None):
        self.sandbox, self.env = sandbox, env
        self._tmp = tempfile.TemporaryDirectory(prefix="grade-", dir=options.current().scratch)
        self.workdir = Path(self._tmp.name)
        # Traversable, not listable: the sandboxed code reaches its HOME and each run's job-*/ by
        # the names it is given; another user of the machine (a student's server, where the hub
        # and the grading share a machine), who sees grade-* in /tmp, can neither list the job
        # folders (job.pt: the submission's source and the hidden calls' inputs) nor HOME.
        os.chmod(self.workdir, 0o711)
        self.home = self.workdir / "home"
        self.home.mkdir(mode=0o700)
        self.proc, self.report, self.control, self.ready = None, None, None, False
        self.stopped: dict[str, str] = {}  # function -> why its calls are no longer run (see run_calls)
        watch = getattr(sandbox, "watch", None)  # the scratch-space limit, measured from outside
        self.watch = watch(self.workdir, self._over_limit) if watch is not None else None

    def new_job(self) -> tuple[Path, Path]:
        job = Path(tempfile.mkdtemp(prefix=JOB_PREFIX, dir=self.workdir))
        os.chmod(job, 0o755)
        out = job / "out"
        out.mkdir()
        if os.geteuid() == 0:
            os.chown(out, NOBODY, NOBODY)
        return job, out

    def prestart(self) -> None:
        """Start the sandbox now (its trusted parent imports torch meanwhile); runs wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self._stop()
        from autograder.engine.reaper import Lines

        report_r, report_w = os.pipe()
        control_r, control_w = os.pipe()
        argv = self.sandbox.wrap_reaper(self.workdir, self.home, report_w, control_r)
        run_env = options.child_env(self.env or {}, PYTHONPATH=_python_path())
        try:
            self.proc = subprocess.Popen(argv, cwd=self.workdir, env=run_env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True,
                                         pass_fds=(report_w, control_r))
        finally:
            os.close(report_w)
            os.close(control_r)
        self.report, self.control, self.ready = Lines(report_r), control_w, False

    def next_submission(self) -> None:
        """Start over for another submission's runs in this sandbox, for *trusted* code only
        (``selfcheck``'s rows: the instructor's solution, the blank release and the staff's catalog
        entries; a student's submission always gets a sandbox of its own). What one submission
        leaves is gone -- which of its functions were stopped, the files in ``home/`` and the runs'
        folders -- and every run is still a fresh process forked by the trusted parent; only that
        parent, torch imported (seconds of CPU per sandbox), is kept."""
        self.stopped = {}
        empty_folder(self.workdir, keep=(self.home.name, *SCRATCH_DIRS.values()))  # the runs' folders
        empty_folder(self.home)
        # the sandbox's /tmp and /dev/shm: emptied, not removed (mounted in the running sandbox), and
        # the mount points bwrap made in them (the working folder's, the checkout's under /tmp) kept
        kept = self.sandbox.scratch_mount_points(self.workdir)
        for name in SCRATCH_DIRS.values():
            if (self.workdir / name).is_dir():
                empty_folder(self.workdir / name, keep=kept[name])
        if self.watch is not None:
            self.watch.reset()

    def _ensure_started(self) -> None:
        self.prestart()
        if self.ready:
            return
        if self.report.next(REAPER_START_TIMEOUT) != reaper.READY:
            self._stop()
            raise RuntimeError("the grading sandbox did not start (bubblewrap, or the trusted parent "
                               "autograder/engine/reaper.py, failed)")
        self.ready = True

    def start(self, job: Path, out: Path, devices: list[str]) -> None:
        self._ensure_started()
        os.write(self.control, f"{reaper.RUN} {job} {out} {reaper.DEVICE_SEPARATOR.join(devices)}\n".encode())

    def _over_limit(self, message: str) -> None:
        """The watch's alarm (its own thread): kill the whole sandbox now; the run then ends
        as killed and :meth:`take_limit_event` tells the supervisor why."""
        proc = self.proc
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def take_limit_event(self) -> str | None:
        """Why the sandbox was killed for writing too much (then everything the code wrote is
        removed, so the next run starts within the limit), or None."""
        if self.watch is None:
            return None
        message = self.watch.check() if self.watch.exceeded is None else self.watch.exceeded
        if message is None:
            return None
        self._stop()
        empty_folder(self.workdir)
        self.home.mkdir(mode=0o700)
        self.watch.reset()
        return message

    def _done(self, line: str | None) -> tuple[int, int | None] | None:
        if line is None:
            return None
        words = line.split()
        if len(words) == 3 and words[0] == reaper.DONE:
            return int(words[1]), int(words[2]) * 1024
        self._stop()  # EOF or garbage: the sandbox is gone
        return -9, None

    def poll(self) -> tuple[int, int | None] | None:
        return self._done(self.report.next(0))

    def kill(self) -> tuple[int, int | None]:
        try:
            os.write(self.control, f"{reaper.KILL}\n".encode())
        except OSError:
            pass
        result = self._done(self.report.next(30.0))
        if result is None:  # the trusted parent does not answer: end the whole sandbox
            self._stop()
            return -9, None
        return result

    def _stop(self) -> None:
        if self.control is not None:
            os.close(self.control)
            os.close(self.report.fd)
            self.control = self.report = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
            self.proc = None

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        self._stop()
        self._tmp.cleanup()


def _python_path() -> str:
    """The graded code imports ``autograder.engine.runner`` and ``lec4`` (from src/), nothing else of the repo."""
    return os.pathsep.join([str(ROOT), str(ROOT / "src")])


def launcher_for(sandbox: Sandbox | None, env: dict[str, str] | None = None):
    """The launcher of the runs of one submission: in ``sandbox``, or local when it is None."""
    return LocalLauncher(env) if sandbox is None else SandboxLauncher(sandbox, env)


# Why a function's calls are no longer run (``launcher.stopped``, see :func:`_not_run`).
TIMED_OUT, OVER_SCRATCH, OUT_OF_MEMORY = "timed out", "went over the scratch-space limit", "ran out of memory"
# The stops whose rule reaches the callers too: the supervisor killed the run, so it decides about
# every call after the stuck one. Not memory exhaustion: the runner carries on in the same process
# after it and runs the callers itself (:func:`autograder.engine.runner.main` knows only the function).
STOPS_CALLERS = (TIMED_OUT, OVER_SCRATCH)


def run_calls(source: str, calls: list[Call], sandbox: Sandbox | None = None,
              env: dict[str, str] | None = None, launcher=None) -> list[Outcome]:
    """Run ``calls`` against ``source`` in one run of the runner (restarted after a failure).

    Returns one :class:`Outcome` per call. Deadlines are watched from outside, call by
    call: the submission's top-level code gets ``LOAD_TIMEOUT`` s, each call its own
    ``timeout`` from the moment the previous one finished. A call that overruns or
    kills the process gets an error, and the calls after it run in a fresh process;
    if the code never finishes loading, every remaining call fails at once, and so it does when
    the process ends by itself while the top-level code runs in :data:`LOAD_DEATHS` fresh
    processes (each would run the same code again, once per call left). After a call
    has timed out, ran out of memory, or wrote more than the sandbox's scratch limit (the
    sandbox is then killed and what the code wrote removed), the later calls of its function
    -- and, after a timeout or a scratch overrun, of the functions that call it -- are not
    run: the rule is :func:`_not_run`'s, kept in ``launcher.stopped`` for this and every later
    ``run_calls`` on the same ``launcher``.

    ``launcher`` (see :func:`launcher_for`) is shared by the runs of one submission; by
    default one is made for this call. ``Outcome.peak_rss_bytes`` of isolated calls is the
    launcher's measurement of the run (in the sandbox: :mod:`autograder.engine.reaper`'s report).
    """
    own = launcher is None
    launcher = launcher or launcher_for(sandbox, env)
    try:
        return _run_calls(source, calls, launcher)
    finally:
        if own:
            launcher.close()


def _run_calls(source: str, calls: list[Call], launcher) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(calls)
    load_deaths = 0  # runs that ended by themselves before the submission's top-level code finished
    while True:
        for i, call in enumerate(calls):
            if outcomes[i] is None and launcher.stopped:
                outcomes[i] = _not_run(call, launcher.stopped, source)
        pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not pending:
            return outcomes  # type: ignore[return-value]
        todo = [calls[i] for i in pending]
        job, out = launcher.new_job()  # a job holds only the calls still to run
        torch.save({"source": source, "calls": [c.payload() for c in todo]}, job / "job.pt")
        launcher.start(job, out, sorted({call.device for call in todo}))
        status, peak_rss, overran = _wait(launcher, out, todo)
        done = 0
        for k, i in enumerate(pending):
            path = out / f"outcome-{k}.pt"
            if not path.exists():
                break
            outcomes[i] = _load_outcome(path)
            outcomes[i].peak_rss_bytes = peak_rss if calls[i].isolated else None
            if not outcomes[i].ok and exhausted_memory(outcomes[i].error):
                launcher.stopped.setdefault(calls[i].function, OUT_OF_MEMORY)
            done = k + 1
        loaded = (out / LOADED).exists()
        over_limit = launcher.take_limit_event()  # (removes what the code wrote)
        shutil.rmtree(job, ignore_errors=True)  # outcomes read: the job's files would count as scratch
        if done == len(pending):
            continue
        if overran == "load":
            for i in pending[done:]:
                outcomes[i] = Outcome(ok=False, error=f"the submission's top-level code did not finish "
                                      f"within {LOAD_TIMEOUT:.0f} s (infinite loop?)")
            continue
        if not loaded and not overran and not over_limit:
            # It ended while its top-level code ran (os._exit, a signal to itself, a crash): every fresh
            # process would run the same code again, once per call left. Once more, in case it was
            # not the code's doing; then every remaining call fails at once.
            load_deaths += 1
            if load_deaths < LOAD_DEATHS:
                continue
            for i in pending[done:]:
                outcomes[i] = Outcome(ok=False, error=f"the process ended (exit status {status}) while the "
                                      f"submission's top-level code ran, in {LOAD_DEATHS} fresh processes")
            continue
        stuck = pending[done]
        if over_limit:
            outcomes[stuck] = Outcome(ok=False, error=f"stopped: this call {over_limit}")
            launcher.stopped[calls[stuck].function] = OVER_SCRATCH
        elif overran:
            outcomes[stuck] = Outcome(ok=False, error=f"timed out (limit {calls[stuck].timeout:.0f} s)")
            launcher.stopped[calls[stuck].function] = TIMED_OUT
        else:
            outcomes[stuck] = Outcome(ok=False, error=f"the process died (exit status {status}) during this call")


def _not_run(call: Call, stopped: dict[str, str], source: str) -> Outcome | None:
    """The rule for the calls after a hang, a memory exhaustion or a scratch-space overrun, or
    None for a call it lets run. ``stopped`` is ``{function: why}`` (the launcher's, for all the
    runs of one submission).

    - Once a call of a function has timed out, run out of memory or written more than the sandbox
      allows, the other calls of that function in the same submission (this batch and later ones)
      fail without being run -- once per function is enough; each would cost the same again (a
      hang: its whole timeout; a memory bomb: seconds to minutes per call).
    - After a timeout or a scratch overrun (:data:`STOPS_CALLERS`), so do the calls of every
      function that reaches the stopped one in the submission's own ``source``
      (:mod:`autograder.engine.callgraph`: a layer's backward or a training step that runs the
      student's hung ``conv2d_backward`` costs no timeout more). A mention counts, so such a call
      fails even where it would have passed the stopped function inputs it does not hang on --
      as the later calls of the stopped function itself do. The source is read cell by cell, as
      the runner runs it: what a cell that does not parse defines is not followed (a source
      without cells that does not parse keeps the rule per function).
    """
    why = stopped.get(call.function)
    if why == OUT_OF_MEMORY:
        return Outcome(ok=False, error=not_run_after_memory(call.function))
    if why is not None:
        return Outcome(ok=False, error=f"not run: an earlier call of {call.function} {why}")
    spreading = [function for function, reason in stopped.items() if reason in STOPS_CALLERS]
    reached = _call_graph(source).reached(call.function, spreading) if spreading else set()
    for function in spreading:  # the first function stopped, of those it reaches
        if function in reached:
            return Outcome(ok=False, error=f"not run: {call.function} calls {function}, "
                                           f"whose earlier call {stopped[function]}")
    return None


@lru_cache(maxsize=16)
def _call_graph(source: str) -> CallGraph:
    """The call graph of a submission, read cell by cell as the runner runs it: a cell that does
    not parse defines nothing (a source without cells that does not parse: an empty graph)."""
    return CallGraph(*CELL_MARK.split(source), skip_unparsable=True)


def _wait(launcher, out: Path, calls: list[Call]) -> tuple[int, int | None, str | None]:
    """Wait for the run, killing it when the code loading or the current call overruns;
    return (exit status, peak RSS in bytes or None, None | "load" | "call")."""
    started = time.monotonic()
    deadline, phase, progress = started + LOAD_TIMEOUT, "load", -1
    while True:
        ended = launcher.poll()
        if ended is not None:
            return *ended, None
        now = time.monotonic()
        if phase == "load" and (out / LOADED).exists():
            phase, deadline = "call", now + calls[0].timeout
            progress = 0
        if phase == "call":
            while progress < len(calls) and (out / f"outcome-{progress}.pt").exists():
                progress += 1
                if progress < len(calls):
                    deadline = now + calls[progress].timeout
        if now > deadline:
            return *launcher.kill(), phase
        time.sleep(0.02)


