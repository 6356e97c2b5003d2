"""The trusted grading protocol: timeouts, fresh inputs per call, the static forbidden-call check."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
from autograder.checks import Call, forbidden_uses  # noqa: E402
from autograder.engine.supervisor import run_calls  # noqa: E402

HANGS = "def f(x):\n    while True:\n        pass\n\ndef g(x):\n    return x + 1\n"


def test_a_hung_function_times_out_once_and_its_other_calls_are_not_waited_for():
    calls = [Call("f", [torch.ones(2)], timeout=2), Call("g", [torch.ones(2)]),
             Call("f", [torch.ones(2)], timeout=30), Call("g", [torch.ones(2)])]
    start = time.monotonic()
    outcomes = run_calls(HANGS, calls)
    assert time.monotonic() - start < 25, "the second call of the hung function was waited for"
    assert [o.ok for o in outcomes] == [False, True, False, True]
    assert "timed out" in outcomes[0].error and "earlier call of f timed out" in outcomes[2].error
    assert torch.equal(outcomes[1].output["tensor"], torch.full((2,), 2.0))


def test_each_call_gets_fresh_inputs_even_when_the_function_writes_into_them():
    shared = torch.zeros(3)
    source = "def bump(x):\n    x += 1\n    return x.clone()\n"
    outcomes = run_calls(source, [Call("bump", [shared]), Call("bump", [shared])])
    assert [o.output["tensor"].tolist() for o in outcomes] == [[1.0, 1.0, 1.0]] * 2
    assert outcomes[0].args_after["items"][0]["tensor"].tolist() == [1.0, 1.0, 1.0]  # mutation is visible
    assert shared.tolist() == [0.0, 0.0, 0.0]


def test_forbidden_names_match_whole_identifiers_in_code_and_strings():
    source = '''
import torch.nn.functional as F

def ok(x):
    """May mention conv2d in prose."""
    if x.dim() != 4:
        raise ValueError("conv2d_backward: x must be 4-D")
    return helper(x)

def helper(x):
    return x * 2

def bad(x):
    return F.conv2d(x, x)

def sneaky(x):
    return getattr(F, "conv2d")(x, x)

def indirect(x):
    return bad(x)
'''
    names = {"conv2d", "getattr"}
    assert forbidden_uses(source, "ok", names) == []
    assert forbidden_uses(source, "bad", names) == ["conv2d"]
    assert forbidden_uses(source, "sneaky", names) == ["conv2d", "getattr"]
    assert forbidden_uses(source, "indirect", names) == ["conv2d"]


def test_a_missing_solution_cell_is_an_empty_answer_not_the_instructors(tmp_path):
    import nbformat

    from autograder.notebook import submission_source

    source = ROOT / "solutions" / "hw-attention" / "hw-attention.ipynb"
    nb = nbformat.read(source, 4)
    solution_cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solution_cells, "the source notebook has no solution cells"
    for cell in solution_cells:  # the student deleted the metadata (or the cells)
        del cell.metadata["nbgrader"]
    submitted = tmp_path / "hw-attention.ipynb"
    nbformat.write(nb, submitted)
    code = submission_source(source, submitted)
    assert "BEGIN SOLUTION" not in code and "def apply_rope" not in code
    assert "BEGIN SOLUTION" in submission_source(source)  # the reference layout does use them


def test_workers_keep_the_gpus_they_inherit(monkeypatch):
    """A Slurm task bound to GPUs 2 and 3 grades on them, not on 0 and 1."""
    from autograder.cli import visible_gpu_ids

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpu_ids(2) == ["2", "3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpu_ids(2) == ["0", "1"]
    assert visible_gpu_ids(0) == []
