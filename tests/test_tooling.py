"""make book / make test fail clearly on an unsupported Python or a missing system tool."""
from __future__ import annotations

import runpy
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def test_check_python_rejects_other_versions(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "tools" / "check_python.py"))
    message = str(exc.value)
    assert "Python 3.11" in message and "3.9.18" in message and "PYTHON=python3.11" in message


def test_check_python_accepts_this_interpreter():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "check_python.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_check_system_names_missing_programs_and_packages():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "check_system.py")],
                            capture_output=True, text=True, env={"PATH": "/nonexistent"})
    if result.returncode == 0:
        pytest.fail("check_system passed with an empty PATH")
    assert "chromium" in result.stderr and "bubblewrap" in result.stderr and "apt-get install" in result.stderr


def test_check_system_passes_here():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "check_system.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_build_book_rejects_a_folder_that_is_not_a_book(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "no _config.yml" in result.stderr


def test_a_failing_cell_fails_the_build_naming_page_and_cell(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text((ROOT / "book" / "_config.yml").read_text())
    for folder in ("_ext", "_static"):  # the config's local extension and favicon
        shutil.copytree(ROOT / "book" / folder, book / folder)
    (book / "_toc.yml").write_text("format: jb-book\nroot: broken\n")
    header = (ROOT / "book" / "intro.md").read_text().split("---", 2)[1]
    (book / "broken.md").write_text(f"---{header}---\n# Broken\n\n```{{code-cell}} ipython3\n"
                                    "raise RuntimeError('deliberate failure in cell')\n```\n")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), str(book)],
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "broken.md" in output and "deliberate failure in cell" in output
