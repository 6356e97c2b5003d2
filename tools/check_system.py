"""Check the system programs the test suite drives, and say how to get the missing ones.

`.ci/run` installs them with apt-get; on your own machine run the command printed below.
"""
import glob
import shutil
import subprocess
import sys
from pathlib import Path

NEEDED = {
    # program: (why, Debian package)
    "chromium": ("browser test of the built book", "chromium chromium-driver"),
    "bwrap": ("sandbox for autograding student kernels", "bubblewrap"),
    "node": ("proxy of the course JupyterHub (make hub, tests/test_hub.py; Node.js >= 20)", "nodejs"),
    "npm": ("installing the pinned configurable-http-proxy (hub/package-lock.json)", "npm"),
    "slurmctld": ("real-Slurm grading test (tests/test_slurm.py)", "slurm-wlm"),
    "slurmd": ("real-Slurm grading test (tests/test_slurm.py)", "slurm-wlm"),
    "munged": ("real-Slurm grading test: Slurm's authentication daemon", "munge"),
}


def postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else shutil.which("initdb")


def which(prog: str) -> str | None:
    """PATH lookup that also sees /usr/sbin (daemons live there; a non-root PATH may lack it)."""
    return shutil.which(prog) or shutil.which(prog, path="/usr/sbin:/sbin")


missing = [(prog, why, pkg) for prog, (why, pkg) in NEEDED.items() if which(prog) is None]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub"))
from hub import NODE_MAJOR  # noqa: E402  (what hub/package.json's configurable-http-proxy needs)

if shutil.which("node"):
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < NODE_MAJOR:
        missing.append((f"node >= {NODE_MAJOR} (found {version})", "course JupyterHub's proxy; older Debian "
                        "releases need NodeSource's nodejs, https://deb.nodesource.com", "nodejs"))
if postgres_bin() is None:
    missing.append(("initdb/postgres", "PostgreSQL gradebook test", "postgresql"))

if missing:
    lines = [f"  - {prog}: needed for the {why} (Debian package: {pkg})" for prog, why, pkg in missing]
    pkgs = " ".join(dict.fromkeys(pkg for _, _, pkg in missing))
    sys.exit("error: system programs missing:\n" + "\n".join(lines)
             + f"\nInstall them with:\n  sudo apt-get update && sudo apt-get install -y {pkgs}\n"
             "(.ci/run does this automatically.)")
