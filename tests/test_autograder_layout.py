"""The grading package's layers, as the README's layout draws them.

- ``lec4.homework``: the public spec of each assignment (what the notebooks' locked cells import);
- ``autograder.checks``: the public check-building API the hidden suites write against;
- ``autograder.engine``: the private engine (sandbox, runner, reaper, supervisor, scoring) that
  only the rest of ``autograder`` (CLI, nbgrader hooks, records, self-check) may import;
- ``autograder.suites``: hidden cases and trusted references, built on the two public layers.

Read from the source (imports as written), so a new module that crosses a layer fails here.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = "autograder.engine"


def imported_modules(source: str) -> set[str]:
    """Every module named by an ``import``/``from ... import`` statement of ``source``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+(autograder[\w.]*)", re.M)


def code_of(path: Path) -> str:
    """The code a file runs: a module, a notebook's code cells, a MyST page's code-cell blocks."""
    text = path.read_text()
    if path.suffix == ".ipynb":
        return "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code")
    if path.suffix == ".md":
        return "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S))
    return text


def sources_outside_autograder() -> list[Path]:
    """What students, readers and suite authors run: the library, the book, the notebooks."""
    return (sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "book").glob("*.md"))
            + sorted((ROOT / "solutions").glob("*/*.ipynb")) + sorted((ROOT / "assignments").glob("*/*.ipynb")))


def test_the_scan_sees_an_engine_import():
    assert f"{ENGINE}.grading" in imported_modules("from autograder.engine.grading import grade")
    assert f"{ENGINE}.sandbox" in imported_modules("import autograder.engine.sandbox as s")


