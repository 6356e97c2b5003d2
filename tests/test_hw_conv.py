"""hw-conv: the notebook and the suite agree with the public spec, the suite's references are
autograd of torch's layers, a forbidden call zeroes the function (every catalogued mistake and the
reference's full marks, graded in the sandbox: test_autograder_selfcheck.py). What every
assignment must satisfy (the release, nbgrader validate): test_assignments.py.

Grading runs the submission in a separate process (autograder.engine.runner) exactly as in production,
minus the sandbox. Runner processes get one thread each: xdist already keeps both cores busy.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
from autograder.notebook import submission_source  # noqa: E402
from autograder.engine.grading import grade  # noqa: E402
from autograder.suites import hw_conv  # noqa: E402
from lec4.homework import hw_conv as spec  # noqa: E402

SOURCE_NB = ROOT / "solutions" / "hw-conv" / "hw-conv.ipynb"
FAULTY = sorted((ROOT / "autograder" / "catalog" / "hw_conv").glob("*.py"))
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

MUST_FAIL = {"conv2d_backward", "maxpool2d_backward", "wiring"}  # the solution cells


class CachedSuite:
    """hw_conv with its checks built once per process (building them loads digits and trains a little)."""

    def __init__(self):
        self._checks = {}

    def __getattr__(self, name):
        return getattr(hw_conv, name)

    def build_checks(self, device):
        if device not in self._checks:
            self._checks[device] = hw_conv.build_checks(device)
        return self._checks[device]


SUITE = CachedSuite()


def _grade(source: str):
    return grade(SUITE, source, device="cpu", env=ONE_THREAD)


def _notebook_cells(path: Path) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(path, as_version=4).cells
            if "nbgrader" in c.metadata}


def _with_cell(tmp_path: Path, grade_id: str, code: str) -> Path:
    """A submitted notebook: the solution notebook with one solution cell replaced by ``code``."""
    nb = nbformat.read(SOURCE_NB, as_version=4)
    matches = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(matches) == 1 and matches[0].metadata["nbgrader"]["solution"], grade_id
    matches[0].source = code
    path = tmp_path / "hw-conv.ipynb"
    nbformat.write(nb, path)
    return path


def _breaks(path: Path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "BREAKS":
            return node.value.value
    raise AssertionError(f"{path.name} declares no BREAKS = '<solution cell>'")


# --- the suite against the notebook -----------------------------------------------------------

def test_grade_cells_and_points_match_the_spec():
    """The notebook's nbgrader metadata is the spec's GRADE_CELLS (which the suite uses as is)."""
    graded = {gid: c.metadata["nbgrader"]["points"] for gid, c in _notebook_cells(SOURCE_NB).items()
              if c.metadata["nbgrader"]["grade"]}
    assert graded == {gid: pts for gid, (_, pts) in spec.GRADE_CELLS.items()}
    assert hw_conv.GRADE_CELLS is spec.GRADE_CELLS and hw_conv.FORBIDDEN is spec.FORBIDDEN
    assert spec.ASSIGNMENT == SOURCE_NB.parent.name and spec.NOTEBOOK == SOURCE_NB.name
    hidden = {gid for gid, c in _notebook_cells(SOURCE_NB).items() if c.source.startswith("# Hidden tests")}
    assert hidden == {"test_conv2d_backward_hidden", "test_maxpool2d_backward_hidden"}
    assert all(c.source.count("\n") == 0 for gid, c in _notebook_cells(SOURCE_NB).items() if gid in hidden)


def test_every_check_names_a_declared_cell_and_every_cell_has_checks():
    checks = SUITE.build_checks("cpu")
    assert {c.grade_id for c in checks} == set(hw_conv.GRADE_CELLS)
    assert len([c for c in checks if c.grade_id == "test_conv2d_backward_hidden"]) >= 15
    assert len([c for c in checks if c.grade_id == "test_maxpool2d_backward_hidden"]) >= 10


def test_notebook_imports_the_given_code_and_the_rules():
    """The given layers, init_cnn_params, forbidden lists and the rule come from lec4.homework: no copies."""
    cells = _notebook_cells(SOURCE_NB)
    locked = [c.source for c in cells.values() if c.cell_type == "code" and c.metadata["nbgrader"].get("locked")]
    defined = {node.name for source in locked for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    assigned = {t.id for source in locked for node in ast.parse(source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert not defined & {"conv2d_forward", "maxpool2d_forward", "distinct_values", "init_cnn_params",
                          "check_close", "assert_no_forbidden_names", "conv_output_size"}
    assert not assigned & {"FORBIDDEN_CONV", "FORBIDDEN_POOL", "DYNAMIC_ACCESS"}
    assert "assert_no_forbidden_names(conv2d_backward, FORBIDDEN_CONV)" in cells["test_conv2d_backward_visible"].source
    assert "assert_no_forbidden_names(maxpool2d_backward, FORBIDDEN_POOL)" in cells["test_maxpool2d_backward_visible"].source


def test_catalog_covers_the_classic_mistakes():
    assert len(FAULTY) >= 10
    assert {_breaks(p) for p in FAULTY} == MUST_FAIL


def test_forbidden_calls_zero_the_function(tmp_path):
    code = _notebook_cells(SOURCE_NB)["conv2d_backward"].source
    cheat = code.replace("### BEGIN SOLUTION", "### BEGIN SOLUTION\n    getattr(F, 'conv_transpose2d')")
    cells = _grade(submission_source(SOURCE_NB, _with_cell(tmp_path, "conv2d_backward", cheat)))
    for gid in ("test_conv2d_backward_visible", "test_conv2d_backward_hidden", "test_wiring", "test_train_cnn"):
        assert cells[gid].points == 0, gid
    assert "forbidden" in cells["test_conv2d_backward_hidden"].results[0].hint
    assert cells["test_maxpool2d_backward_hidden"].points == cells["test_maxpool2d_backward_hidden"].max_points


@pytest.mark.parametrize("function, answer", [
    ("conv2d_backward", "return tuple(conv_expected(grad_out, x, weight, stride, padding))"),
    ("maxpool2d_backward", "return pool_expected(grad_out, x, kernel_size, stride)")])
def test_the_visible_tests_expectations_cannot_be_handed_in(tmp_path, function, answer):
    """conv_expected / pool_expected (public: the visible cells call them) compute the graded gradients:
    a function that returns theirs gets no point on its cells."""
    code = _notebook_cells(SOURCE_NB)[function].source
    start, end = code.index("### BEGIN SOLUTION"), code.index("### END SOLUTION")
    body = f"from lec4.homework.hw_conv import conv_expected, pool_expected\n    {answer}\n    "
    cells = _grade(submission_source(SOURCE_NB, _with_cell(tmp_path, function, code[:start] + body + code[end:])))
    own = [gid for gid, (graded, _) in spec.GRADE_CELLS.items() if graded == function]
    assert own and all(cells[gid].points == 0 for gid in own), {gid: cells[gid].points for gid in own}
    assert any("forbidden" in r.hint for gid in own for r in cells[gid].results), cells[own[0]].results


def test_references_are_autograd_of_torch_layers():
    """The trusted twin of the notebook's CNN and the conv reference agree with nn modules' autograd."""
    cfg = hw_conv.CONV_HIDDEN[2]
    grad_out, x, weight = hw_conv.conv_inputs(cfg, 0)
    conv = torch.nn.Conv2d(cfg[1], cfg[4], cfg[5:7], stride=cfg[7], padding=cfg[8], dtype=torch.float64)
    conv.weight.data.copy_(weight)
    leaf = x.clone().requires_grad_()
    conv(leaf).backward(grad_out)
    grad_x, grad_weight, grad_bias = hw_conv.conv_expected(grad_out, x, weight, cfg[7], cfg[8])
    torch.testing.assert_close(grad_x, leaf.grad)
    torch.testing.assert_close(grad_weight, conv.weight.grad)
    torch.testing.assert_close(grad_bias, conv.bias.grad)


# --- the release and nbgrader: tests/test_assignments.py, for every assignment -----------------
# (the reference's full marks and the blank release's 0: the selfcheck's rows)

def test_trusted_pretraining_is_torch_sgd_with_momentum():
    """The suite's hand-written SGD (no torch.optim: its import costs seconds per graded notebook)."""
    params = [p.requires_grad_() for p in spec.init_cnn_params(1201, torch.float64)]
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    _, _, x, y = hw_conv._digits_batches()
    for step in range(60):
        batch = slice((step * 32) % (len(y) - 32), (step * 32) % (len(y) - 32) + 32)
        loss = torch.nn.functional.cross_entropy(hw_conv.reference_cnn_logits(x[batch], *params), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for ours, reference in zip(hw_conv._pretrained_params(1201), params):
        torch.testing.assert_close(ours, reference.detach(), atol=1e-12, rtol=0)


# --- one test definition for the visible cell and the grader ----------------------------------
SLIGHTLY_OFF = 1 + 3e-7  # a relative error the grader's float64 tolerance (rtol 1e-7) refuses


@pytest.mark.parametrize("function, visible", [("conv2d_backward", "test_conv2d_backward_visible"),
                                               ("maxpool2d_backward", "test_maxpool2d_backward_visible")])
def test_the_visible_cell_fails_exactly_when_the_graders_checks_of_that_cell_do(tmp_path, function, visible):
    """A student must not pass a visible test cell and lose its points: the notebook's cell and the
    grader's checks of that cell run the same cases, inputs and tolerances (lec4.homework.hw_conv's
    CONV_VISIBLE / POOL_VISIBLE, conv_inputs / pool_inputs, TOLERANCES). A gradient off by a relative
    3e-7 fails both (the reference passes both: tests/test_assignments.py, the selfcheck). The visible
    cells used to draw their own inputs and use check_close's looser defaults: this function passed the
    cell and lost its points."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    cells = _notebook_cells(SOURCE_NB)
    off = cells[function].source + (
        f"\n\n_exact = {function}\n\n\ndef {function}(*args, **kwargs):\n"
        f"    out = _exact(*args, **kwargs)\n"
        f"    return tuple(t * {SLIGHTLY_OFF!r} for t in out) if isinstance(out, tuple) else out * {SLIGHTLY_OFF!r}\n")
    graded = _grade(submission_source(SOURCE_NB, _with_cell(tmp_path, function, off)))
    assert graded[visible].points < graded[visible].max_points, graded[visible].results

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in
                                         (cells["setup"].source, off, cells[visible].source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with pytest.raises(CellExecutionError) as failed:
        NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert "values differ" in str(failed.value), str(failed.value)[-2000:]  # check_close, in the visible cell
