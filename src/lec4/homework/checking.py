"""What every assignment's tests share: seeded inputs, a helpful comparison, the forbidden-name rule.

The notebooks' visible tests and the autograder's hidden tests use these same functions, so a
visible test cannot disagree with the grader about how inputs are drawn or which names are
forbidden:

- :func:`random_tensor`: seeded standard-normal input, identical on every machine;
- :func:`check_close`: compare a result with a reference and say *what* is wrong (shape, dtype,
  device, max error, first bad index), by :func:`value_mismatch`, the rule the grader's value
  checks apply too;
- :func:`forbidden_uses`: THE rule for forbidden calls, applied by the autograder to the submitted
  code (``autograder.checks`` re-exports it) and by :func:`assert_no_forbidden_names` in the notebook.
"""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch

# Ways to reach a forbidden call without naming it; never needed by the graded functions.
# Flagged in every graded function that has forbidden names.
DYNAMIC_ACCESS = frozenset({"getattr", "eval", "exec", "compile", "__import__", "importlib", "globals", "vars",
                            "__dict__", "__builtins__", "__getattribute__", "modules"})


# ----------------------------------------------------------------------------- inputs and comparison
def random_tensor(shape, dtype: torch.dtype = torch.float32, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Standard-normal tensor of ``shape`` (times ``scale``), drawn in float64 from ``seed``, then cast to ``dtype``.

    Drawing in float64 makes the values the same for every dtype and machine (a float16 input is
    the float64 draw rounded), so a test case is fully described by (shape, dtype, seed).
    """
    generator = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=generator, dtype=torch.float64)).to(dtype)


@dataclass(frozen=True)
class Mismatch:
    """How ``got`` differs from ``expected`` in value (see :func:`value_mismatch`)."""

    nonfinite: bool  # got has NaN or inf where expected is finite everywhere
    count: int = 0  # values outside the tolerance, of ``total``
    total: int = 0
    max_error: float = 0.0
    index: tuple = ()  # the first value outside the tolerance, with both values
    got: float = 0.0
    expected: float = 0.0


def value_mismatch(got: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> Mismatch | None:
    """THE rule of every value comparison, the notebooks' :func:`check_close` and the grader's checks
    (``autograder.checks.assert_close``): compared in float64, the values match when ``got`` is finite
    wherever ``expected`` is finite everywhere, and ``|got - expected| <= atol + rtol * |expected|``
    everywhere. None when they match; else what differs. Shapes must already agree."""
    got64, expected64 = got.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.isfinite(got64).all() and torch.isfinite(expected64).all():
        return Mismatch(nonfinite=True)
    error = (got64 - expected64).abs()
    bad = error > atol + rtol * expected64.abs()
    if not bad.any():
        return None
    index = tuple(i.item() for i in bad.nonzero()[0])
    return Mismatch(False, int(bad.sum().item()), bad.numel(), error.max().item(), index, got64[index].item(),
                    expected64[index].item())


def check_close(what: str, got, expected: torch.Tensor, atol: float = 1e-8, rtol: float = 1e-6) -> None:
    """Assert that tensor ``got`` matches ``expected`` in shape, dtype, device and values.

    Values match by :func:`value_mismatch`'s rule. The message names ``what`` was tested and what is
    wrong: the shape, dtype or device, or how many values differ, the max abs error and the first bad
    index with both values.
    """
    assert isinstance(got, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(got).__name__}"
    assert got.shape == expected.shape, f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype}, expected {expected.dtype}"
    assert got.device == expected.device, f"{what}: device {got.device}, expected {expected.device}"
    wrong = value_mismatch(got, expected, atol, rtol)
    assert wrong is None or not wrong.nonfinite, f"{what}: contains NaN or inf"
    if wrong is not None:
        raise AssertionError(
            f"{what}: {wrong.count} of {wrong.total} values differ, max abs error {wrong.max_error:.3g} "
            f"(atol={atol:g}, rtol={rtol:g}); first at index {wrong.index}: got {wrong.got:.6g}, "
            f"expected {wrong.expected:.6g}")


# ----------------------------------------------------------------------------- the forbidden-name rule
def _words(text: str, names: Iterable[str]) -> set[str]:
    """The ``names`` that occur in ``text`` as whole identifiers ("conv2d_backward" does not contain conv2d)."""
    return {n for n in names if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", text)}


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level: ``body`` and the blocks of its if/for/while/with/try, not defs."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _module_statements(getattr(node, field, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            yield from _module_statements(handler.body)


def _target_names(target: ast.expr) -> list[str]:
    """Names bound by an assignment target (``a``, ``a, b``, ``[a, *b]``); attributes/subscripts bind none."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for element in target.elts for n in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _handed_on(value: ast.expr | None) -> set[str]:
    """Identifiers whose *object* ``value`` hands on (``F.sdpa``, ``partial(sdpa, ...)``, ``[sdpa]``,
    ``lambda *a: sdpa(*a)``), as opposed to the result of calling them (``sdpa(q, k, v)``)."""
    if value is None:
        return set()
    if isinstance(value, ast.Name):
        return {value.id}
    if isinstance(value, ast.Attribute):
        return {value.attr}
    if isinstance(value, ast.Lambda):  # any mention in its body is handed on with the lambda
        return {n.id for n in ast.walk(value.body) if isinstance(n, ast.Name)} | \
               {n.attr for n in ast.walk(value.body) if isinstance(n, ast.Attribute)}
    if isinstance(value, ast.Call):  # functools.partial(F.sdpa, ...): the arguments, not the callee
        return set().union(*(_handed_on(a) for a in value.args), *(_handed_on(k.value) for k in value.keywords))
    if isinstance(value, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_handed_on(e) for e in value.elts))
    if isinstance(value, ast.Dict):
        return set().union(*(_handed_on(v) for v in value.values))
    if isinstance(value, (ast.Subscript, ast.Starred)):
        return _handed_on(value.value)
    if isinstance(value, ast.IfExp):
        return _handed_on(value.body) | _handed_on(value.orelse)
    if isinstance(value, ast.BoolOp):
        return set().union(*(_handed_on(v) for v in value.values))
    return set()


