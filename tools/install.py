"""Install the pinned requirements into this project's virtual environment with uv, from pip's sources.

`make env` runs it with the venv's Python:  python tools/install.py -r requirements.txt -c requirements-lock.txt

uv (pinned below) installs the same pinned wheels as pip, from the same places, but downloads and
unpacks them several at a time: on the 2-core machine the pinned set takes about a quarter of pip's
time (benchmarks/install.py, benchmarks/results/install.md). uv does not read pip's configuration,
so this passes pip's on: its index, extra indexes, find-links, constraint files and certificate
bundle, as `pip config list` reports them (configuration files and PIP_* variables alike). On a
machine whose find-links hold the CPU build of torch, uv then takes that build, as pip does.

Where uv cannot be installed (an offline wheelhouse without it), pip installs the requirements as
before, and says so.
"""
from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys

UV = "uv==0.13.9"  # the installer only: it changes no pin of the environment (requirements-lock.txt)
QUIET = ["--quiet", "--disable-pip-version-check"]


def pip_configuration(python: str = sys.executable) -> dict[str, str]:
    """pip's effective settings, ``{"find-links": "/opt/wheels", ...}``: ``pip config list`` prints
    ``global.find-links='...'`` for a file's [global] section and ``:env:.find-links='...'`` for
    PIP_FIND_LINKS; a variable wins over [install], which wins over [global], as in pip. A list
    (several URLs) comes back space-separated."""
    listed = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True)
    rank = {"global": 1, "install": 2, ":env:": 3}  # pip: [global] < [install] < PIP_* variables
    settings: dict[str, str] = {}
    ranks: dict[str, int] = {}
    for line in listed.stdout.splitlines():
        scoped, _, value = line.partition("=")
        section, _, key = scoped.rpartition(".")
        level = rank.get(section, 0)
        if key and value and level >= ranks.get(key, 0):
            settings[key], ranks[key] = " ".join(str(ast.literal_eval(value)).split()), level  # printed as repr()
    return settings


def uv_arguments(settings: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The uv options and environment that make uv use pip's ``settings`` (see pip_configuration)."""
    args: list[str] = []
    if "index-url" in settings:
        args += ["--index-url", settings["index-url"]]
    for option in ("extra-index-url", "find-links", "constraint"):
        for value in settings.get(option, "").split():
            args += [f"--{option}", value]
    if "extra-index-url" in settings or "find-links" in settings:
        # pip takes the best matching version from all its sources; uv by default only from the
        # first index that has the package (which may lack the pinned version)
        args += ["--index-strategy", "unsafe-best-match"]
    env = {"SSL_CERT_FILE": settings["cert"]} if "cert" in settings else {}
    return args, env


def install(requirements: list[str], python: str = sys.executable) -> str:
    """Install ``requirements`` (pip's arguments: ``-r file``, ``-c file``, packages) into ``python``'s
    environment; returns the installer that did it ("uv" or "pip")."""
    got_uv = subprocess.run([python, "-m", "pip", "install", *QUIET, UV], capture_output=True, text=True)
    if got_uv.returncode != 0:
        print(f"tools/install.py: {UV} could not be installed ({got_uv.stderr.strip().splitlines()[-1:]}); "
              "installing with pip instead", file=sys.stderr)
        subprocess.run([python, "-m", "pip", "install", *QUIET, "--no-compile", *requirements], check=True)
        return "pip"
    args, env = uv_arguments(pip_configuration(python))
    uv = os.path.join(os.path.dirname(python), "uv")
    subprocess.run([uv, "pip", "install", "--quiet", "--python", python, *args, *requirements],
                   env={**os.environ, **env}, check=True)
    return "uv"


def main(argv: list[str] | None = None) -> int:
    """``argv``: what ``pip install`` would take, e.g. ``-r requirements.txt -c requirements-lock.txt``."""
    requirements = sys.argv[1:] if argv is None else argv
    if not requirements or requirements[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if requirements else 2
    try:
        install(requirements)
    except subprocess.CalledProcessError as err:
        print(f"tools/install.py: {shlex.join(map(str, err.cmd))} failed (exit status {err.returncode})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
