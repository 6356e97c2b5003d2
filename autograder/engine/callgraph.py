"""Which functions of a piece of code reach which others: the call graph, read from the source.

The one rule of "``g`` uses ``f``", for two users:

- the supervisor (:func:`autograder.engine.supervisor.run_calls`): a call whose function reaches a
  function whose earlier call hung is not run (it would hang again, one timeout more);
- the self-check (:func:`autograder.selfcheck.affected_cells`): the grade cells that a faulty
  solution cell can cost, read from the reference solution.

The rule: every ``def`` (top level, method, nested; ``async`` too) and every ``class`` of the source
is a node, named by its name; a class stands for all of its body (its methods included). A node
reaches every name it mentions anywhere in its code -- decorators, default values and annotations
included -- as a name (``f(x)``, ``key=f``) or as an attribute (``self.f()``, ``Fn.apply``), and,
transitively, whatever the nodes of those names reach. Several definitions of one name (the
``backward`` of two ``torch.autograd.Function`` classes) count together. A mention is enough (a
call on some branch only, a function passed along), and an attribute matches by its name alone
(``obj.f`` reaches the ``f`` of the source, whatever ``obj`` is). Not followed: names bound
outside a ``def``/``class`` (module-level aliases ``h = f``, lambdas assigned at module level) and
strings (``getattr(m, "f")``).
"""
from __future__ import annotations

import ast
from typing import Iterable

_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class CallGraph:
    """The definitions of ``sources`` (one piece of code or several, as a notebook's cells) and the
    names each mentions. A piece that does not parse raises ``SyntaxError``, or with
    ``skip_unparsable`` defines nothing (as a notebook cell that does not parse runs nothing)."""

    def __init__(self, *sources: str, skip_unparsable: bool = False):
        self.mentions: dict[str, set[str]] = {}
        for source in sources:
            try:
                tree = ast.parse(source)
            except (SyntaxError, ValueError, RecursionError):  # NUL bytes; nesting too deep for the parser
                if not skip_unparsable:
                    raise
                continue
            for node in ast.walk(tree):
                if isinstance(node, _NODES):
                    self.mentions.setdefault(node.name, set()).update(_mentioned(node))

    def reached(self, function: str, names: Iterable[str]) -> set[str]:
        """Those of ``names`` that ``function`` reaches (``function`` itself if it is one of them)."""
        names = set(names)
        found, seen, todo = set(), set(), [function]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in names:
                found.add(name)
            todo.extend(self.mentions.get(name, ()))
        return found

    def reaches(self, function: str, names: Iterable[str]) -> bool:
        """Whether ``function`` is one of ``names`` or reaches one of them."""
        return bool(self.reached(function, names))


def _mentioned(node: ast.AST) -> set[str]:
    return {n.id if isinstance(n, ast.Name) else n.attr
            for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))}
