"""``python -m autograder similarity``: disguised copies are flagged; independently written correct
implementations of every graded function (tests/fixtures/similarity/, each checked against the
instructor's solution first) are not; the release notebook and lec4 never count."""
from __future__ import annotations

import functools
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from autograder import records, similarity
from autograder.suites import load_suite
from similarity_helpers import FUNCTIONS, ROOT, disguise, impl, submission

LETTERS = "abcd"


@functools.lru_cache(maxsize=None)
def _reference(assignment: str) -> dict:
    """The instructor's solution functions (the solution notebook's code, run)."""
    from autograder.notebook import submission_source

    namespace: dict = {}
    exec(compile(submission_source(ROOT / "solutions" / assignment / load_suite(assignment).NOTEBOOK),
                 "reference", "exec"), namespace)
    return namespace


def _load(function: str, letter: str):
    namespace = {"torch": torch, "math": math, "F": F}
    exec(compile(impl(function, letter), f"{function}/impl_{letter}.py", "exec"), namespace)
    return namespace[function]


CASES = {
    "apply_rope": lambda g: [((torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64),
                               torch.arange(5, 12)), {}),
                             ((torch.randn(1, 2, 5, 16, generator=g), torch.tensor([0, 3, 9, 2000, 6000])),
                              {"base": 500000.0})],
    "gqa_attention": lambda g: [((torch.randn(2, 4, 5, 8, generator=g, dtype=torch.float64),
                                  torch.randn(2, 2, 7, 8, generator=g, dtype=torch.float64),
                                  torch.randn(2, 2, 7, 8, generator=g, dtype=torch.float64)), {"causal": c})
                                for c in (True, False)],
    "sliding_window_attention": lambda g: [((torch.randn(2, 6, 11, 4, generator=g, dtype=torch.float64),
                                             torch.randn(2, 3, 11, 4, generator=g, dtype=torch.float64),
                                             torch.randn(2, 3, 11, 4, generator=g, dtype=torch.float64)), {"w": w})
                                           for w in (2, 4, 6, 30)],
    "conv2d_backward": lambda g: [((torch.randn(2, 4, *hw, generator=g, dtype=torch.float64),
                                    torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64),
                                    torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)),
                                   {"stride": s, "padding": p})
                                  for hw, s, p in (((5, 6), 1, 0), ((4, 4), 2, 1), ((3, 3), 2, 0))],
    "maxpool2d_backward": lambda g: [((torch.randn(2, 3, *out, generator=g, dtype=torch.float64),
                                       torch.randn(2, 3, 8, 9, generator=g, dtype=torch.float64), k, s), {})
                                     for out, k, s in (((4, 4), 2, 2), ((6, 7), 3, 1), ((3, 4), 3, 2))],
}


@pytest.mark.parametrize("assignment,function,letter", [(a, f, x) for a, fs in FUNCTIONS.items() for f in fs
                                                         for x in LETTERS])
def test_each_fixture_implementation_is_correct(assignment, function, letter):
    reference = _reference(assignment)[function]
    mine = _load(function, letter)
    for args, kwargs in CASES[function](torch.Generator().manual_seed(4)):
        want, got = reference(*args, **kwargs), mine(*args, **kwargs)
        want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
        for w, o in zip(want, got, strict=True):
            assert o.shape == w.shape and o.dtype == w.dtype
            # the reference's softmax runs in float32 even for float64 inputs; float32 angles at position
            # 6000 are exact to ~5e-4 rad. A wrong implementation is off by far more.
            tol = {"rtol": 1e-5, "atol": 1e-6} if w.dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}
            torch.testing.assert_close(o, w, **tol)


def test_fixture_implementations_are_genuinely_different():
    """No two fixtures of a function share a line of code (beyond the def line)."""
    for function in itertools.chain(*FUNCTIONS.values()):
        lines = {x: {line.strip() for line in impl(function, x).splitlines()[1:] if len(line.strip()) > 12}
                 for x in LETTERS}
        for a, b in itertools.combinations(LETTERS, 2):
            assert not (lines[a] & lines[b]), (function, a, b, lines[a] & lines[b])


