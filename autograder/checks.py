"""The check-building API a hidden-test suite writes against (public to suite authors).

A *suite* (one per assignment, in :mod:`autograder.suites`) lists :class:`Check`s. Each
check makes one or more :class:`Call`s of a student's function; the calls run in a
separate process (:mod:`autograder.engine.runner`, sandboxed in production) and only their
saved outputs (:class:`Outcome`) come back. ``Check.verify`` then compares them with references
computed in the grader, a process the student's code never touches, so nothing a submission
does at run time can change its verdict. The engine (:mod:`autograder.engine`) runs the calls
and scores; suites never import it.

A suite module defines (the first four usually imported from the assignment's public spec,
``lec4.homework.<assignment>``, which the notebook imports too):

- ``ASSIGNMENT`` (nbgrader id) and ``NOTEBOOK`` (file name in solutions/ASSIGNMENT/);
- ``GRADE_CELLS``: ``{grade_id: (function_name, points)}`` for every graded test cell,
  visible and hidden, with the points the notebook gives them;
- ``FORBIDDEN``: ``{function_name: {name, ...}}`` names a function must not use, judged by
  THE rule :func:`forbidden_uses` (public: :mod:`lec4.homework.checking`) with :data:`DYNAMIC_ACCESS`;
- ``build_checks(device) -> list[Check]``, written with the builders below -- :func:`value_check`,
  :func:`gradient_check`, :func:`memory_check`, :func:`device_check`, :func:`unchanged_check`,
  :func:`raises_check`, :func:`property_check`, :func:`all_of`. Each check declares its ``kind``
  (:data:`KINDS`); the kind, never the check's name, decides whether it earns credit alone or only
  with a correct result. The engine ties those that need one to their function's anchor
  (:func:`anchor_property_checks`, in :func:`autograder.engine.grading.suite_checks`), for every
  suite: a suite returns its checks unanchored and never calls it itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

# THE forbidden-name rule is public (students' notebooks apply it too): one source, re-exported here.
from autograder.options import CALL_TIMEOUT_S  # noqa: E402
from lec4.homework.checking import DYNAMIC_ACCESS, forbidden_uses, value_mismatch  # noqa: E402,F401


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
    timeout: float = CALL_TIMEOUT_S  # seconds; a grading's --call-timeout replaces it

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


# What a check verifies (``Check.kind``), and whether that alone can earn credit. A property that a
# constant or forged output can also have (inputs left unchanged, output on the inputs' device, "raises
# ValueError", an invariance) earns credit only together with a correct result: see ``anchored``.
KINDS = {
    "value": False,      # the output equals a trusted reference
    "gradient": False,   # gradients backpropagated through the function equal autograd's
    "memory": False,     # a correct output on a large input within a peak-memory allowance
    "device": True,      # outputs stay on the inputs' device (calls on "meta" catch CPU-made tensors)
    "unchanged": True,   # the inputs are not modified in place
    "raises": True,      # bad input raises the documented error
    "property": True,    # an invariance of the outputs (e.g. RoPE scores depend on m - n only)
}


@dataclass
class Check:
    """One graded check: its calls run in the sandbox, ``verify`` judges them here.

    ``verify(outcomes)`` returns None when the check passes, else a short hint for the
    student that reveals no hidden input or reference value (or raises AssertionError with it).
    ``kind`` is one of :data:`KINDS`; it decides whether the check needs a correct result of
    its function to earn credit (:func:`anchor_property_checks`), never the check's name.
    """

    grade_id: str
    name: str
    calls: list[Call]
    verify: Callable[[list[Outcome]], str | None]
    kind: str = "value"
    anchor: Check | None = field(default=None, repr=False, compare=False)  # set by :func:`anchored`

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"check {self.name!r}: kind {self.kind!r} is not one of {sorted(KINDS)}")

    @property
    def needs_correct_result(self) -> bool:
        """True for property checks: credited only when the function's anchor value check passes too."""
        return KINDS[self.kind]


@dataclass
class CheckResult:
    grade_id: str
    name: str
    passed: bool
    hint: str | None
    kind: str = "value"


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
    wrong = value_mismatch(got, expected, atol, rtol)  # the notebooks' check_close applies the same rule
    if wrong is not None and wrong.nonfinite:
        raise AssertionError(f"{what}: contains NaN or inf")
    if wrong is not None:  # no value of the hidden expectation in the hint
        raise AssertionError(f"{what}: values differ (max abs error {wrong.max_error:.3g}, "
                             f"tolerance atol={atol:g}, rtol={rtol:g})")




