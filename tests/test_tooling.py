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


# ---------------------------------------------------------------- tools/install.py (make env)
def _installer():
    return runpy.run_path(str(ROOT / "tools" / "install.py"), run_name="install")


def test_the_installer_hands_pips_sources_to_uv(tmp_path, monkeypatch):
    """uv reads no pip configuration: make env must pass pip's on, with pip's precedence
    (a PIP_* variable over [install] over [global]), or uv installs torch's CUDA build from PyPI
    where pip takes the CPU build from find-links."""
    for name in [n for n in __import__("os").environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nfind-links = /global/wheels\nextra-index-url =\n    file:///a/simple\n"
                    "    file:///b/simple\ncert = /certs/ca.crt\nconstraint = /caps.txt\n"
                    "[install]\nfind-links = /install/wheels\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    installer = _installer()
    settings = installer["pip_configuration"](sys.executable)
    assert settings["find-links"] == "/install/wheels" and settings["extra-index-url"] == "file:///a/simple file:///b/simple"
    monkeypatch.setenv("PIP_FIND_LINKS", "/env/wheels")
    settings = installer["pip_configuration"](sys.executable)
    args, env = installer["uv_arguments"](settings)
    assert args == ["--extra-index-url", "file:///a/simple", "--extra-index-url", "file:///b/simple",
                    "--find-links", "/env/wheels", "--constraint", "/caps.txt",
                    "--index-strategy", "unsafe-best-match"], args
    assert env == {"SSL_CERT_FILE": "/certs/ca.crt"}
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    args, _ = installer["uv_arguments"](installer["pip_configuration"](sys.executable))
    assert args[:2] == ["--index-url", "https://mirror.example/simple"], args


def test_the_installer_falls_back_to_pip_where_uv_cannot_be_had(tmp_path, monkeypatch, capsys):
    """Offline, with a wheelhouse that lacks uv: pip installs (here: finds pytest already there)
    and the installer says why."""
    for name in [n for n in __import__("os").environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "none.conf"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))  # an empty wheelhouse
    installer = _installer()
    install = installer["install"]
    install.__globals__["UV"] = "uv==0.0.1"  # no such release, here or anywhere
    assert install([f"pytest=={pytest.__version__}"], python=sys.executable) == "pip"
    assert "uv==0.0.1 could not be installed" in capsys.readouterr().err
    assert installer["main"]([]) == 2  # nothing to install: the usage, and a failure