def _module_aliases(tree: ast.Module, names: set[str], defs: set[str]) -> tuple[dict, dict]:
    """Module-level names bound to a forbidden name or to a function defined in the source.

    Returns ``(forbidden, helpers)``: ``forbidden[alias]`` is the set of forbidden names the alias
    stands for (``from torch.nn.functional import scaled_dot_product_attention as s``,
    ``s = F.scaled_dot_product_attention``, ``t = s``); ``helpers[alias]`` the defined functions
    it stands for (``h = my_helper``), which are followed like the helper itself.
    """
    bindings: list[tuple[list[str], set[str]]] = []
    for node in _module_statements(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                original = alias.name.split(".")[-1]
                if alias.asname and alias.asname != original:
                    bindings.append(([alias.asname], {original}))
        elif isinstance(node, ast.Assign):
            bindings.append(([n for t in node.targets for n in _target_names(t)], _handed_on(node.value)))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            bindings.append((_target_names(node.target), _handed_on(node.value)))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            bindings.append((_target_names(node.target), _handed_on(node.iter)))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    bindings.append((_target_names(item.optional_vars), _handed_on(item.context_expr)))
    forbidden: dict[str, set[str]] = {}
    helpers: dict[str, set[str]] = {}
    changed = True
    while changed:  # to a fixpoint: an alias of an alias, in any order
        changed = False
        for targets, handed in bindings:
            stands_for = set(handed & names).union(*(forbidden.get(h, set()) for h in handed))
            calls = set(handed & defs).union(*(helpers.get(h, set()) for h in handed))
            for target in targets:
                if not stands_for <= forbidden.get(target, set()):
                    forbidden.setdefault(target, set()).update(stands_for)
                    changed = True
                if not calls <= helpers.get(target, set()):
                    helpers.setdefault(target, set()).update(calls)
                    changed = True
    return forbidden, helpers


def _local_names(definition: ast.AST) -> set[str]:
    """Names a function (or class) binds itself: parameters, assigned names, inner defs and imports,
    minus those it declares ``global`` (they are the module's)."""
    local, declared_global = set(), set()
    for node in ast.walk(definition):
        if isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            local.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not definition:
            local.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            local.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_global.update(node.names)
    return local - declared_global


def forbidden_uses(source: str, function: str, names: set[str]) -> list[str]:
    """Forbidden ``names`` that ``function`` in ``source`` uses, sorted; [] when there are none.

    The rule, applied both by the autograder (to the submitted code) and by
    :func:`assert_no_forbidden_names` (to the notebook's code):

    - the body of ``function`` (decorators and default values included) and, transitively, of every
      function or class of ``source`` it mentions (helpers) is searched;
    - a use is a whole identifier: a name (``sdpa``), an attribute (``F.sdpa``) or a word in a string
      literal (``getattr(F, "sdpa")``; an error message ``"conv2d_backward: ..."`` does not use
      ``conv2d``); the docstring is prose and is not searched;
    - a module-level alias of a forbidden name counts as that name where ``function`` uses it
      (``from torch.nn.functional import scaled_dot_product_attention as s``, ``s = F.sdpa``,
      ``s = partial(F.sdpa, ...)``), unless ``function`` binds that name itself (a parameter or a
      local variable of the same name); a module-level alias of a helper (``h = helper``) is followed.

    Code that does not parse uses nothing (it fails to run instead).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    defs = {node.name: node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    aliases, helper_aliases = _module_aliases(tree, set(names), set(defs))
    found, seen, todo = set(), set(), [function]
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        body = defs[name].body
        docstring = body[0].value if body and isinstance(body[0], ast.Expr) and isinstance(
            body[0].value, ast.Constant) and isinstance(body[0].value.value, str) else None
        local = _local_names(defs[name])
        for node in ast.walk(defs[name]):
            if node is docstring:  # prose may name the forbidden call ("without torch's softmax")
                continue
            word = None
            if isinstance(node, ast.Name):
                word = node.id
                if word not in local:
                    found.update(aliases.get(word, ()))
                    todo.extend(helper_aliases.get(word, ()))
            elif isinstance(node, ast.Attribute):
                word = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # getattr(F, "conv2d") names conv2d (and getattr itself is flagged too)
                found.update(_words(node.value, names))
            if word:
                if word in names:
                    found.add(word)
                if word in defs:
                    todo.append(word)
    return sorted(found)


def _notebook_source(fn: Callable) -> str:
    """The code ``fn`` lives in: every cell run so far in a notebook (IPython's input history; cells that
    do not parse left out), else the whole file of its module, else the function's own source."""
    history = getattr(fn, "__globals__", {}).get("In")
    if isinstance(history, list) and history:
        cells = []
        for cell in history:
            try:
                ast.parse(cell)
            except (SyntaxError, ValueError, TypeError):
                continue
            cells.append(cell)
        return "\n\n".join(cells)
    try:
        return open(inspect.getsourcefile(fn), encoding="utf-8").read()
    except (TypeError, OSError):
        return textwrap.dedent(inspect.getsource(fn))


def assert_no_forbidden_names(fn: Callable, names: Iterable[str], source: str | None = None) -> None:
    """Fail when ``fn`` uses one of ``names`` or of :data:`DYNAMIC_ACCESS`: the autograder's rule
    (:func:`forbidden_uses`), applied to the notebook's code (or to ``source`` when given).

    Helpers that ``fn`` calls and module-level aliases count, exactly as in grading.
    """
    if source is None:
        source = _notebook_source(fn)
        if fn.__name__ not in {n.name for n in ast.walk(_parse_or_empty(source))
                               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}:
            source += "\n\n" + textwrap.dedent(inspect.getsource(fn))
    used = forbidden_uses(source, fn.__name__, set(names) | DYNAMIC_ACCESS)
    assert not used, f"{fn.__name__} uses forbidden names {used} (see the rules at the top of the notebook)"


def _parse_or_empty(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])
