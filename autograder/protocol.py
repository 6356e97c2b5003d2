"""Trusted side of grading: send inputs into the sandbox, judge the outputs outside it.

A *suite* (one per assignment, in :mod:`autograder.suites`) lists :class:`Check`s. Each
check makes one or more :class:`Call`s of a student's function; the calls run in a
separate process (:mod:`autograder.runner`, sandboxed in production) and only their
saved outputs come back. ``Check.verify`` then compares them with references computed
here, in a process the student's code never touches, so nothing a submission does at
run time can change its verdict.

A suite module defines:

- ``ASSIGNMENT`` (nbgrader id) and ``NOTEBOOK`` (file name in solutions/ASSIGNMENT/);
- ``GRADE_CELLS``: ``{grade_id: (function_name, points)}`` for every graded test cell,
  visible and hidden, with the points the notebook gives them;
- ``FORBIDDEN``: ``{function_name: {name, ...}}`` calls a function must not make;
- ``build_checks(device) -> list[Check]``.
"""
from __future__ import annotations

import ast
import re
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from autograder.sandbox import NOBODY

ROOT = Path(__file__).resolve().parents[1]
MAX_OUTCOME_BYTES = 256 * 2**20
# Ways to reach a forbidden call without naming it; never needed by the graded functions.
DYNAMIC_ACCESS = {"getattr", "eval", "exec", "compile", "__import__", "importlib", "globals", "vars",
                  "__dict__", "__builtins__", "__getattribute__", "modules"}


@dataclass
class Call:
    """One call of a graded function, made inside the sandbox.

    Tensors in ``args``/``kwargs`` are created here on the CPU and moved to ``device``
    (``"cpu"``, ``"cuda"``, ``"meta"``) in the sandbox. With ``grad_output`` set, the
    runner backpropagates it through the output and records the gradients of the
    positional args listed in ``grad_of``. ``isolated`` calls run alone in a fresh
    process so that its peak resident memory, read from outside, belongs to them.
    """

    function: str
    args: list
    kwargs: dict = field(default_factory=dict)
    device: str = "cpu"
    grad_of: tuple[int, ...] = ()
    grad_output: torch.Tensor | None = None
    isolated: bool = False
    timeout: float = 60.0

    def payload(self) -> dict:
        return {"function": self.function, "args": list(self.args), "kwargs": dict(self.kwargs),
                "device": self.device, "grad_of": list(self.grad_of), "grad_output": self.grad_output}


@dataclass
class Outcome:
    """What one call did: ``output``/``grads``/``args_after`` are runner descriptions
    (see :func:`tensor_of`); ``peak_rss_bytes`` is measured from outside for isolated calls."""

    ok: bool
    error: str | None = None
    output: Any = None
    args_after: Any = None
    grads: list | None = None
    seconds: float | None = None
    cuda_peak_bytes: int | None = None
    peak_rss_bytes: int | None = None


@dataclass
class Check:
    """One graded check: its calls run in the sandbox, ``verify`` judges them here.

    ``verify(outcomes)`` returns None when the check passes, else a short hint for the
    student that reveals no hidden input or reference value.
    """

    grade_id: str
    name: str
    calls: list[Call]
    verify: Callable[[list[Outcome]], str | None]


@dataclass
class CheckResult:
    grade_id: str
    name: str
    passed: bool
    hint: str | None


@dataclass
class CellGrade:
    grade_id: str
    function: str
    points: float
    max_points: float
    results: list[CheckResult]


class Sandbox(Protocol):
    def wrap_reaper(self, workdir: Path, home: Path, report_fd: int, control_fd: int) -> list[str]:
        """The command that runs :mod:`autograder.reaper` confined (see
        :meth:`autograder.sandbox.BwrapSandbox.wrap_reaper`)."""


