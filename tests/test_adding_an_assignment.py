"""The README's "Adding an assignment" guide, followed to the letter in a copy of the repository.

The guide's steps are its code blocks, in order: a ``python`` block whose first line is
``# file: PATH`` is a file to write at PATH; a ``bash`` block is commands to run (with the
environment's ``python``). Nothing else is used: if the guide leaves a step out, the new
assignment cannot be generated, self-checked or graded, and this test fails. Then, as a TA
would, it grades two submissions of the new assignment with ``python -m autograder autograde``
(the production sandbox): the instructor's solution (full marks) and a faulty one (loses the
points of the check it breaks, and only those).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HEADING = "## Adding an assignment"
pytestmark = pytest.mark.slow


def guide_steps(readme: str) -> list[tuple[str, str]]:
    """The guide's code blocks in order: ("file", "PATH\\nCONTENT") or ("bash", COMMANDS)."""
    assert HEADING in readme, f"README.md has no section {HEADING!r}"
    section = readme.split(HEADING, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    steps = []
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M):
        first, _, rest = body.partition("\n")
        if language == "python" and first.startswith("# file: "):
            steps.append(("file", f"{first[len('# file: '):].strip()}\n{rest}"))
        elif language == "bash":
            steps.append(("bash", body))
    return steps


def copy_of_repo(dest: Path) -> Path:
    """The tracked files the grader needs (package, library, notebooks' config), in ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "autograder", "src", "nbgrader_config.py"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return dest


def environment(repo: Path) -> dict[str, str]:
    """The copy's packages first on the path (they shadow the installed editable ones), the
    environment's own ``python`` and tools on PATH, SQLite gradebook in the copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(repo), str(repo / "src")])
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["AUTOGRADER_DEVICE"] = "cpu"
    return env


def run(argv, repo: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=repo, env=environment(repo), capture_output=True, text=True,
                          timeout=1200, **kwargs)


def test_guide_steps_are_found():
    steps = guide_steps(README.read_text())
    kinds = [kind for kind, _ in steps]
    assert kinds.count("file") >= 3 and "bash" in kinds, f"the guide's steps: {kinds}"
    with pytest.raises(AssertionError, match="no section"):
        guide_steps("# README\n")


def test_a_new_assignment_from_the_guide_alone(tmp_path):
    repo = copy_of_repo(tmp_path / "repo")
    written = []
    for kind, body in guide_steps(README.read_text()):
        if kind == "file":
            path, _, content = body.partition("\n")
            target = repo / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            written.append(path)
        else:
            done = run(["bash", "-euo", "pipefail", "-c", body], repo)
            assert done.returncode == 0, f"guide step failed:\n{body}\n--- stdout\n{done.stdout[-3000:]}\n" \
                                         f"--- stderr\n{done.stderr[-3000:]}"
    spec = json.loads(run([sys.executable, "-c", "import json, autograder.suites as s; m = s.load_suite('hw-mini');"
                           " print(json.dumps({'notebook': m.NOTEBOOK, 'cells': m.GRADE_CELLS}))"], repo).stdout)
    notebook = repo / "solutions" / "hw-mini" / spec["notebook"]
    assert notebook.exists() and (repo / "assignments" / "hw-mini" / spec["notebook"]).exists(), written

    # Two submissions, graded as a TA grades a class: the solution, and a softmax without the max shift.
    for student, replace in [("correct", None), ("overflow", ("x - x.amax(dim=dim, keepdim=True)", "x"))]:
        folder = repo / "submitted" / student / "hw-mini"
        folder.mkdir(parents=True)
        nb = json.loads(notebook.read_text())
        if replace:
            cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "stable_softmax")
            source = "".join(cell["source"])
            assert replace[0] in source, "the guide's solution no longer has the line this test breaks"
            cell["source"] = source.replace(replace[0], replace[1])
        (folder / spec["notebook"]).write_text(json.dumps(nb))
        (folder / "timestamp.txt").write_text("2026-11-26 12:00:00.000000 UTC")
    graded = run([sys.executable, "-m", "autograder", "autograde", "hw-mini", "--workers", "2"], repo)
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    exported = run([sys.executable, "-m", "autograder", "export", "--to", str(tmp_path / "grades.csv")], repo)
    assert exported.returncode == 0, exported.stderr[-2000:]
    rows = {line.split(",")[3]: line.split(",") for line in (tmp_path / "grades.csv").read_text().splitlines()[1:]}
    total = sum(points for _, points in spec["cells"].values())
    assert float(rows["correct"][-2]) == float(rows["correct"][-1]) == total, rows
    # the faulty one loses exactly the hidden check of large logits, and says why in its grade record
    record = json.loads((repo / "autograded" / ".records" / "hw-mini" / "overflow.json").read_text())
    failed = [(gid, c["name"]) for gid, cell in record["cells"].items() for c in cell["checks"] if not c["passed"]]
    assert failed == [("softmax_hidden", "logits of size ~100")], failed
    assert 0 < float(rows["overflow"][-2]) == record["score"] < total, (rows, record["score"])