# ----------------------------------------------------------------------------- building checks
# Every builder returns a Check of one kind. Tensors are copied into each Call (``fresh_call``), so an
# in-place bug in one call cannot leak into another check's inputs.
MIB = 2**20


def fresh_call(function: str, args: list, kwargs: dict | None = None, **options) -> Call:
    """A Call of ``function`` with its own copies of the tensor arguments; ``options`` as for :class:`Call`."""
    fresh = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    return Call(function, fresh, dict(kwargs or {}), **options)


def output_items(description: Any, count: int, function: str) -> list:
    """The ``count`` descriptions of a returned tuple or list; AssertionError otherwise."""
    if not isinstance(description, dict) or description.get("kind") not in ("tuple", "list") \
            or len(description["items"]) != count:
        raise AssertionError(f"{function} must return a tuple of {count} tensors")
    return description["items"]


def expect_device(description: Any, device: str, what: str = "the output") -> None:
    """``description`` is a tensor on ``device``'s type (``cuda:1`` counts as ``cuda``)."""
    got = str(description.get("device", "")) if isinstance(description, dict) else ""
    if got.split(":")[0] != str(device).split(":")[0]:
        raise AssertionError(f"{what} is on {got or 'no device'}, expected the inputs' device ({device}); "
                             "create new tensors with device=x.device (or new_zeros / zeros_like)")


def expect_unchanged(outcome: Outcome, originals: list, names: list[str] | None = None) -> None:
    """Every tensor argument after the call equals (values and dtype) its copy taken before the call."""
    after = outcome.args_after.get("items") if isinstance(outcome.args_after, dict) else None
    if after is None:
        raise AssertionError("the arguments could not be read back after the call")
    for index, (before, description) in enumerate(zip(originals, after)):
        if isinstance(before, torch.Tensor):
            got = tensor_of(description)
            if got.dtype != before.dtype or not torch.equal(got, before):
                what = names[index] if names and index < len(names) else f"argument {index}"
                raise AssertionError(f"{what} was modified in place; return a new tensor instead")


def _originals(call: Call) -> list:
    return [a.clone() if isinstance(a, torch.Tensor) else a for a in call.args]


def value_check(grade_id: str, name: str, call: Call, expected, tolerance: tuple[float, float], *,
                what: str | list[str] = "output", unchanged: bool = False) -> Check:
    """The call's output equals ``expected`` within ``tolerance`` = (atol, rtol), on the call's device.

    ``expected`` is a tensor, or a list of tensors for a function returning a tuple (then ``what``
    names each item). With ``unchanged``, the tensor arguments must also be left as they were.
    """
    originals = _originals(call) if unchanged else None
    several = isinstance(expected, (list, tuple))

    def verify(outcomes: list[Outcome]) -> str | None:
        (outcome,) = outcomes
        expect_ok(outcome)
        if several:
            items = output_items(outcome.output, len(expected), call.function)
            for label, description, exp in zip(what, items, expected):
                expect_device(description, call.device, label)
                assert_close(description, exp, *tolerance, what=label)
        else:
            expect_device(outcome.output, call.device, "the output")
            assert_close(outcome.output, expected, *tolerance, what=what)
        if unchanged:
            expect_unchanged(outcome, originals)
        return None
    return Check(grade_id, name, [call], verify, kind="value")


def gradient_check(grade_id: str, name: str, call: Call, expected_grads: list[torch.Tensor],
                   tolerance: tuple[float, float], *, expected_output: torch.Tensor | None = None,
                   no_gradient_hint: str = "is the graph cut, e.g. by .detach() or an in-place op?") -> Check:
    """``call`` (with ``grad_output`` and ``grad_of`` set) backpropagates; the gradients of the arguments
    ``call.grad_of`` must equal ``expected_grads`` (and the output ``expected_output``, when given)."""
    def verify(outcomes: list[Outcome]) -> str | None:
        (outcome,) = outcomes
        expect_ok(outcome)
        if expected_output is not None:
            expect_device(outcome.output, call.device, f"{call.function} output")
            assert_close(outcome.output, expected_output, *tolerance, what=f"{call.function} output ({name})")
        grads = outcome.grads
        if not isinstance(grads, list) or len(grads) != len(call.grad_of):
            raise AssertionError(f"no gradients came back from {call.function}")
        for index, description, exp in zip(call.grad_of, grads, expected_grads):
            if not isinstance(description, dict) or description.get("kind") != "tensor":
                raise AssertionError(f"no gradient reached argument {index} ({no_gradient_hint})")
            assert_close(description, exp, *tolerance, what=f"gradient of argument {index}")
        return None
    return Check(grade_id, name, [call], verify, kind="gradient")