def tensor_of(description: Any) -> torch.Tensor:
    """The tensor inside a runner description; raises AssertionError with a hint otherwise."""
    if not isinstance(description, dict) or description.get("kind") != "tensor":
        kind = description.get("type", description.get("kind")) if isinstance(description, dict) else description
        raise AssertionError(f"expected a torch.Tensor, got {kind}")
    if "tensor" not in description:
        raise AssertionError(f"tensor is on {description['device']}, not materialised")
    return description["tensor"]


def forbidden_uses(source: str, function: str, names: set[str]) -> list[str]:
    """Forbidden ``names`` that ``function`` (or a helper it references, transitively)
    mentions in ``source``, as identifiers, attributes or string literals (getattr tricks)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    defs = {node.name: node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    found, seen, todo = set(), set(), [function]
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        body = defs[name].body
        docstring = body[0].value if body and isinstance(body[0], ast.Expr) and isinstance(
            body[0].value, ast.Constant) and isinstance(body[0].value.value, str) else None
        for node in ast.walk(defs[name]):
            if node is docstring:  # prose may name the forbidden call ("without torch's softmax")
                continue
            word = None
            if isinstance(node, ast.Name):
                word = node.id
            elif isinstance(node, ast.Attribute):
                word = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # whole identifiers only: an error message "conv2d_backward: ..." is not a call of
                # conv2d, while getattr(F, "conv2d") is (getattr itself is flagged too)
                found.update(n for n in names
                             if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", node.value))
            if word:
                if word in names:
                    found.add(word)
                if word in defs:
                    todo.append(word)
    return sorted(found)


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
    """Runs without a sandbox (the protocol's own tests): a fresh ``python -m autograder.runner``
    per run; its peak memory is ``wait4``'s ``ru_maxrss`` of that process."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env, self.proc = env, None
        self._tmp = tempfile.TemporaryDirectory(prefix="grade-")
        self.workdir = Path(self._tmp.name)

    def new_job(self) -> tuple[Path, Path]:
        """(folder for the grader's inputs, folder where the run writes its outcomes)."""
        job = Path(tempfile.mkdtemp(prefix="job-", dir=self.workdir))
        (job / "out").mkdir()
        return job, job / "out"

    def start(self, job: Path, out: Path, first: int) -> None:
        run_env = {**os.environ, **(self.env or {}), "PYTHONPATH": _python_path()}
        self.proc = subprocess.Popen([sys.executable, "-m", "autograder.runner", str(job), str(first), str(out)],
                                     cwd=out, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def prestart(self) -> None:
        pass

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
    :mod:`autograder.reaper` forks every run (torch already imported) and reports its exit
    status and peak memory on a pipe the graded code cannot reach.

    Layout of ``workdir`` (host side, bound writable into the sandbox): ``home/`` belongs to
    the graded code (``nobody``); each run's ``job-*/`` (job.pt, skip.txt) belongs to the
    grader, with an ``out/`` folder for the code's outcomes -- so the grader never writes
    where the code could have planted a link. If the sandbox dies, the next run starts a new one.
    """

    def __init__(self, sandbox, env: dict[str, str] | None = None):
        self.sandbox, self.env = sandbox, env
        self._tmp = tempfile.TemporaryDirectory(prefix="grade-")
        self.workdir = Path(self._tmp.name)
        os.chmod(self.workdir, 0o755)
        self.home = self.workdir / "home"
        self.home.mkdir()
        self.proc, self.report, self.control, self.ready = None, None, None, False

    def new_job(self) -> tuple[Path, Path]:
        job = Path(tempfile.mkdtemp(prefix="job-", dir=self.workdir))
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
        from autograder.reaper import Lines

        report_r, report_w = os.pipe()
        control_r, control_w = os.pipe()
        argv = self.sandbox.wrap_reaper(self.workdir, self.home, report_w, control_r)
        run_env = {**os.environ, **(self.env or {}), "PYTHONPATH": _python_path()}
        try:
            self.proc = subprocess.Popen(argv, cwd=self.workdir, env=run_env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True,
                                         pass_fds=(report_w, control_r))
        finally:
            os.close(report_w)
            os.close(control_r)
        self.report, self.control, self.ready = Lines(report_r), control_w, False

    def _ensure_started(self) -> None:
        self.prestart()
        if self.ready:
            return
        if self.report.next(REAPER_START_TIMEOUT) != "ready":
            self._stop()
            raise RuntimeError("the grading sandbox did not start (bubblewrap, or the trusted parent "
                               "autograder/reaper.py, failed)")
        self.ready = True

    def start(self, job: Path, out: Path, first: int) -> None:
        self._ensure_started()
        os.write(self.control, f"run {job} {out} {first}\n".encode())

    def _done(self, line: str | None) -> tuple[int, int | None] | None:
        if line is None:
            return None
        words = line.split()
        if len(words) == 3 and words[0] == "done":
            return int(words[1]), int(words[2]) * 1024
        self._stop()  # EOF or garbage: the sandbox is gone
        return -9, None

    def poll(self) -> tuple[int, int | None] | None:
        return self._done(self.report.next(0))

    def kill(self) -> tuple[int, int | None]:
        try:
            os.write(self.control, b"kill\n")
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
        self._stop()
        self._tmp.cleanup()


def _python_path() -> str:
    """The graded code imports ``autograder.runner`` and ``lec4`` (from src/), nothing else of the repo."""
    return os.pathsep.join([str(ROOT), str(ROOT / "src")])


def launcher_for(sandbox: Sandbox | None, env: dict[str, str] | None = None):
    """The launcher of the runs of one submission: in ``sandbox``, or local when it is None."""
    return LocalLauncher(env) if sandbox is None else SandboxLauncher(sandbox, env)


def run_calls(source: str, calls: list[Call], sandbox: Sandbox | None = None,
              env: dict[str, str] | None = None, launcher=None) -> list[Outcome]:
    """Run ``calls`` against ``source`` in one run of the runner (restarted after a failure).

    Returns one :class:`Outcome` per call. Deadlines are watched from outside, call by
    call: the submission's top-level code gets ``LOAD_TIMEOUT`` s, each call its own
    ``timeout`` from the moment the previous one finished. A call that overruns or
    kills the process gets an error, and the calls after it run in a fresh process;
    if the code never finishes loading, every remaining call fails at once.

    ``launcher`` (see :func:`launcher_for`) is shared by the runs of one submission; by
    default one is made for this call. ``Outcome.peak_rss_bytes`` of isolated calls is the
    launcher's measurement of the run (in the sandbox: :mod:`autograder.reaper`'s report).
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
    job, out = launcher.new_job()
    torch.save({"source": source, "calls": [c.payload() for c in calls]}, job / "job.pt")
    first = 0
    skipped: dict[int, str] = {}  # calls failed without running: their function already hung
    while first < len(calls):
        (job / "skip.txt").write_text(" ".join(map(str, sorted(skipped))))
        launcher.start(job, out, first)
        status, peak_rss, overran = _wait(launcher, out, calls, first)
        done = first
        for i in range(first, len(calls)):
            path = out / f"outcome-{i}.pt"
            if i in skipped:  # decided here, whatever the runner wrote
                outcomes[i] = Outcome(ok=False, error=skipped[i])
                path.unlink(missing_ok=True)
                done = i + 1
                continue
            if not path.exists():
                break
            outcomes[i] = _load_outcome(path)
            outcomes[i].peak_rss_bytes = peak_rss if calls[i].isolated else None
            path.unlink()
            done = i + 1
        if done < len(calls) and overran == "load":
            for i in range(done, len(calls)):
                outcomes[i] = Outcome(ok=False, error=f"the submission's top-level code did not finish "
                                      f"within {LOAD_TIMEOUT:.0f} s (infinite loop?)")
            done = len(calls)
        elif done < len(calls):
            reason = (f"timed out (limit {calls[done].timeout:.0f} s)" if overran
                      else f"the process died (exit status {status}) during this call")
            outcomes[done] = Outcome(ok=False, error=reason)
            if overran:  # one hang per function is enough: don't wait for each of its calls
                hung = calls[done].function
                skipped.update({j: f"not run: an earlier call of {hung} timed out"
                                for j in range(done + 1, len(calls)) if calls[j].function == hung})
            done += 1
        first = done
        (out / "loaded").unlink(missing_ok=True)
    return outcomes  # type: ignore[return-value]


def _wait(launcher, out: Path, calls: list[Call], first: int) -> tuple[int, int | None, str | None]:
    """Wait for the run, killing it when the code loading or the current call overruns;
    return (exit status, peak RSS in bytes or None, None | "load" | "call")."""
    started = time.monotonic()
    deadline, phase, progress = started + LOAD_TIMEOUT, "load", first - 1
    while True:
        ended = launcher.poll()
        if ended is not None:
            return *ended, None
        now = time.monotonic()
        if phase == "load" and (out / "loaded").exists():
            phase, deadline = "call", now + calls[first].timeout
            progress = first
        if phase == "call":
            while progress < len(calls) and (out / f"outcome-{progress}.pt").exists():
                progress += 1
                if progress < len(calls):
                    deadline = now + calls[progress].timeout
        if now > deadline:
            return *launcher.kill(), phase
        time.sleep(0.02)


def grade(suite, source: str, device: str | None = None, sandbox: Sandbox | None = None,
          env: dict[str, str] | None = None) -> dict[str, CellGrade]:
    """Grade ``source`` (the submission's code) with ``suite``; one CellGrade per grade cell.

    A function that mentions a forbidden call fails every check of that function.
    Points are partial credit: ``points * passed / checks`` for each grade cell. All runs of
    the submission share one sandbox (one trusted parent, see :class:`SandboxLauncher`);
    each run is a fresh process.
    """
    launcher = launcher_for(sandbox, env)
    try:
        return _grade(suite, source, device, launcher)
    finally:
        launcher.close()


def _grade(suite, source: str, device: str | None, launcher) -> dict[str, CellGrade]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    launcher.prestart()  # the sandbox starts while the checks are built
    checks: list[Check] = suite.build_checks(device)
    unknown = {c.grade_id for c in checks} - set(suite.GRADE_CELLS)
    if unknown:
        raise ValueError(f"checks name grade cells the suite does not declare: {sorted(unknown)}")
    banned = {fn: forbidden_uses(source, fn, set(names) | DYNAMIC_ACCESS) for fn, names in suite.FORBIDDEN.items()}

    shared = [(ci, call) for ci, check in enumerate(checks) for call in check.calls if not call.isolated]
    lone = [(ci, call) for ci, check in enumerate(checks) for call in check.calls if call.isolated]
    per_check: dict[int, list[Outcome]] = {i: [] for i in range(len(checks))}
    call_outcomes: dict[int, Outcome] = {}
    if shared:
        for (ci, call), out in zip(shared, run_calls(source, [c for _, c in shared], launcher=launcher)):
            call_outcomes[id(call)] = out
    # A function that hung in the batch, or is banned, fails its isolated calls without a wait.
    hung = {call.function for _, call in shared if (call_outcomes[id(call)].error or "").startswith("timed out")}
    function_of_cell = {gid: fn for gid, (fn, _) in suite.GRADE_CELLS.items()}
    for ci, call in lone:
        if call.function in hung:
            call_outcomes[id(call)] = Outcome(ok=False, error=f"not run: an earlier call of {call.function} timed out")
        elif banned.get(function_of_cell[checks[ci].grade_id]):
            call_outcomes[id(call)] = Outcome(ok=False, error="not run: the function uses forbidden calls")
        else:
            call_outcomes[id(call)] = run_calls(source, [call], launcher=launcher)[0]
    for ci, check in enumerate(checks):
        per_check[ci] = [call_outcomes[id(call)] for call in check.calls]

    cells = {gid: CellGrade(gid, fn, 0.0, float(pts), []) for gid, (fn, pts) in suite.GRADE_CELLS.items()}
    for ci, check in enumerate(checks):
        function = suite.GRADE_CELLS[check.grade_id][0]
        if banned.get(function):
            hint = f"{function} uses forbidden calls: {', '.join(banned[function])}"
        else:
            try:
                hint = check.verify(per_check[ci])
            except AssertionError as err:
                hint = str(err) or "wrong result"
            except Exception as err:  # outcomes of an unexpected shape (forged or broken by the submission)
                hint = f"the results could not be checked ({type(err).__name__})"
        cells[check.grade_id].results.append(CheckResult(check.grade_id, check.name, hint is None, hint))
    for cell in cells.values():
        if cell.results:
            passed = sum(r.passed for r in cell.results)
            cell.points = round(cell.max_points * passed / len(cell.results), 2)
    return cells


def expect_ok(outcome: Outcome) -> None:
    """Fail the check with the student's own error message when the call raised."""
    if not outcome.ok:
        raise AssertionError(f"the call failed: {outcome.error}")


def assert_close(description: Any, expected: torch.Tensor, atol: float, rtol: float, what: str = "output") -> None:
    """Compare a returned tensor with ``expected`` (shape, dtype, values) with a helpful hint.

    The hint gives shapes, dtypes and the max error, never the expected values themselves.
    """
    got = tensor_of(description)
    if tuple(got.shape) != tuple(expected.shape):
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    if got.dtype != expected.dtype:
        raise AssertionError(f"{what}: dtype {got.dtype}, expected {expected.dtype}")
    got64, exp64 = got.double(), expected.detach().cpu().double()
    if not torch.isfinite(got64).all() and torch.isfinite(exp64).all():
        raise AssertionError(f"{what}: contains NaN or inf")
    err = (got64 - exp64).abs()
    tol = atol + rtol * exp64.abs()
    if (err > tol).any():
        raise AssertionError(f"{what}: values differ (max abs error {err.max().item():.3g}, "
                             f"tolerance atol={atol:g}, rtol={rtol:g})")




# Checks of a property that a constant or forged output can also have (inputs unchanged,
# output device, "raises ValueError", an invariance) earn nothing on their own.
PROPERTY_CHECK = re.compile(r"unchanged|another device|inputs' device|raises ValueError|relative positions", re.I)


def anchored(check: Check, anchor: Check) -> Check:
    """``check`` credited only when ``anchor`` (a value check of the same function) passes too."""
    n = len(check.calls)

    def verify(outcomes: list[Outcome]) -> str | None:
        hint = anchor.verify(outcomes[n:])
        if hint:
            return f"needs a correct result as well: {hint}"
        return check.verify(outcomes[:n])
    fresh = [Call(c.function, list(c.args), dict(c.kwargs), c.device, c.grad_of, c.grad_output, c.isolated, c.timeout)
             for c in anchor.calls]
    return Check(check.grade_id, check.name, check.calls + fresh, verify)


def anchor_property_checks(checks: list[Check], grade_cells: dict) -> list[Check]:
    """Tie every property check (see ``PROPERTY_CHECK``) to the first plain value check of its function."""
    def plain(check):
        return (not PROPERTY_CHECK.search(check.name) and len(check.calls) == 1
                and not check.calls[0].isolated and check.calls[0].grad_output is None)
    anchors: dict[str, Check] = {}
    for check in checks:
        anchors.setdefault(grade_cells[check.grade_id][0], check) if plain(check) else None
    return [anchored(c, anchors[grade_cells[c.grade_id][0]])
            if PROPERTY_CHECK.search(c.name) and grade_cells[c.grade_id][0] in anchors else c
            for c in checks]
