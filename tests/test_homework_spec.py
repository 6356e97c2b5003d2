"""The public assignment specs (lec4.homework) and the one forbidden-name rule.

The notebook's ``assert_no_forbidden_names`` and the grader's ``forbidden_uses`` must give the same
verdict on the same code: whole identifiers, helpers followed, module-level aliases caught,
docstrings ignored. The specs list every public function that computes a graded quantity among
the forbidden names, and the check kinds (not the check names) decide what needs a correct result.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from autograder import checks
from autograder.notebook import submission_source
from lec4.homework import checking, hw_attention, hw_conv

ROOT = Path(__file__).resolve().parents[1]
ATTENTION = hw_attention.FORBIDDEN["gqa_attention"]
CONV = hw_conv.FORBIDDEN_CONV

# (name, code, function, names, expected forbidden uses): the rule's cases.
CASES = [
    ("plain call", "import torch.nn.functional as F\ndef gqa_attention(q, k, v):\n"
     "    return F.scaled_dot_product_attention(q, k, v)\n", "gqa_attention", ATTENTION,
     ["scaled_dot_product_attention"]),
    ("whole identifiers only", "def conv2d_backward(g, x, w):\n"
     "    raise ValueError('conv2d_backward: use conv2d_forward, not backward_hooks')\n",
     "conv2d_backward", CONV, []),
    ("string names a call", "import torch.nn.functional as F\ndef conv2d_backward(g, x, w):\n"
     "    return getattr(F, 'conv_transpose2d')(g, w)\n", "conv2d_backward", CONV,
     ["conv_transpose2d", "getattr"]),
    ("helpers followed", "import torch.nn.functional as F\ndef _scores(q, k, v):\n"
     "    return F.scaled_dot_product_attention(q, k, v)\ndef gqa_attention(q, k, v):\n    return _scores(q, k, v)\n",
     "gqa_attention", ATTENTION, ["scaled_dot_product_attention"]),
    ("docstring ignored", 'def gqa_attention(q, k, v):\n    """Like scaled_dot_product_attention, by hand."""\n'
     "    return q\n", "gqa_attention", ATTENTION, []),
    ("import alias", "from torch.nn.functional import scaled_dot_product_attention as s\n"
     "def gqa_attention(q, k, v):\n    return s(q, k, v)\n", "gqa_attention", ATTENTION,
     ["scaled_dot_product_attention"]),
    ("assignment alias", "import torch.nn.functional as F\ns = F.scaled_dot_product_attention\nt = s\n"
     "def gqa_attention(q, k, v):\n    return t(q, k, v)\n", "gqa_attention", ATTENTION,
     ["scaled_dot_product_attention"]),
    ("partial alias", "import functools\nimport torch.nn.functional as F\n"
     "kernel = functools.partial(F.scaled_dot_product_attention, is_causal=True)\n"
     "def gqa_attention(q, k, v):\n    return kernel(q, k, v)\n", "gqa_attention", ATTENTION,
     ["scaled_dot_product_attention"]),
    ("alias of a public reference", "from lec4.rope import rope_by_definition as slow\n"
     "def apply_rope(x, positions, base=10000.0):\n    return slow(x, positions, base)\n", "apply_rope",
     hw_attention.FORBIDDEN["apply_rope"], ["rope_by_definition"]),
    ("alias of a helper followed", "import torch.nn.functional as F\ndef _helper(q, k, v):\n"
     "    return F.scaled_dot_product_attention(q, k, v)\nh = _helper\ndef gqa_attention(q, k, v):\n"
     "    return h(q, k, v)\n", "gqa_attention", ATTENTION, ["scaled_dot_product_attention"]),
    ("a local of the alias's name is not the alias", "import torch.nn.functional as F\n"
     "out = F.scaled_dot_product_attention\ndef gqa_attention(q, k, v):\n    out = q @ k.transpose(-2, -1)\n"
     "    return out.softmax(-1) @ v\n", "gqa_attention", ATTENTION, []),
    ("a computed value is no alias", "import torch, torch.nn.functional as F\n"
     "grad_out = torch.randn_like(F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2)))\n"
     "def conv2d_backward(grad_out, x, weight):\n    return grad_out.sum()\n", "conv2d_backward", CONV, []),
]
IDS = [case[0] for case in CASES]


def notebook_verdict(code: str, function: str, names) -> list[str]:
    """What the notebook helper says, run as in a notebook: the cell executed, IPython's history in ``In``."""
    namespace = {"In": ["", code]}
    exec(compile(code, "<cell>", "exec"), namespace)
    try:
        checking.assert_no_forbidden_names(namespace[function], names)
    except AssertionError as err:
        return sorted(n for n in set(names) | checking.DYNAMIC_ACCESS if repr(n) in str(err))
    return []


