"""The check-building API a hidden-test suite writes against (public to suite authors).

A *suite* (one per assignment, in :mod:`autograder.suites`) lists :class:`Check`s. Each
check makes one or more :class:`Call`s of a student's function; the calls run in a
separate process (:mod:`autograder.engine.runner`, sandboxed in production) and only their
saved outputs (:class:`Outcome`) come back. ``Check.verify`` then compares them with references
computed in the grader, a process the student's code never touches, so nothing a submission
does at run time can change its verdict. The engine (:mod:`autograder.engine`) runs the calls
and scores; suites never import it.

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
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

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
