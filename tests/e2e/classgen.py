"""A simulated class for any assignment: submissions built by editing the source notebook.

``make_class(source_nb, release_nb, suite, out)`` writes ``out/STUDENT/NOTEBOOK`` for each
student and returns ``{student: expected_score}``, the expectation read from the suite's
GRADE_CELLS (points per function), never from running anything:

- correct: every solution cell as in the source;  partial_<fn>: one function left as starter;
- blank: the release notebook;  broken: syntax error, missing / renamed / corrupt / foreign
  notebook, gigantic output, infinite loop, kernel crash;
- hostile: one per integrity attack of the issue (monkeypatching, sys.modules, builtins,
  suppressed exceptions, edited / deleted tests and metadata, killed kernel, early exit,
  reading hidden files, forging outcome files, dynamic access to forbidden calls).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

from autograder.engine.callgraph import CallGraph
from autograder.notebook import submission_source


def _meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _solution_ids(nb):
    return [_meta(c)["grade_id"] for c in nb.cells if _meta(c).get("solution")]


def graded_dependencies(source_nb, functions) -> dict[str, set[str]]:
    """``{graded function: the other graded functions it reaches}`` in the reference solution's code
    (the engine's call graph, the rule by which the supervisor skips the callers of a hung function):
    blanking one of the latter costs the former's cells too (the expectation of a partial
    submission). hw-conv's given cnn_logits reaches the student's conv2d_backward and
    maxpool2d_backward; hw-attention's functions reach none of each other."""
    graph = CallGraph(submission_source(source_nb))
    return {fn: reached for fn in functions if (reached := graph.reached(fn, set(functions) - {fn}))}