@pytest.mark.parametrize("name,code,function,names,expected", CASES, ids=IDS)
def test_grader_rule(name, code, function, names, expected):
    assert checks.forbidden_uses(code, function, set(names) | checks.DYNAMIC_ACCESS) == expected


@pytest.mark.parametrize("name,code,function,names,expected", CASES, ids=IDS)
def test_notebook_helper_gives_the_graders_verdict(name, code, function, names, expected):
    assert notebook_verdict(code, function, names) == expected


def test_notebook_helper_reads_a_module_file(tmp_path, monkeypatch):
    """Outside a notebook the helper reads the function's whole module (helpers and aliases included)."""
    (tmp_path / "student_module.py").write_text(CASES[6][1])
    monkeypatch.syspath_prepend(str(tmp_path))
    import student_module
    with pytest.raises(AssertionError, match="scaled_dot_product_attention"):
        checking.assert_no_forbidden_names(student_module.gqa_attention, ATTENTION)


def test_one_rule_one_source():
    assert checks.forbidden_uses is checking.forbidden_uses
    assert checks.DYNAMIC_ACCESS is checking.DYNAMIC_ACCESS


def test_aliases_in_the_real_notebook_layout_cost_the_function():
    """A correct hw-attention submission plus a module-level alias used by gqa_attention: only gqa is banned."""
    source = submission_source(ROOT / "solutions" / "hw-attention" / "hw-attention.ipynb")
    assert checks.forbidden_calls(source, hw_attention.FORBIDDEN) == {fn: [] for fn in hw_attention.FORBIDDEN}
    cheat = source + textwrap.dedent("""
        from torch.nn.functional import scaled_dot_product_attention as _fast
        def gqa_attention(q, k, v, causal=True):
            return _fast(q, k, v, is_causal=causal, enable_gqa=True)
        """)
    banned = checks.forbidden_calls(cheat, hw_attention.FORBIDDEN)
    assert banned == {"apply_rope": [], "gqa_attention": ["scaled_dot_product_attention"],
                      "sliding_window_attention": []}


def test_public_references_are_forbidden_where_they_would_solve_the_task():
    import lec4.attention
    import lec4.rope
    rope = {"rope_by_definition", "rotation_matrix", "matrix_version_rope", "half_split_rotation_matrix"}
    attention = {"masked_attention", "gqa_attention_loop", "sliding_window_attention_naive",
                 "sliding_window_attention_loop", "attention_reference"}
    assert all(hasattr(lec4.rope, n) for n in rope) and all(hasattr(lec4.attention, n) for n in attention - {
        "attention_reference"}) and hasattr(hw_attention, "attention_reference")
    assert rope <= hw_attention.FORBIDDEN["apply_rope"]
    for fn in ("gqa_attention", "sliding_window_attention"):
        assert attention | {"scaled_dot_product_attention", "flex_attention"} <= hw_attention.FORBIDDEN[fn]
    assert {"conv2d_backward_reference", "conv_expected"} <= hw_conv.FORBIDDEN["conv2d_backward"]
    assert {"maxpool2d_backward_reference", "pool_expected"} <= hw_conv.FORBIDDEN["maxpool2d_backward"]


def test_the_visible_references_are_the_definitions():
    x = checking.random_tensor((2, 3, 4, 8), torch.float64, 1)
    q, k, v = (checking.random_tensor((1, 4, 5, 8), torch.float64, s) for s in (1, 2, 3))
    k, v = k[:, :2], v[:, :2]
    import lec4.attention
    expected = lec4.attention.gqa_attention_loop(q, k, v, hw_attention.causal_mask(5, 5))
    torch.testing.assert_close(hw_attention.attention_reference(q, k, v, hw_attention.causal_mask(5, 5)), expected)
    assert hw_attention.window_mask(5, 4).sum(1).tolist() == [1, 2, 3, 3, 3]
    from lec4.rope import rope_by_definition
    assert torch.allclose(rope_by_definition(x, torch.zeros(4, dtype=torch.long)), x)


