"""``python -m autograder selfcheck`` in the production configuration: every submission is graded
in the bubblewrap sandbox, with the trusted reaper measuring memory, as ``autograde`` does.

For every assignment the reference gets full marks, the blank release 0, and every catalog entry
loses points on the cells of its own solution cell only; each kind of hidden check (value,
gradient, memory, device, forbidden call, inputs unchanged) is shown catching an entry by
itself. Bad input (unknown assignment, no GPU for --device cuda, missing catalog) gets a clear
error, a miss exits 1, and the GPU node's script runs without nbgrader or Jupyter.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from autograder import selfcheck  # noqa: E402
from autograder.notebook import read_notebook, submission_source  # noqa: E402
from autograder.suites import assignments, load_suite  # noqa: E402
import selfcheck_rows  # noqa: E402

ASSIGNMENTS = assignments()  # the folders of solutions/ with a suite
# (assignment, kind of check, catalog entry, pattern of the failed check's name or hint): each kind
# of hidden check catches an entry whose values are otherwise right, where the assignment has one.
KINDS = [
    ("hw-attention", "value", "gqa_missing_scale", r"^float32 Hq="),
    ("hw-attention", "gradient", "rope_in_place", r"^gradient w\.r\.t\. x$"),
    ("hw-attention", "memory", "swa_dense_masked", r"^memory O\(T\*w\) at T=6001"),
    ("hw-attention", "memory", "rope_dense_matrix", r"^no D x D matrix \(D = 4096\)$"),
    ("hw-attention", "device", "rope_cpu_tables", r"^inputs on another device"),
    ("hw-attention", "forbidden call", "gqa_uses_sdpa", r"uses forbidden calls: .*scaled_dot_product_attention"),
    ("hw-attention", "inputs unchanged", "rope_in_place", r"^inputs unchanged$"),
    ("hw-conv", "value", "conv_stride_ignored", r"^conv2d_backward values"),
    ("hw-conv", "gradient", "wiring_missing_none", r"^conv2d_layer gradients"),
    ("hw-conv", "device", "conv_cpu_tensors", r"^conv2d_backward keeps outputs on the inputs' device"),
    ("hw-conv", "forbidden call", "conv_uses_torch_grad", r"uses forbidden calls: conv2d_input, conv2d_weight"),
    ("hw-conv", "inputs unchanged", "conv_modifies_weight", r"argument 2 was modified in place"),
]  # hw-conv has no memory checks; its value checks require unchanged inputs
# Which graded cells each hw-conv solution cell feeds (written out by hand, the reference for
# selfcheck.affected_cells, which derives them from the code): the CNN runs through all three.
HW_CONV_CELLS_USING = {
    "conv2d_backward": {"test_conv2d_backward_visible", "test_conv2d_backward_hidden", "test_wiring",
                        "test_train_cnn"},
    "maxpool2d_backward": {"test_maxpool2d_backward_visible", "test_maxpool2d_backward_hidden", "test_wiring",
                           "test_train_cnn"},
    "wiring": {"test_wiring", "test_train_cnn"},
}
_ROWS: dict[str, list] = {}  # per worker process: each assignment's self-check runs once
_SHARED: list[Path] = []     # the run's common temp folder (tests/selfcheck_rows.py: graded once per run)


@pytest.fixture(scope="module", autouse=True)
def _shared_selfcheck(tmp_path_factory):
    _SHARED[:] = [selfcheck_rows.shared_folder(tmp_path_factory)]


def rows_of(assignment: str) -> dict[str, selfcheck.Row]:
    """The full self-check of ``assignment`` on the CPU, two submissions at a time (shared with
    tests/test_report.py through tests/selfcheck_rows.py, so it runs once per test run)."""
    if assignment not in _ROWS:
        _ROWS[assignment] = selfcheck_rows.rows(assignment, _SHARED[0])
    return {row.entry: row for row in _ROWS[assignment]}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_selfcheck_passes_on_cpu_for_every_row(assignment):
    rows = rows_of(assignment)
    entries = {e.name for e in selfcheck.load_catalog(assignment)}
    assert set(rows) == entries | set(selfcheck.FIXED_ROWS)
    misses = {name: row.problem for name, row in rows.items() if not row.ok}
    assert not misses, misses
    reference, blank = rows["reference"], rows["blank release"]
    assert reference.score == reference.max_score > 0 and not reference.failed
    assert blank.score == 0 and blank.max_score == reference.max_score


@pytest.mark.parametrize("assignment,kind,entry,pattern", KINDS, ids=[f"{a}-{k}-{e}" for a, k, e, _ in KINDS])
def test_each_kind_of_check_catches_its_entry_in_the_sandbox(assignment, kind, entry, pattern):
    row = rows_of(assignment)[entry]
    matching = [(gid, name, hint) for gid, name, hint in row.failed
                if re.search(pattern, name) or re.search(pattern, hint or "")]
    assert matching, f"{entry}: no failed {kind} check; failed: {row.failed}"


def test_the_dense_sliding_window_loses_only_its_memory_check():
    """The O(T^2) implementation computes the right values: only the memory check may catch it."""
    row = rows_of("hw-attention")["swa_dense_masked"]
    assert [(gid, name) for gid, name, _ in row.failed] == [("swa_hidden_memory", "memory O(T*w) at T=6001, w=64")]
    assert "peak memory grew by" in row.failed[0][2]


# hw-conv's finer hidden checks (each gradient alone, window maxima at a known place, one layer's wiring
# at a time), in the cell of the function each entry breaks: which of them the entry fails, so that
# entries are told from a blank answer and from each other.
FINE_CHECKS = r"alone \(|each maximum at|windows of one element|, with (conv|maxpool)2d_backward's values$"
FINE_CELL = {"conv": "test_conv2d_backward_hidden", "pool": "test_maxpool2d_backward_hidden", "wiring": "test_wiring"}
FINE_FAILED = {
    "conv_modifies_weight": set(),  # right values, but every full value check sees the weight modified
    "conv_bias_wrong_axes": {"grad_bias alone"},
    "conv_unflipped_kernel": {"grad_x alone"},
    "pool_averaged": {"top-left corner", "bottom-right corner"},  # only windows of one element average right
    "pool_first_element": {"bottom-right corner"},
    "pool_row_col_swapped": set(),  # the argmax transposed: right wherever it sits on the window's diagonal
    "wiring_missing_none": {"conv2d_layer gradients: stride 1, padding 2, with maxpool2d_backward's values"},
}


@pytest.mark.parametrize("entry", sorted(FINE_FAILED))
def test_finer_hw_conv_checks_tell_each_mistake_apart(entry):
    rows = rows_of("hw-conv")
    cell = FINE_CELL[entry.split("_")[0]]
    fine = {r.name for r in rows["reference"].cells[cell].results if re.search(FINE_CHECKS, r.name)}
    assert len(fine) == {"conv": 3, "pool": 3, "wiring": 2}[entry.split("_")[0]]
    assert fine <= {name for gid, name, _ in rows["blank release"].failed if gid == cell}  # a blank fails them all
    failed = {name for gid, name, _ in rows[entry].failed if gid == cell and name in fine}
    assert {f for f in failed if not any(part in f for part in FINE_FAILED[entry])} == set(), failed
    assert all(any(part in f for f in failed) for part in FINE_FAILED[entry]), failed
    if entry == "conv_modifies_weight":
        assert any("was modified in place" in (hint or "") for _, _, hint in rows[entry].failed)


def test_affected_cells_follow_the_calls_of_the_reference():
    suite = load_suite("hw-conv")
    reference = read_notebook(ROOT / "solutions" / "hw-conv" / suite.NOTEBOOK)
    code = submission_source(reference)
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in reference.cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    for grade_id, expected in HW_CONV_CELLS_USING.items():
        assert selfcheck.affected_cells(suite, code, selfcheck.defined_names(cells[grade_id].source)) == expected


def test_catalogs_cover_every_solution_cell():
    for assignment in ASSIGNMENTS:
        suite = load_suite(assignment)
        solutions = {c.metadata["nbgrader"]["grade_id"] for c in read_notebook(
            ROOT / "solutions" / assignment / suite.NOTEBOOK).cells if c.metadata.get("nbgrader", {}).get("solution")}
        entries = selfcheck.load_catalog(assignment)
        assert len(entries) >= 15
        assert {e.breaks for e in entries} == solutions
        assert all(e.doc for e in entries), "every entry says what is wrong in its docstring"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "selfcheck", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


def test_bad_input_gets_a_clear_error(tmp_path, monkeypatch):
    unknown = _cli("hw-nope", "--device", "cpu")
    assert unknown.returncode == 2
    assert "no grading suite for assignment 'hw-nope'" in unknown.stderr and "hw-attention, hw-conv" in unknown.stderr
    no_gpu = _cli("hw-conv", "--device", "cuda", env={"CUDA_VISIBLE_DEVICES": ""})
    assert no_gpu.returncode == 2 and "--device cuda, but torch" in no_gpu.stderr and "sees no CUDA device" in no_gpu.stderr
    no_entry = _cli("hw-conv", "--device", "cpu", "--only", "no_such_entry")
    assert no_entry.returncode == 2 and "no catalog entries ['no_such_entry']" in no_entry.stderr
    monkeypatch.setattr(selfcheck, "CATALOG_ROOT", tmp_path)
    with pytest.raises(selfcheck.SelfcheckError, match=r"no catalog of faulty implementations for 'hw-conv'"):
        selfcheck.run_selfcheck("hw-conv", "cpu")
    (tmp_path / "hw_conv").mkdir()
    (tmp_path / "hw_conv" / "bad.py").write_text('"""No BREAKS."""\n')
    with pytest.raises(selfcheck.SelfcheckError, match="must assign BREAKS"):
        selfcheck.run_selfcheck("hw-conv", "cpu")


def test_an_entry_that_is_not_caught_is_a_miss_and_exit_status_1(tmp_path, monkeypatch, capsys):
    """A "faulty" entry that is really the reference's own code cannot lose points: a miss."""
    suite = load_suite("hw-attention")
    reference = read_notebook(ROOT / "solutions" / "hw-attention" / suite.NOTEBOOK)
    cell = next(c for c in reference.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "gqa_attention")
    (tmp_path / "hw_attention").mkdir()
    (tmp_path / "hw_attention" / "not_a_bug.py").write_text(f'"""Correct."""\nBREAKS = "gqa_attention"\n\n{cell.source}')
    monkeypatch.setattr(selfcheck, "CATALOG_ROOT", tmp_path)
    args = argparse.Namespace(assignment="hw-attention", device="cpu", workers=1, only=["not_a_bug"], markdown=None)
    assert selfcheck.run(args) == 1
    out = capsys.readouterr().out
    assert re.search(r"not_a_bug .* MISS: not caught: no points lost on gqa_hidden, gqa_visible", out), out


def test_the_gpu_node_script_runs_without_jupyter(tmp_path):
    """tools/device_selfcheck.sh with nbgrader, nbformat and Jupyter unimportable (as on the GPU node),
    on the CPU here: every assignment's reference row, tables written as markdown."""
    blocked = tmp_path / "blocked"
    for module in ("nbgrader", "nbformat", "nbconvert", "nbclient", "jupyter_client", "jupyter_core", "traitlets",
                   "tqdm"):
        (blocked / module).mkdir(parents=True)
        (blocked / module / "__init__.py").write_text(f"raise ImportError('{module} is not on the grading node')\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(blocked), "OUT": str(out), "WORKERS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    assert shutil.which("python3", path=env["PATH"]) == str(Path(sys.executable).parent / "python3")
    result = subprocess.run([str(ROOT / "tools" / "device_selfcheck.sh"), "--device", "cpu", "--only", "reference"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name, total in (("hw_attention", 100), ("hw_conv", 40)):
        table = (out / f"selfcheck_{name}.md").read_text()
        assert f"| reference | full marks | {total}/{total} | - |" in table and "| ok |" in table, table
        assert "Node: " in table and "torch " in table
    assert "exit status 0" in result.stdout
