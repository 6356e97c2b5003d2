"""The assignment hw-attention: the notebook follows the public spec (lec4.homework.hw_attention),
the suite's references agree with the lecture's definitions, the catalog of faulty implementations
is well formed (each entry graded in the sandbox, and the reference's full marks:
test_autograder_selfcheck.py), the visible tests say what is wrong. What every assignment must
satisfy (the release is what nbgrader generates, holds no solution; nbgrader validate):
test_assignments.py."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
from autograder.suites import hw_attention as suite  # noqa: E402
from lec4.homework import hw_attention as spec  # noqa: E402

SOURCE_NB = ROOT / "solutions" / "hw-attention" / "hw-attention.ipynb"
CATALOG = ROOT / "autograder" / "catalog" / "hw_attention"
FUNCTIONS = ("apply_rope", "gqa_attention", "sliding_window_attention")


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _cell(nb, grade_id):
    return next(c for c in nb.cells if _meta(c).get("grade_id") == grade_id)


def _literal(cell_source: str, name: str):
    """The literal value assigned to ``name`` at the top level of a cell."""
    for node in ast.parse(cell_source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not assigned in the cell")


# ----------------------------------------------------------------------------- notebook <-> spec
def test_grade_cells_and_points_match_the_spec():
    """The notebook's nbgrader metadata (points, order) is the spec's GRADE_CELLS."""
    nb = nbformat.read(SOURCE_NB, as_version=4)
    graded = {_meta(c)["grade_id"]: _meta(c)["points"] for c in nb.cells if _meta(c).get("grade")}
    assert graded == {gid: pts for gid, (_, pts) in spec.GRADE_CELLS.items()}
    assert suite.GRADE_CELLS is spec.GRADE_CELLS and suite.FORBIDDEN is spec.FORBIDDEN
    assert sum(graded.values()) == 100
    assert "**Total: 100 points.**" in nb.cells[0].source
    solutions = [_meta(c)["grade_id"] for c in nb.cells if _meta(c).get("solution")]
    assert solutions == list(FUNCTIONS)
    # Each graded cell belongs to the function whose task section it sits in, after its solution cell.
    owner = None
    for cell in nb.cells:
        meta = _meta(cell)
        if meta.get("solution"):
            owner = meta["grade_id"]
        elif meta.get("grade"):
            assert spec.GRADE_CELLS[meta["grade_id"]][0] == owner, meta["grade_id"]
    for gid, (_, pts) in spec.GRADE_CELLS.items():
        if "hidden" in gid:
            source = _cell(nb, gid).source
            assert source.startswith("# Hidden tests") and f"({pts} points)" in source
            assert all(line.startswith("#") for line in source.splitlines()), f"{gid} must hold no code"


def test_notebook_imports_the_contract_instead_of_copying_it():
    """Tolerances, cases and references come from lec4.homework / lec4.rope: no locked cell defines them."""
    nb = nbformat.read(SOURCE_NB, as_version=4)
    locked = [c.source for c in nb.cells if c.cell_type == "code" and _meta(c).get("locked")]
    defined = {t.id for source in locked for node in ast.parse(source).body
               for t in (node.targets if isinstance(node, ast.Assign) else [])
               if isinstance(t, ast.Name)} | {node.name for source in locked for node in ast.parse(source).body
                                              if isinstance(node, ast.FunctionDef)}
    assert not defined & {"TOLERANCES", "ROPE_CASES", "GQA_CASES", "SWA_CASES", "random_tensor", "check_close",
                          "rope_dense_reference", "attention_reference", "window_mask", "causal_mask"}
    setup = _cell(nb, "setup").source
    assert "from lec4.homework" in setup and "from lec4.rope import rope_by_definition" in _cell(nb, "rope_visible").source


def test_suite_references_agree_with_each_other():
    x, positions = suite.random_tensor((2, 3, 5, 16), torch.float64, 1), torch.tensor([0, 7, 4096, 3, 70000])
    assert torch.allclose(suite.rope_dense_reference(x, positions), suite.rope_complex_reference(x, positions),
                          atol=1e-9)
    # Position 0 is the identity; R_m preserves norms.
    assert torch.allclose(suite.rope_dense_reference(x, torch.zeros(5, dtype=torch.long)), x)
    assert torch.allclose(suite.rope_dense_reference(x, positions).norm(dim=-1), x.norm(dim=-1))
    q, k, v = suite._qkv(2, 6, 2, 9, 9, 8, torch.float64, 5)
    w = 4
    naive = torch.empty_like(q)  # loop over heads and queries, straight from the lecture's definition
    for h in range(6):
        for t in range(9):
            keys = range(max(0, t - w // 2), t + 1)
            scores = torch.stack([(q[:, h, t] * k[:, h // 3, j]).sum(-1) for j in keys], -1) / 8 ** 0.5  # (B, n)
            values = torch.stack([v[:, h // 3, j] for j in keys], 1)                             # (B, n, D)
            naive[:, h, t] = (scores.softmax(-1)[..., None] * values).sum(1)
    assert torch.allclose(suite.attention_reference(q, k, v, suite.window_mask(9, w)), naive, atol=1e-10)
    assert torch.allclose(suite.window_rows_reference(q, k, v, w, [0, 4, 8]), naive[:, :, [0, 4, 8]], atol=1e-10)
    assert suite.causal_mask(2, 5).tolist() == [[True] * 4 + [False], [True] * 5]


# ----------------------------------------------------------------------------- grading
def _catalog() -> list[tuple[str, str, str]]:
    """(name, broken function, cell source) for every faulty implementation."""
    entries = []
    for path in sorted(CATALOG.glob("*.py")):
        source = path.read_text()
        breaks = _literal(source, "BREAKS")
        entries.append((path.stem, breaks, source))
    return entries


def test_catalog_is_large_and_covers_every_function():
    entries = _catalog()
    assert len(entries) >= 15
    assert {breaks for _, breaks, _ in entries} == set(FUNCTIONS)
    for name, breaks, source in entries:
        defined = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
        assert defined == {breaks}, f"{name} must define exactly the function it breaks"


# Every catalog entry graded in the production sandbox: tests/test_autograder_selfcheck.py.


# The release (what nbgrader generates, no solution or hidden test in it) and nbgrader validate:
# tests/test_assignments.py, for every assignment. The reference's full marks: the selfcheck's row.


def test_visible_tests_name_what_is_wrong():
    """The notebook's check_close tells the student the shape / dtype / max error."""
    nb = nbformat.read(SOURCE_NB, as_version=4)
    namespace: dict = {}
    exec(compile(_cell(nb, "setup").source, "setup", "exec"), namespace)
    check = namespace["check_close"]
    expected = torch.zeros(2, 3)
    with pytest.raises(AssertionError, match=r"shape \(3, 2\), expected \(2, 3\)"):
        check("f", torch.zeros(3, 2), expected, 1e-5, 1e-5)
    with pytest.raises(AssertionError, match="dtype torch.float16, expected torch.float32"):
        check("f", torch.zeros(2, 3, dtype=torch.float16), expected, 1e-5, 1e-5)
    with pytest.raises(AssertionError, match=re.escape("max abs error 0.5")):
        check("f", torch.full((2, 3), 0.5), expected, 1e-5, 1e-5)
