"""Submissions for the similarity tests: the release notebook with its solution cells replaced."""
from __future__ import annotations

import ast
import io
import keyword
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ROOT / "tests" / "fixtures" / "similarity"
FUNCTIONS = {"hw-attention": ["apply_rope", "gqa_attention", "sliding_window_attention"],
             "hw-conv": ["conv2d_backward", "maxpool2d_backward"]}


def impl(function: str, letter: str) -> str:
    return (IMPLS / function / f"impl_{letter}.py").read_text()


def submission(assignment: str, code_of: dict[str, str]) -> str:
    """The graded source of a student whose solution cell for each function in ``code_of`` holds
    that code (the others keep the instructor's solution), laid out as the grader does."""
    from autograder.notebook import read_notebook, submission_source
    from autograder.suites import load_suite

    suite = load_suite(assignment)
    nb = read_notebook(ROOT / "solutions" / assignment / suite.NOTEBOOK)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        for function, code in code_of.items():
            if meta.get("solution") and f"def {function}(" in cell.source:
                cell["source"] = code
    return submission_source(nb, nb)


def disguise(code: str, keep: set[str]) -> str:
    """A plagiarist's copy of ``code``: every name the code binds itself (arguments, locals, helpers;
    not ``keep``, not builtins or attributes) renamed, comments and docstrings replaced, spacing
    changed, top-level helpers put in the opposite order."""
    tree = ast.parse(code)
    bound = {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
             for a in n.args + n.kwonlyargs + n.posonlyargs}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    bound -= keep
    # keyword arguments at call sites (dim=..., device=...) are not the function's own names
    calls_kw = {kw.arg for n in ast.walk(tree) if isinstance(n, ast.Call) for kw in n.keywords if kw.arg}
    rename = {name: f"{'v' if name[0].islower() else 'V'}ar_{i}_{name[::-1].lower()}x"
              for i, name in enumerate(sorted(bound))}
    out, prev = [], None
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        kind, text = tok.type, tok.string
        if kind == tokenize.NAME and text in rename and not keyword.iskeyword(text):
            is_kwarg = prev is not None and prev.string in "(," and text in calls_kw and False
            text = rename[text] if not is_kwarg else text
        elif kind == tokenize.COMMENT:
            text = "# " + "note to self: check this line again"
        out.append((kind, text))
        prev = tok
    renamed = tokenize.untokenize(out)
    # keyword arguments of calls must keep their names: undo the renaming after '(' or ', ' + '='
    for name, new in rename.items():
        if name in calls_kw:
            renamed = renamed.replace(f"{new} =", f"{name} =").replace(f"{new}=", f"{name}=")
    tree = ast.parse(renamed)
    nodes = tree.body
    pieces = [ast.get_source_segment(renamed, n) for n in nodes]
    pieces.reverse()
    spaced = [p.replace(", ", " ,  ").replace(" = ", "  =  ") for p in pieces]
    return "\n\n\n# helpers below were rearranged for readability\n".join(spaced) + "\n"