def autograd_reference(reference: Callable, args: list, grad_of: tuple[int, ...],
                       grad_output: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(output, gradients of ``args[i]`` for i in ``grad_of``) of ``reference(*args)`` in float64, by autograd,
    for the upstream gradient ``grad_output``. Tensors among ``args`` not in ``grad_of`` are used as given."""
    leaves = {i: args[i].detach().double().requires_grad_(True) for i in grad_of}
    out = reference(*[leaves.get(i, a) for i, a in enumerate(args)])
    grads = torch.autograd.grad(out, [leaves[i] for i in grad_of], grad_output.double())
    return out.detach(), grads


def memory_check(grade_id: str, name: str, small: Call, big: Call, expected: torch.Tensor,
                 tolerance: tuple[float, float], *, allowance: int, cuda_bound: int,
                 rows: list[int] | None = None) -> Check:
    """Peak memory of the ``big`` call minus the ``small`` (baseline) call, both isolated and measured
    from outside, stays within ``allowance`` bytes; on CUDA the allocator's peak of ``big`` stays within
    ``cuda_bound``. The big call's output must also be right: ``expected`` is the reference of
    ``output[:, :, rows]`` (all of it when ``rows`` is None) and its shape that of the first argument.
    """
    small.isolated = big.isolated = True
    device = big.device

    def verify(outcomes: list[Outcome]) -> str | None:
        base, large = outcomes
        expect_ok(base)
        expect_ok(large)
        got = tensor_of(large.output)
        expected_shape = tuple(big.args[0].shape)
        if tuple(got.shape) != expected_shape:
            raise AssertionError(f"output shape {tuple(got.shape)}, expected {expected_shape}")
        assert_close({"kind": "tensor", "tensor": got if rows is None else got[:, :, rows]}, expected, *tolerance)
        if device == "cuda":
            if large.cuda_peak_bytes is None or large.cuda_peak_bytes > cuda_bound:
                raise AssertionError(f"GPU peak memory {(large.cuda_peak_bytes or 0) / MIB:.0f} MiB exceeds "
                                     f"{cuda_bound / MIB:.0f} MiB for this input: memory must grow as O(T*w)")
        else:
            if base.peak_rss_bytes is None or large.peak_rss_bytes is None:
                raise AssertionError("peak memory could not be measured")
            extra = large.peak_rss_bytes - base.peak_rss_bytes
            if extra > allowance:
                raise AssertionError(f"peak memory grew by {extra / MIB:.0f} MiB on a large input (allowed "
                                     f"{allowance / MIB:.0f} MiB): too much memory for this input size")
        return None
    return Check(grade_id, name, [small, big], verify, kind="memory")


def device_check(grade_id: str, name: str, call: Call, shapes: list[tuple], dtype: torch.dtype) -> Check:
    """Run on another device (``call.device``, usually ``"meta"``: every tensor the function creates without
    ``device=...`` lands on the CPU and fails): each output (``len(shapes)`` of them) stays on that device
    with its shape and ``dtype``."""
    def verify(outcomes: list[Outcome]) -> str | None:
        (outcome,) = outcomes
        if not outcome.ok:
            raise AssertionError(f"failed with inputs on another device ({call.device}; create new tensors on "
                                 f"the inputs' device): {outcome.error}")
        items = output_items(outcome.output, len(shapes), call.function) if len(shapes) > 1 else [outcome.output]
        for description, shape in zip(items, shapes):
            if not isinstance(description, dict) or description.get("kind") != "tensor":
                raise AssertionError(f"{call.function} must return tensors")
            expect_device(description, call.device, f"an output of {call.function}")
            if tuple(description["shape"]) != tuple(shape) or description["dtype"] != str(dtype):
                raise AssertionError(f"on device {call.device!r}: output {tuple(description['shape'])} "
                                     f"{description['dtype']}, expected {tuple(shape)} {dtype}")
        return None
    return Check(grade_id, name, [call], verify, kind="device")


def unchanged_check(grade_id: str, name: str, call: Call, names: list[str] | None = None) -> Check:
    """The call succeeds and leaves its tensor arguments as they were (no in-place edits)."""
    originals = _originals(call)

    def verify(outcomes: list[Outcome]) -> str | None:
        expect_ok(outcomes[0])
        expect_unchanged(outcomes[0], originals, names)
        return None
    return Check(grade_id, name, [call], verify, kind="unchanged")


def raises_check(grade_id: str, name: str, call: Call, what: str, error: str = "ValueError") -> Check:
    """The call raises ``error`` (the documented error for bad input ``what``)."""
    def verify(outcomes: list[Outcome]) -> str | None:
        (outcome,) = outcomes
        if outcome.ok:
            raise AssertionError(f"{what} should raise {error}, but the call returned")
        if not str(outcome.error).startswith(error):
            raise AssertionError(f"{what} should raise {error}, got {outcome.error}")
        return None
    return Check(grade_id, name, [call], verify, kind="raises")


def property_check(grade_id: str, name: str, calls: list[Call],
                   judge: Callable[[list[torch.Tensor]], str | None]) -> Check:
    """Every call succeeds; ``judge`` gets their outputs (float64, CPU) and returns None or a hint."""
    def verify(outcomes: list[Outcome]) -> str | None:
        for outcome in outcomes:
            expect_ok(outcome)
        return judge([tensor_of(o.output).double() for o in outcomes])
    return Check(grade_id, name, calls, verify, kind="property")


def all_of(name: str, *checks: Check) -> Check:
    """One check (same grade cell and kind as the first) that passes when every one of ``checks`` passes."""
    first = checks[0]
    bounds, calls = [], []
    for check in checks:
        bounds.append((len(calls), len(calls) + len(check.calls)))
        calls += check.calls

    def verify(outcomes: list[Outcome]) -> str | None:
        for check, (lo, hi) in zip(checks, bounds):
            hint = check.verify(outcomes[lo:hi])
            if hint:
                return hint
        return None
    return Check(first.grade_id, name, calls, verify, kind=first.kind)


def forbidden_calls(source: str, forbidden: dict[str, set[str]]) -> dict[str, list[str]]:
    """``{function: forbidden names it uses}`` for a suite's ``FORBIDDEN`` (plus :data:`DYNAMIC_ACCESS`)."""
    return {fn: forbidden_uses(source, fn, set(names) | DYNAMIC_ACCESS) for fn, names in forbidden.items()}


# ----------------------------------------------------------------------------- anchoring
def anchored(check: Check, anchor: Check) -> Check:
    """``check`` credited only when ``anchor`` (a value check of the same function) passes too; while
    it fails, the hint names it and says why, so the student fixes the values first."""
    n = len(check.calls)

    def verify(outcomes: list[Outcome]) -> str | None:
        hint = anchor.verify(outcomes[n:])
        if hint:
            return f"counts only with correct values, and the check {anchor.name!r} fails: {hint}"
        return check.verify(outcomes[:n])
    fresh = [Call(c.function, list(c.args), dict(c.kwargs), c.device, c.grad_of, c.grad_output, c.isolated, c.timeout)
             for c in anchor.calls]
    return Check(check.grade_id, check.name, check.calls + fresh, verify, kind=check.kind, anchor=anchor)


def is_anchor(check: Check) -> bool:
    """A plain value check: one call, not isolated, no backward pass."""
    return (check.kind == "value" and len(check.calls) == 1 and not check.calls[0].isolated
            and check.calls[0].grad_output is None)


def anchor_property_checks(checks: list[Check], grade_cells: dict) -> list[Check]:
    """Tie every check that needs a correct result (``Check.needs_correct_result``, from its kind) to the
    first plain value check (:func:`is_anchor`) of the same function. The engine applies it to every
    suite's checks (:func:`autograder.engine.grading.suite_checks`); suites never call it. Idempotent:
    a check already anchored (``Check.anchor`` set) is kept as it is, never wrapped twice."""
    anchors: dict[str, Check] = {}
    for check in checks:
        if is_anchor(check):
            anchors.setdefault(grade_cells[check.grade_id][0], check)
    return [anchored(c, anchors[grade_cells[c.grade_id][0]])
            if c.needs_correct_result and c.anchor is None and grade_cells[c.grade_id][0] in anchors else c
            for c in checks]
