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
    def wrap(self, argv: list[str], workdir: Path, report_fd: int | None = None) -> list[str]:
        """The command that runs ``argv`` confined, with ``workdir`` its only writable folder;
        with ``report_fd``, a trusted parent inside writes ``peak_rss_kib N`` to that inherited
        descriptor once the program has ended (see :mod:`autograder.reaper`)."""


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
    if path.stat().st_size > MAX_OUTCOME_BYTES:
        return Outcome(ok=False, error=f"output too large ({path.stat().st_size} bytes)")
    try:
        raw = torch.load(path, weights_only=True)
        return Outcome(**{k: raw.get(k) for k in Outcome.__dataclass_fields__ if k in raw})
    except Exception as err:  # a file the submission forged or broke
        return Outcome(ok=False, error=f"unreadable outcome ({type(err).__name__})")


LOAD_TIMEOUT = 60.0  # s for the submission's module-level code (imports, torch start-up included)


def run_calls(source: str, calls: list[Call], sandbox: Sandbox | None = None,
              env: dict[str, str] | None = None) -> list[Outcome]:
    """Run ``calls`` against ``source`` in one runner process (restarted after a failure).

    Returns one :class:`Outcome` per call. Deadlines are watched from outside, call by
    call: the submission's top-level code gets ``LOAD_TIMEOUT`` s, each call its own
    ``timeout`` from the moment the previous one finished. A call that overruns or
    kills the process gets an error, and the calls after it run in a fresh process;
    if the code never finishes loading, every remaining call fails at once.

    Peak memory (``Outcome.peak_rss_bytes`` of isolated calls): in the sandbox, the trusted
    reaper's report (the sandbox's bubblewrap process is not the program); without a
    sandbox (tests of the protocol only), ``wait4`` on the runner itself.
    """
    outcomes: list[Outcome | None] = [None] * len(calls)
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        workdir = Path(tmp)
        torch.save({"source": source, "calls": [c.payload() for c in calls]}, workdir / "job.pt")
        first = 0
        skipped: dict[int, str] = {}  # calls failed without running: their function already hung
        while first < len(calls):
            (workdir / "skip.txt").write_text(" ".join(map(str, sorted(skipped))))
            argv = [sys.executable, "-m", "autograder.runner", str(workdir), str(first)]
            report_r, report_w = os.pipe() if sandbox is not None else (None, None)
            if sandbox is not None:
                argv = sandbox.wrap(argv, workdir, report_fd=report_w)
            run_env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
            try:
                proc = subprocess.Popen(argv, cwd=workdir, env=run_env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True,
                                        pass_fds=() if report_w is None else (report_w,))
            finally:
                if report_w is not None:
                    os.close(report_w)
            peak_rss, overran = _wait(proc, workdir, calls, first)
            if report_r is not None:
                peak_rss = _read_report(report_r)
            done = first
            for i in range(first, len(calls)):
                path = workdir / f"outcome-{i}.pt"
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
                          else f"the process died (exit status {proc.returncode}) during this call")
                outcomes[done] = Outcome(ok=False, error=reason)
                if overran:  # one hang per function is enough: don't wait for each of its calls
                    hung = calls[done].function
                    skipped.update({j: f"not run: an earlier call of {hung} timed out"
                                    for j in range(done + 1, len(calls)) if calls[j].function == hung})
                done += 1
            first = done
            (workdir / "loaded").unlink(missing_ok=True)
    return outcomes  # type: ignore[return-value]


def _read_report(fd: int) -> int | None:
    """Peak RSS in bytes from the reaper's report on pipe ``fd`` (closed here); None without one."""
    with os.fdopen(fd, "rb") as pipe:
        text = pipe.read(4096).decode("ascii", "replace")
    match = re.fullmatch(r"peak_rss_kib (\d+)\n", text)
    return int(match.group(1)) * 1024 if match else None


def _wait(proc: subprocess.Popen, workdir: Path, calls: list[Call], first: int) -> tuple[int | None, str | None]:
    """Wait for the runner, killing its process group when the code loading or the current
    call overruns; return (peak RSS of ``proc`` itself in bytes, None | "load" | "call")."""
    started = time.monotonic()
    deadline, phase, progress = started + LOAD_TIMEOUT, "load", first - 1
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss * 1024, None
        now = time.monotonic()
        if phase == "load" and (workdir / "loaded").exists():
            phase, deadline = "call", now + calls[first].timeout
            progress = first
        if phase == "call":
            while progress < len(calls) and (workdir / f"outcome-{progress}.pt").exists():
                progress += 1
                if progress < len(calls):
                    deadline = now + calls[progress].timeout
        if now > deadline:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss * 1024, phase
        time.sleep(0.02)


def grade(suite, source: str, device: str | None = None, sandbox: Sandbox | None = None,
          env: dict[str, str] | None = None) -> dict[str, CellGrade]:
    """Grade ``source`` (the submission's code) with ``suite``; one CellGrade per grade cell.

    A function that mentions a forbidden call fails every check of that function.
    Points are partial credit: ``points * passed / checks`` for each grade cell.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
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
        for (ci, call), out in zip(shared, run_calls(source, [c for _, c in shared], sandbox, env)):
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
            call_outcomes[id(call)] = run_calls(source, [call], sandbox, env)[0]
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
