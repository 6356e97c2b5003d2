"""Check the system programs the test suite drives, and say how to get the missing ones.

`.ci/run` installs them with apt-get; on your own machine run the command printed below.
"""
import glob
import shutil
import sys

NEEDED = {
    # program: (why, Debian package)
    "chromium": ("browser test of the built book", "chromium chromium-driver"),
    "bwrap": ("sandbox for autograding student kernels", "bubblewrap"),
}


def postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else shutil.which("initdb")


missing = [(prog, why, pkg) for prog, (why, pkg) in NEEDED.items() if shutil.which(prog) is None]
if postgres_bin() is None:
    missing.append(("initdb/postgres", "PostgreSQL gradebook test", "postgresql"))

if missing:
    lines = [f"  - {prog}: needed for the {why} (Debian package: {pkg})" for prog, why, pkg in missing]
    pkgs = " ".join(pkg for _, _, pkg in missing)
    sys.exit("error: system programs missing:\n" + "\n".join(lines)
             + f"\nInstall them with:\n  sudo apt-get update && sudo apt-get install -y {pkgs}\n"
             "(.ci/run does this automatically.)")
