"""Fail early, and say why, when the interpreter cannot run this project."""
import sys

SUPPORTED = (3, 11)

if sys.version_info[:2] != SUPPORTED:
    found = ".".join(map(str, sys.version_info[:3]))
    sys.exit(
        f"error: this project needs Python {SUPPORTED[0]}.{SUPPORTED[1]} (the pinned torch==2.13.0 "
        f"and the course image use it); `{sys.executable}` is Python {found}.\n"
        "Install Python 3.11 (e.g. `pyenv install 3.11`, or your OS package python3.11) and run\n"
        "  make book PYTHON=python3.11"
    )
try:
    import venv  # noqa: F401
    import ensurepip  # noqa: F401
except ImportError:
    sys.exit("error: Python's venv/ensurepip modules are missing. On Debian/Ubuntu: "
             "`apt-get install python3.11-venv`.")
