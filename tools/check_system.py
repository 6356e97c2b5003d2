"""Check the system programs the test suite drives; install the missing ones or say how.

    python tools/check_system.py [--install]

With ``--install`` (what `make test` uses) missing Debian packages are installed with apt-get,
as root or through sudo; without a way to do that, the exact command to run is printed.
"""
import glob
import os
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


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub"))
from hub import NODE_MAJOR  # noqa: E402  (what hub/package.json's configurable-http-proxy needs)


def find_missing() -> list[tuple[str, str, str]]:
    """(program, why, Debian package) for every program the suite needs and this machine lacks."""
    missing = [(prog, why, pkg) for prog, (why, pkg) in NEEDED.items() if which(prog) is None]
    if shutil.which("node"):
        version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        if int(version.lstrip("v").split(".")[0] or 0) < NODE_MAJOR:
            missing.append((f"node >= {NODE_MAJOR} (found {version})", "course JupyterHub's proxy; older Debian "
                            "releases need NodeSource's nodejs, https://deb.nodesource.com", "nodejs"))
    if postgres_bin() is None:
        missing.append(("initdb/postgres", "PostgreSQL gradebook test", "postgresql"))
    return missing


def apt_install(packages: list[str]) -> bool:
    """Install ``packages`` with apt-get as root or through sudo; False when neither is possible."""
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"] if shutil.which("sudo") else None
    if prefix is None or shutil.which("apt-get") is None:
        return False
    print(f"installing system packages: {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(prefix + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return True


missing = find_missing()
packages = list(dict.fromkeys(pkg for _, _, pkg in missing for pkg in pkg.split()))
if missing and "--install" in sys.argv[1:] and apt_install(packages):
    missing = find_missing()
if missing:
    lines = [f"  - {prog}: needed for the {why} (Debian package: {pkg})" for prog, why, pkg in missing]
    sys.exit("error: system programs missing:\n" + "\n".join(lines)
             + f"\nInstall them with:\n  sudo apt-get update && sudo apt-get install -y {' '.join(packages)}\n"
             "(`make test` does this itself when it runs as root or with password-less sudo.)")