@pytest.fixture(scope="module", params=list(FUNCTIONS))
def analysed(request):
    sources = _sources(request.param)
    return request.param, sources, similarity.analyse(request.param, sources)


def _sources(assignment: str) -> dict[str, str]:
    """{student: graded source}: four independent students, the reference, disguised copies, a blank."""
    functions = FUNCTIONS[assignment]
    sources = {f"indep_{x}": submission(assignment, {f: impl(f, x) for f in functions}) for x in LETTERS}
    sources["reference"] = submission(assignment, {})
    # a plagiarist copies indep_b (which has helpers) and disguises it; another copies the reference
    sources["copy_of_b"] = submission(assignment, {f: disguise(impl(f, "b"), {f}) for f in functions})
    reference_cells = _solution_cells(assignment)
    sources["copy_of_reference"] = submission(assignment, {f: disguise(reference_cells[f], {f}) for f in functions})
    # a student who copied only one function (the first, from indep_d) and left the rest blank
    sources["one_copied"] = submission(assignment, {f: (disguise(impl(f, "d"), {f}) if f == functions[0]
                                                        else _starter(assignment)[f]) for f in functions})
    sources["blank"] = submission(assignment, {f: _starter(assignment)[f] for f in functions})
    return sources


def _cells(path: Path) -> dict[str, str]:
    from autograder.notebook import read_notebook

    return {f: c.source for c in read_notebook(path).cells
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")
            for f in itertools.chain(*FUNCTIONS.values()) if f"def {f}(" in c.source}


def _solution_cells(assignment):
    return _cells(ROOT / "solutions" / assignment / load_suite(assignment).NOTEBOOK)


def _starter(assignment):
    return _cells(ROOT / "assignments" / assignment / load_suite(assignment).NOTEBOOK)


def test_disguised_copies_are_flagged_and_independent_work_is_not(analysed):
    assignment, sources, result = analysed
    flagged = {frozenset((p["a"], p["b"])): p for p in result["flagged"]}
    assert frozenset(("copy_of_b", "indep_b")) in flagged
    assert frozenset(("copy_of_reference", "reference")) in flagged
    assert frozenset(("one_copied", "indep_d")) in flagged
    expected = {frozenset(("copy_of_b", "indep_b")), frozenset(("copy_of_reference", "reference")),
                frozenset(("one_copied", "indep_d"))}
    assert set(flagged) == expected, [(p["a"], p["b"], p["score"]) for p in result["flagged"]]
    assert flagged[frozenset(("copy_of_b", "indep_b"))]["score"] >= 0.9


def test_boilerplate_never_counts(analysed):
    """Blank (starter) submissions share only the release notebook's code: score 0 with everyone."""
    assignment, sources, result = analysed
    assert not [p for p in result["closest"] if "blank" in (p["a"], p["b"])]


def test_cli_json_and_html(tmp_path):
    assignment = "hw-attention"  # the command is the same for every assignment: run it once
    sources = _sources(assignment)
    suite = load_suite(assignment)
    # real records (full schema) holding each source; the verdict does not matter here
    from autograder.checks import CellGrade

    cells = {"c": CellGrade("c", "f", 1.0, 1.0, [])}
    for student, source in sources.items():
        rec = records.make_record(assignment=assignment, student=student, suite=suite, source=source, cells=cells,
                                  device="cpu", seconds=0.1, submission_sha256=None)
        records.write_record(records.record_path(tmp_path, assignment, student), rec)
    run = lambda *a: subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(tmp_path),
                                     "similarity", assignment, *a], cwd=ROOT, capture_output=True, text=True,
                                    timeout=600)
    done = run("--json")
    assert done.returncode == 0, done.stderr
    pairs = {frozenset((p["a"], p["b"])) for p in json.loads(done.stdout)["flagged"]}
    assert frozenset(("copy_of_b", "indep_b")) in pairs and len(pairs) == 3
    done = run("--out", str(tmp_path / "html"))
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "html" / "similarity.html").read_text()
    assert page.count('class="pair"') == 3 and "copy_of_b" in page and "indep_b" in page
    assert "http://" not in page and "https://" not in page