def make_class(source_nb: Path, release_nb: Path, suite, out: Path) -> dict[str, float]:
    source, release = nbformat.read(source_nb, 4), nbformat.read(release_nb, 4)
    solution = {_meta(c)["grade_id"]: c.source for c in source.cells if _meta(c).get("solution")}
    starter = {_meta(c)["grade_id"]: c.source for c in release.cells if _meta(c).get("solution")}
    functions = list(dict.fromkeys(fn for fn, _ in suite.GRADE_CELLS.values()))
    points = {fn: sum(p for f, p in suite.GRADE_CELLS.values() if f == fn) for fn in functions}
    total = sum(points.values())
    # which solution cell defines which function (by `def name(` in the solution source);
    # functions given in locked cells (e.g. a model wired from the student's pieces) have none
    cell_of = {fn: g for fn in functions for g, src in solution.items() if f"def {fn}(" in src}
    depends = graded_dependencies(source_nb, functions)

    def lost(fn):
        return points[fn] + sum(points[g] for g in functions if fn in depends.get(g, ()))
    first = next(fn for fn in functions if fn in cell_of)

    def build(cells_from: dict[str, str], extra_after: dict[str, str] | None = None, edit=None):
        nb = copy.deepcopy(release)
        for cell in nb.cells:
            gid = _meta(cell).get("grade_id")
            if gid in cells_from:
                cell.source = cells_from[gid]
        for gid, code in (extra_after or {}).items():  # student-added cells (no nbgrader metadata)
            index = next(i for i, c in enumerate(nb.cells) if _meta(c).get("grade_id") == gid)
            nb.cells.insert(index + 1, new_code_cell(code))
        if edit:
            edit(nb)
        return nb

    correct, blank = dict(solution), dict(starter)
    first_cell = next(c for c in release.cells if _meta(c).get("solution"))
    after_first = _meta(first_cell)["grade_id"]
    students: dict[str, tuple[object, float]] = {}

    students["correct"] = (build(correct), total)
    for fn in cell_of:
        students[f"partial_{fn}"] = (build({**correct, cell_of[fn]: starter[cell_of[fn]]}), total - lost(fn))
    students["blank"] = (build(blank), 0)
    # broken
    students["syntax_error"] = (build({**correct, cell_of[first]: correct[cell_of[first]] + "\ndef broken(:\n"}),
                                total - lost(first))
    students["missing_notebook"] = (None, 0)
    students["renamed_notebook"] = ("rename", 0)
    students["corrupt_json"] = ("corrupt", 0)
    students["foreign_notebook"] = ("foreign", 0)
    students["gigantic_output"] = (build(correct, {after_first: "for _ in range(200000):\n    print('x' * 1000)"}), total)
    # the graded function hangs (each call costs its whole call timeout, the grading's --call-timeout)
    # and a cell of its own hangs the kernel (its cell timeout), both asleep, burning no core the other submissions need:
    # a spinning call is stopped the same way, proven in seconds by tests/test_autograder_sandbox.py
    # (test_call_timeout_and_recovery) and the protocol tests; a spinning cell is interrupted by the
    # kernel's cell timeout like a sleeping one (SIGINT: KeyboardInterrupt between bytecodes)
    loop = correct[cell_of[first]].replace(f"def {first}(", f"def {first}(*_a, **_k):\n    import time\n"
                                            f"    while True:\n        time.sleep(1)\n\n"
                                            f"def _unused_{first}(", 1)
    students["infinite_loop"] = (build({**correct, cell_of[first]: loop}, {after_first: "import time\nwhile True:\n    time.sleep(1)"}),
                                 total - lost(first))
    students["kernel_crash"] = (build(correct, {after_first: "import os\nos._exit(3)"}), total)
    # hostile: blank (or correct) code plus an attack
    patch = ("import torch, numpy\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
             "torch.testing.assert_close = lambda *a, **k: None\nnumpy.allclose = lambda *a, **k: True")
    students["hostile_monkeypatch"] = (build(blank, {after_first: patch}), 0)
    plant = ("import sys, types\nfor name in ['autograder', 'autograder.engine.grading', 'nbgrader', 'lec4.utils']:\n"
             "    m = types.ModuleType(name); m.grade = lambda *a, **k: {}; sys.modules[name] = m")
    students["hostile_sys_modules"] = (build(blank, {after_first: plant}), 0)
    builtins = ("import builtins\nclass Nope(Exception):\n    pass\nbuiltins.AssertionError = Nope\n"
                "builtins.NotImplementedError = Nope\nbuiltins.print = lambda *a, **k: None")
    students["hostile_builtins"] = (build(blank, {after_first: builtins}), 0)
    suppress = ("ip = get_ipython()\nip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
                "import sys\nsys.excepthook = lambda *a: None")
    students["hostile_suppress_errors"] = (build(blank, {after_first: suppress}), 0)

    def edit_tests(nb):
        for cell in nb.cells:
            if _meta(cell).get("grade"):
                cell.source = "pass"
    students["hostile_edit_tests"] = (build(blank, edit=edit_tests), 0)

    def edit_metadata(nb):
        for cell in nb.cells:
            meta = _meta(cell)
            if meta.get("grade"):
                meta["points"] = 1000
            if meta.get("solution"):
                meta.update(grade=True, points=500, solution=False, locked=True)
        nb.cells.append(new_code_cell("pass", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": "bonus", "points": 99, "schema_version": 3}}))
    students["hostile_edit_metadata"] = (build(correct, edit=edit_metadata), total)

    def delete_tests(nb):
        nb.cells = [c for c in nb.cells if not _meta(c).get("grade")]
    students["hostile_delete_tests"] = (build(correct, edit=delete_tests), total)
    students["hostile_kill_kernel"] = (build(blank, {after_first: "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"}), 0)
    students["hostile_exit_early"] = (build({**blank, cell_of[first]: blank[cell_of[first]] + "\nimport sys\nsys.exit(0)"}), 0)
    steal = ("\nimport glob, json\nfor path in glob.glob('/work/*/solutions/*/*.ipynb') + "
             "glob.glob('/tmp/**/solutions/*/*.ipynb', recursive=True):\n"
             "    for c in json.load(open(path))['cells']:\n        try:\n"
             "            exec(''.join(c['source']), globals())\n        except Exception:\n            pass\n")
    students["hostile_read_hidden"] = (build({**blank, cell_of[first]: blank[cell_of[first]] + steal}), 0)
    forge = ("\nimport os, glob, torch\nfor i in range(64):\n    torch.save({'ok': True, 'output': {'kind': 'tensor', "
             "'tensor': torch.zeros(1)}}, f'outcome-{i}.pt')\nfor db in glob.glob('/tmp/**/gradebook.db', recursive=True) + glob.glob('/work/*/gradebook.db'):\n"
             "    open(db, 'w').write('')\nos._exit(0)\n")
    students["hostile_forge_outcomes"] = (build({**blank, cell_of[first]: blank[cell_of[first]] + forge}), 0)
    forbidden = sorted((fn, names) for fn, names in getattr(suite, "FORBIDDEN", {}).items() if fn in cell_of)
    if forbidden:
        fn, names = forbidden[0]
        name = sorted(names)[0]
        sneaky = solution[cell_of[fn]] + (f"\n\n_real_{fn} = {fn}\n\ndef {fn}(*args, **kwargs):\n"
                                          f"    _ = getattr(__import__('torch'), '{name[:2]}' + '{name[2:]}')\n"
                                          f"    return _real_{fn}(*args, **kwargs)\n")
        students["hostile_dynamic_forbidden"] = (build({**correct, cell_of[fn]: sneaky}), total - lost(fn))

    out = Path(out)
    expected = {}
    name = Path(source_nb).name
    for student, (nb, score) in students.items():
        folder = out / student
        folder.mkdir(parents=True, exist_ok=True)
        expected[student] = float(score)
        if nb is None:
            (folder / "notes.txt").write_text("forgot the notebook")
        elif nb == "rename":
            nbformat.write(build(correct), folder / f"my_{name}")
        elif nb == "corrupt":
            (folder / name).write_text(json.dumps(nbformat.v4.writes(build(correct)))[:500])
        elif nb == "foreign":
            other = nbformat.v4.new_notebook(cells=[new_code_cell("x = 1", metadata={"nbgrader": {
                "grade": False, "solution": True, "locked": False, "grade_id": "other_hw_cell", "schema_version": 3}})])
            nbformat.write(other, folder / name)
        else:
            nbformat.write(nb, folder / name)
    return expected


UNGRADABLE = {"missing_notebook", "renamed_notebook", "corrupt_json", "foreign_notebook"}
