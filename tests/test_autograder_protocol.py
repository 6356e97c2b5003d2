"""The trusted grading protocol: timeouts, fresh inputs per call, the static forbidden-call check."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
from autograder.checks import Call, forbidden_uses  # noqa: E402
from autograder.engine.callgraph import CallGraph  # noqa: E402
from autograder.engine.marker import cell_marker  # noqa: E402
from autograder.engine.supervisor import LOAD_DEATHS, LocalLauncher, _not_run, run_calls  # noqa: E402

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


def test_a_process_that_ends_while_loading_costs_two_runs_not_one_per_call(monkeypatch, tmp_path):
    """A top-level os._exit (or a signal, a crash) ends every fresh process the same way: after
    LOAD_DEATHS runs every call fails at once (before: one run per call, each running the top-level
    code again). A process that ended once, not the second time, loses nothing."""
    started = []
    real_start = LocalLauncher.start
    monkeypatch.setattr(LocalLauncher, "start",
                        lambda self, job, out, devices: started.append(job) or real_start(self, job, out, devices))
    dies = "import os\nos._exit(3)\n\ndef f(x):\n    return x + 1\n"
    outcomes = run_calls(dies, [Call("f", [torch.ones(1)])] * 5)
    assert len(started) == LOAD_DEATHS == 2, len(started)
    assert [o.error for o in outcomes] == ["the process ended (exit status 3) while the submission's top-level "
                                           "code ran, in 2 fresh processes"] * 5
    seen = tmp_path / "seen"
    once = (f"import os\nif not os.path.exists({str(seen)!r}):\n    open({str(seen)!r}, 'w').close()\n"
            f"    os._exit(3)\n\ndef f(x):\n    return x + 1\n")
    started.clear()
    outcomes = run_calls(once, [Call("f", [torch.ones(1)])] * 3)
    assert len(started) == 2 and all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert torch.equal(outcomes[2].output["tensor"], torch.full((1,), 2.0))


# f hangs; g reaches it through a helper in another cell, h does not (it only mentions an "f" in a string).
HANGS_WITH_CALLERS = (f"{cell_marker('f')}\ndef f(x):\n    while True:\n        pass\n\n"
                      f"{cell_marker('g')}\ndef g(x):\n    return helper(x) + 1\n\ndef helper(x):\n    return f(x)\n\n"
                      f"{cell_marker('h')}\ndef h(x):\n    return x * 2 if 'f' else x\n\n"
                      f"{cell_marker('broken')}\ndef broken(:\n")


def test_the_callers_of_a_hung_function_are_not_run_either():
    """One timeout for the hang, not one more per call that runs into it: g's calls fail without
    running (g calls f), h's runs. (Before this rule: about 2 + 30 + 30 s.)"""
    calls = [Call("f", [torch.ones(2)], timeout=2), Call("g", [torch.ones(2)], timeout=30),
             Call("h", [torch.ones(2)], timeout=30), Call("g", [torch.ones(2)], timeout=30)]
    start = time.monotonic()
    outcomes = run_calls(HANGS_WITH_CALLERS, calls)
    elapsed = time.monotonic() - start
    assert [o.ok for o in outcomes] == [False, False, True, False], [o.error for o in outcomes]
    assert outcomes[0].error == "timed out (limit 2 s)"
    assert [o.error for o in outcomes[1::2]] == ["not run: g calls f, whose earlier call timed out"] * 2
    assert torch.equal(outcomes[2].output["tensor"], torch.full((2,), 2.0))
    assert 2 <= elapsed < 25, f"{elapsed:.1f} s: a call of g was run into the hang again"


def test_the_rule_of_the_calls_after_a_stop():
    stopped = {"f": "timed out"}
    rule = lambda function, source, stopped=stopped: _not_run(Call(function, []), stopped, source)  # noqa: E731
    assert rule("f", HANGS_WITH_CALLERS).error == "not run: an earlier call of f timed out"  # the same function
    assert rule("g", HANGS_WITH_CALLERS).error == "not run: g calls f, whose earlier call timed out"
    assert rule("h", HANGS_WITH_CALLERS) is None and rule("unknown", HANGS_WITH_CALLERS) is None
    # a source without cells that does not parse: the rule per function only
    assert rule("g", "def g(x):\n    return f(x)\n\ndef broken(:\n") is None
    assert rule("g", "def g(x):\n    return f(x)\n").error.startswith("not run: g calls f")
    # memory: the calls of the same function only (the runner runs the callers in the same process)
    memory = {"f": "ran out of memory"}
    assert rule("f", HANGS_WITH_CALLERS, memory).error == "not run: an earlier call of f ran out of memory"
    assert rule("g", HANGS_WITH_CALLERS, memory) is None
    # the scratch limit, and of several stopped functions the first one reached is named
    both = {"helper": "went over the scratch-space limit", "f": "timed out"}
    assert rule("g", HANGS_WITH_CALLERS, both).error == (
        "not run: g calls helper, whose earlier call went over the scratch-space limit")


def test_the_call_graph_follows_names_attributes_and_methods_transitively():
    source = """
import torch

def hangs(x):
    while True:
        pass

def helper(x):
    return hangs(x)

def direct(x):
    return hangs(x)

def indirect(x):
    return helper(x) * 2

class Fn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        return helper(grad)

def layer(x):
    return Fn.apply(x)          # the class stands for its methods

class Model:
    def step(self, x):
        return self.inner(x)    # a method, reached as an attribute

    def inner(self, x):
        return direct(x)

def passes_it(x):
    return list(map(hangs, [x]))   # a mention is enough

def innocent(x, hangs_too=None):
    y = torch.ones(3).sum()     # torch's attributes name nothing of the source
    return "hangs" + str(x + y)  # a string is no mention
"""
    graph = CallGraph(source)
    reaching = {name for name in graph.mentions if graph.reaches(name, {"hangs"})}
    assert reaching == {"hangs", "helper", "direct", "indirect", "Fn", "backward", "layer", "Model", "step",
                        "inner", "passes_it"}
    assert graph.reached("Model", {"hangs", "helper", "direct", "innocent"}) == {"hangs", "direct"}
    assert graph.reached("unknown", {"hangs"}) == set() and graph.reached("hangs", {"hangs"}) == {"hangs"}
    with pytest.raises(SyntaxError):
        CallGraph("def broken(:\n")
    assert CallGraph("def broken(:\n", "def g():\n    f()\n", skip_unparsable=True).reached("g", {"f"}) == {"f"}


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