def test_the_scan_sees_imports_in_notebooks_and_pages(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# t\n```{code-cell} ipython3\nfrom autograder.engine import grading\n```\n")
    assert IMPORT_LINE.findall(code_of(page)) == ["autograder.engine"]


@pytest.mark.parametrize("path", sources_outside_autograder(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_outside_autograder_imports_the_grader(path):
    crossing = IMPORT_LINE.findall(code_of(path))
    assert not crossing, (f"{path.relative_to(ROOT)} imports {crossing}: the library, the book and the "
                          "notebooks never import the grader (students and readers do not have it)")


@pytest.mark.parametrize("path", sorted((ROOT / "autograder" / "suites").glob("hw_*.py"))
                         + sorted((ROOT / "tests" / "fixtures" / "suites").glob("*.py")), ids=lambda p: p.name)
def test_suites_use_only_the_public_layers(path):
    modules = imported_modules(path.read_text())
    ours = sorted(m for m in modules if m.startswith("autograder"))
    assert all(m == "autograder.checks" or m.startswith("autograder.checks.") for m in ours), (
        f"{path.name} imports {ours}: suites write against autograder.checks, never the engine")


def test_the_engine_package_shown_to_the_sandbox_imports_nothing():
    """The sandbox shows autograder/engine/__init__.py to the runs: it must import nothing."""
    tree = ast.parse((ROOT / "autograder" / "engine" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_autograder_is_an_installed_package_without_path_edits():
    import importlib.metadata

    dist = importlib.metadata.distribution("lec4")
    top = (dist.read_text("top_level.txt") or "").split()
    files = [str(f) for f in dist.files or []]
    assert "autograder" in top or any("autograder" in f for f in files) or any(
        "editable" in f for f in files), f"the lec4 distribution does not provide autograder: {top} {files[:5]}"
    offenders = [str(path.relative_to(ROOT)) for folder in ("autograder", "tests", "benchmarks", "src")
                 for path in sorted((ROOT / folder).rglob("*.py"))
                 if edits_sys_path(path.read_text()) and IMPORT_LINE.search(path.read_text())]
    assert not offenders, f"sys.path edits to reach autograder (it is installed; test helpers via pytest's pythonpath): {offenders}"


def edits_sys_path(source: str) -> bool:
    """``sys.path.insert/append/extend(...)`` or an assignment to ``sys.path[...]`` in ``source``."""
    for node in ast.walk(ast.parse(source)):
        target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
        if isinstance(node, ast.Assign):
            target = next((t.value for t in node.targets if isinstance(t, ast.Subscript)), None)
        if isinstance(target, ast.Attribute) and target.attr == "path" and getattr(target.value, "id", None) == "sys":
            return True
    return False


def test_the_path_edit_scan_sees_one():
    assert edits_sys_path("import sys\nsys.path.insert(0, 'x')") and edits_sys_path("import sys\nsys.path[:0] = ['x']")
    assert not edits_sys_path("import sys\nprint(sys.path)")


def test_the_cli_entry_imports_neither_torch_nor_nbgrader():
    """``python -m autograder`` runs for every TA command and every step of the tests (release,
    collect, due, calendar, ...): torch and nbgrader, 1.5 s and 1.2 s of CPU to import, are
    imported by the commands that need them, not by the entry point."""
    probe = ("import sys; from autograder import cli, calendar_cli, late, records; "
             "print(' '.join(sorted(m for m in ('torch', 'nbgrader', 'nbformat') if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [], f"imported by the CLI's entry point: {r.stdout.split()}"


def test_the_course_configuration_loads_without_torch():
    """Every nbgrader command and every TA command that reads the course (``Course.load``) loads
    ``nbgrader_config.py``, hence the hooks' pipeline: it names the preprocessors without importing
    torch (1.1 s of CPU per command), which only the grading itself needs."""
    probe = ("import sys; from autograder.cli import Course; Course.load(); "
             "print('torch' if 'torch' in sys.modules else '')")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [], "loading the course's nbgrader configuration imported torch"


HOOKS = ROOT / "autograder" / "nbgrader_hooks"


@pytest.mark.parametrize("path", sorted(HOOKS.glob("*.py")), ids=lambda p: p.name)
def test_each_nbgrader_hooks_module_says_its_job(path):
    """``autograder/nbgrader_hooks/`` is laid out like nbgrader's ``preprocessors/``: one job
    (a preprocessor, the kernel manager, the settings, ...) per module, named in its docstring."""
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(ROOT)} has no docstring"


def test_nbgrader_hooks_reexports_what_callers_import():
    """Callers import ``from autograder.nbgrader_hooks import NAME``: every name there is one of them."""
    import autograder.nbgrader_hooks as hooks

    imported = set()
    for path in [*sorted((ROOT / "autograder").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py"))]:
        if HOOKS not in path.parents:
            imported |= {m.removeprefix("autograder.nbgrader_hooks.") for m in imported_modules(path.read_text())
                         if m.startswith("autograder.nbgrader_hooks.")}
    missing = sorted(name for name in imported if "." not in name and not hasattr(hooks, name))
    assert not missing, f"autograder.nbgrader_hooks does not re-export {missing}"
    assert set(hooks.__all__) <= set(dir(hooks))


OPTIONS = ROOT / "autograder" / "options.py"
ENVIRONMENT = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_uses(source: str) -> list[int]:
    """Lines of ``source`` that read or set the process environment: ``os.environ``, ``os.getenv``
    (and the like), those names imported from ``os``, or a bare ``getenv(...)``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT and getattr(node.value, "id", None) == "os":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in ENVIRONMENT for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getenv":
            lines.append(node.lineno)
    return sorted(set(lines))


def test_the_environment_scan_sees_a_read():
    assert environment_uses("import os\nx = os.environ.get('A')") == [2]
    assert environment_uses("import os\nenv = {**os.environ}") == [2]
    assert environment_uses("import os\nos.getenv('A')") == [2]
    assert environment_uses("from os import environ, getenv\ngetenv('A')") == [1, 2]
    assert environment_uses("import os\nos.environ['A'] = 'b'") == [2]
    assert not environment_uses("import os\nprint(os.pathsep)\nd = {'env': 1}")


def test_only_the_options_module_touches_the_environment():
    """``autograder/options.py`` is the one place that reads (or sets) the process environment:
    every ``AUTOGRADER_*`` variable with its type and default, and the environments of the
    processes the grader starts. ``autograder/catalog/`` is faulty student code, not the grader."""
    assert OPTIONS.is_file()
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for path in sorted((ROOT / "autograder").rglob("*.py"))
                 if path != OPTIONS and ROOT / "autograder" / "catalog" not in path.parents
                 for line in environment_uses(path.read_text())]
    assert not offenders, f"the environment is read outside autograder/options.py: {offenders}"


SUITE_FILES = (sorted((ROOT / "autograder" / "suites").glob("hw_*.py"))
               + sorted((ROOT / "tests" / "fixtures" / "suites").glob("*.py")))


def names_used(source: str) -> set[str]:
    """Every name ``source`` mentions: imported (``from m import n``), read (``n``) or an attribute (``m.n``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
    return found


def test_the_name_scan_sees_an_anchoring_call():
    assert "anchor_property_checks" in names_used("from autograder.checks import anchor_property_checks")
    assert "anchor_property_checks" in names_used("import autograder.checks as c\nc.anchor_property_checks([], {})")
    assert "anchor_property_checks" not in names_used("def build_checks(device):\n    return []")


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.name)
def test_suites_leave_anchoring_to_the_engine(path):
    """Every check that needs a correct result is tied to its function's anchor by the engine
    (``autograder.engine.grading.suite_checks``), for every suite: one rule in one place, so a
    suite cannot forget it, and none does it itself."""
    assert "anchor_property_checks" not in names_used(path.read_text()), (
        f"{path.relative_to(ROOT)} uses anchor_property_checks: build_checks returns its checks unanchored, "
        "the engine anchors them (autograder.engine.grading.suite_checks)")
