"""What every assignment must satisfy, whatever it teaches: one test per rule, parametrized over
:func:`autograder.suites.assignments` (the folders of ``solutions/`` with a hidden suite), so a
new assignment is held to them without a line here.

- its committed release is exactly what ``nbgrader generate_assignment`` makes of its source;
- the release holds no solution code, no hidden test and none of the hidden suite's own names,
  and every function the student writes raises ``NotImplementedError`` until written;
- ``nbgrader validate`` passes the instructor's notebook and fails the blank release clearly.

Grading is proven elsewhere, in the production sandbox: the reference earns full marks and the
blank release 0 on every graded cell (``test_autograder_selfcheck.py``'s rows ``reference`` and
``blank release``), each catalogued mistake loses its points. What is particular to one assignment
(its spec, its references, its visible tests) is in ``test_hw_<name>.py``.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.notebook import HIDDEN_REGION, SOLUTION_REGION
from autograder.suites import assignments, load_suite

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = assignments()
BIN = Path(sys.executable).parent
# nbgrader runs `alembic` from PATH; the notebooks' torch on one thread (xdist keeps both cores busy)
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}


def notebooks(assignment: str) -> tuple[Path, Path]:
    """(instructor notebook in solutions/, committed release notebook in assignments/)."""
    name = load_suite(assignment).NOTEBOOK
    return ROOT / "solutions" / assignment / name, ROOT / "assignments" / assignment / name


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _code_lines(text: str) -> set[str]:
    """The lines of ``text`` worth matching: code, not comments or docstring quotes, not trivially short."""
    return {line.strip() for line in text.splitlines()
            if len(line.strip()) > 12 and not line.strip().startswith(("#", '"""'))}


def suite_own_names(assignment: str) -> set[str]:
    """The names the hidden suite defines itself (not those it imports from the public spec)."""
    tree = ast.parse(Path(load_suite(assignment).__file__).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if len(n) > 6}  # short names (``TOL``) could be any word of the text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_what_nbgrader_generates(assignment, tmp_path):
    source, release = notebooks(assignment)
    course = tmp_path / "course"
    shutil.copytree(source.parent, course / "solutions" / assignment)
    r = subprocess.run([str(BIN / "nbgrader"), "generate_assignment", assignment, "--force",
                        f"--CourseDirectory.root={course}"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    generated = course / "assignments" / assignment
    assert sorted(p.name for p in generated.iterdir()) == sorted(p.name for p in release.parent.iterdir()), \
        f"assignments/{assignment} holds other files than nbgrader generates: regenerate it"
    for path in generated.iterdir():
        committed = release.parent / path.name
        if path.suffix == ".ipynb":
            made, kept = nbformat.read(path, as_version=4), nbformat.read(committed, as_version=4)
            assert made.metadata == kept.metadata, path.name
            cells = lambda nb: [(c.cell_type, c.source, c.metadata, c.get("outputs")) for c in nb.cells]  # noqa: E731
            assert cells(made) == cells(kept), f"{path.name} differs from what nbgrader generates: regenerate it"
        else:
            assert path.read_bytes() == committed.read_bytes(), f"{path.name} differs: regenerate it"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_no_solution_no_hidden_test_and_no_name_of_the_suite(assignment):
    source_path, release_path = notebooks(assignment)
    source, release = nbformat.read(source_path, as_version=4), nbformat.read(release_path, as_version=4)
    text = release_path.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, marker
    # a solution line may also be given code elsewhere in the notebook (setup shares lines): those may stay
    given = _code_lines("\n".join(HIDDEN_REGION.sub("", SOLUTION_REGION.sub("", c.source)) for c in source.cells))
    secret = set().union(*(_code_lines(m.group(0)) for c in source.cells
                           for region in (SOLUTION_REGION, HIDDEN_REGION) for m in region.finditer(c.source)))
    release_code = _code_lines("\n".join(c.source for c in release.cells))
    leaked = sorted((secret - given) & release_code)
    assert not leaked, f"solution or hidden-test lines in the release: {leaked[:5]}"
    named = sorted(n for n in suite_own_names(assignment) if re.search(rf"\b{re.escape(n)}\b", text))
    assert not named, f"names of the hidden suite in the release: {named}"
    solution_cells = [c for c in release.cells if c.cell_type == "code" and _meta(c).get("solution")]
    assert solution_cells, "the release has no cell for the student to write"
    for cell in solution_cells:
        assert "raise NotImplementedError()" in cell.source, _meta(cell).get("grade_id")


def _validate(path: Path, tmp_path: Path) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    r = subprocess.run([str(BIN / "nbgrader"), "validate", str(copy)], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=600)
    return r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate_passes_the_solution_and_fails_the_blank_release(assignment, tmp_path):
    source, release = notebooks(assignment)
    assert "Success! Your notebook passes all the tests." in _validate(source, tmp_path / "s")
    blank = _validate(release, tmp_path / "r")
    to_write = sum(c.cell_type == "code" and bool(_meta(c).get("solution"))
                   for c in nbformat.read(release, as_version=4).cells)
    failed = re.search(r"VALIDATION FAILED ON (\d+) CELL\(S\)", blank)
    # every cell the student writes fails a visible test of its own, saying NotImplementedError
    assert failed and int(failed.group(1)) >= to_write, blank[-2000:]
    assert blank.count("NotImplementedError:") >= to_write, blank[-2000:]