def test_init_cnn_params_draws_as_the_notebook_and_the_grader_did():
    """float32 (the notebook's training) and float64 (the grader's training step) keep their former draws."""
    shapes, fan_in = [(8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (10, 64), (10,)], [9, 9, 72, 72, 64, 64]
    for dtype in (torch.float32, torch.float64):
        gen = torch.Generator().manual_seed(7)
        before = [(torch.randn(s, generator=gen, dtype=dtype) / f ** 0.5) for s, f in zip(shapes, fan_in)]
        for old, new in zip(before, hw_conv.init_cnn_params(7, dtype)):
            assert torch.equal(old, new) and new.dtype == dtype


# ----------------------------------------------------------------------------- check kinds and anchoring
def _check(grade_id: str, name: str, kind: str, passes: bool = True) -> checks.Check:
    return checks.Check(grade_id, name, [checks.Call("f", [torch.ones(1)])],
                        lambda outcomes: None if passes else "wrong", kind=kind)


def test_kind_not_name_decides_what_needs_a_correct_result():
    cells = {"cell": ("f", 1)}
    anchor = _check("cell", "inputs unchanged", "value", passes=False)    # a name the old regex matched
    prop = _check("cell", "some invariance", "property")                  # a name it did not
    anchored = checks.anchor_property_checks([anchor, prop], cells)
    assert anchored[0] is anchor
    assert len(anchored[1].calls) == 2 and anchored[1].kind == "property"
    assert anchored[1].verify([checks.Outcome(ok=True)] * 2) == (
        "counts only with correct values, and the check 'inputs unchanged' fails: wrong")
    with pytest.raises(ValueError, match="kind"):
        _check("cell", "x", "vibes")


def test_anchoring_twice_wraps_nothing_twice():
    cells = {"cell": ("f", 1)}
    once = checks.anchor_property_checks([_check("cell", "a", "value"), _check("cell", "p", "property")], cells)
    twice = checks.anchor_property_checks(once, cells)
    assert all(a is b for a, b in zip(once, twice)) and len(twice[1].calls) == 2 and twice[1].anchor is once[0]


def test_every_suite_check_declares_a_kind_and_the_engine_anchors_them():
    from autograder.engine.grading import suite_checks
    from autograder.suites import hw_attention as suite
    built = suite.build_checks("cpu")
    assert {c.kind for c in built} == {"value", "gradient", "memory", "device", "unchanged", "property"}
    assert all(c.needs_correct_result == (c.kind in ("device", "unchanged", "property", "raises")) for c in built)
    assert not [c for c in built if c.anchor is not None]  # the suite leaves anchoring to the engine
    # the engine ties each check that needs a correct result to its function's anchor: one call more
    graded = suite_checks(suite, "cpu")
    assert [c.name for c in graded] == [c.name for c in built]
    for plain, check in zip(built, graded):
        assert (check.anchor is not None) == check.needs_correct_result
        assert len(check.calls) == len(plain.calls) + (len(check.anchor.calls) if check.anchor else 0)


def test_the_engine_refuses_a_check_that_needs_a_correct_result_and_has_no_anchor():
    from types import SimpleNamespace

    from autograder.engine.grading import anchored_checks
    suite = SimpleNamespace(ASSIGNMENT="hw-x", GRADE_CELLS={"cell": ("f", 1), "other": ("g", 1)})
    fine = [_check("cell", "a", "value"), _check("cell", "p", "unchanged")]
    assert anchored_checks(suite, fine)[1].anchor is fine[0]
    with pytest.raises(ValueError, match="no plain value check to anchor them: 'q' \\(device, other\\)$"):
        anchored_checks(suite, fine + [_check("other", "q", "device")])
    with pytest.raises(ValueError, match="does not declare"):
        anchored_checks(suite, [_check("nowhere", "a", "value")])


E = torch.tensor([1.0, -2.0, 0.0, 4.0], dtype=torch.float64)


@pytest.mark.parametrize("got, expected, atol, rtol", [
    (E.clone(), E, 1e-8, 1e-6),                                               # equal
    (E + torch.tensor([0, 0, 0, 4e-6]), E, 1e-8, 1e-6),                       # inside atol + rtol * 4
    (E + torch.tensor([0, 0, 0, 5e-6]), E, 1e-8, 1e-6),                       # just outside
    (E + torch.tensor([0, 0, 2e-8, 0]), E, 1e-8, 1e-6),                       # at 0 only atol counts
    (E * (1 + 3e-7), E, 1e-9, 1e-7),                                          # relative error over rtol
    (torch.tensor([1.0, float("nan"), 0, 4], dtype=torch.float64), E, 1, 1),  # NaN where a number is expected
    (torch.tensor([1.0, float("inf"), 0, 4], dtype=torch.float64),
     torch.tensor([1.0, float("inf"), 0, 4], dtype=torch.float64), 1e-8, 1e-6),
    (E.float(), E.float(), 1e-3, 1e-4),                                       # float32, as sent
])
def test_the_notebook_and_the_grader_compare_values_by_one_rule(got, expected, atol, rtol):
    """check_close (the notebooks' visible tests) and the grader's assert_close refuse the same values:
    both apply lec4.homework.checking.value_mismatch; only their messages differ (the grader's names
    no expected value)."""
    def refuses(compare) -> bool:
        try:
            compare()
        except AssertionError:
            return True
        return False

    notebook = refuses(lambda: checking.check_close("x", got, expected, atol, rtol))
    grader = refuses(lambda: checks.assert_close({"kind": "tensor", "tensor": got}, expected, atol, rtol))
    assert notebook == grader == (checking.value_mismatch(got, expected, atol, rtol) is not None)
