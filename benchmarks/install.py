"""How long `make env`'s install of the pinned wheels takes: pip alone, and tools/install.py (uv).

Each round makes a fresh virtual environment per installer, with an empty download cache (as on a
fresh CI machine), installs ``-r requirements.txt -c requirements-lock.txt`` into it, checks that
both got the same distributions at the same versions, and writes the wall times to
``benchmarks/results/install.md``. The README's install figure comes from that table.

Usage: .venv/bin/python benchmarks/install.py [--rounds 2] [--out benchmarks/results/install.md]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ["-r", str(ROOT / "requirements.txt"), "-c", str(ROOT / "requirements-lock.txt")]
SEEDED = {"pip", "setuptools", "wheel", "uv"}  # the venv's own tools, not the pinned environment


def distributions(python: Path) -> dict[str, str]:
    """{normalized name: version} of what ``python``'s environment holds, the seeded tools left out."""
    listed = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                             "print('\\n'.join(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions()))"],
                            capture_output=True, text=True, check=True).stdout.split()
    found = {re.sub(r"[-_.]+", "-", n).lower(): v for n, _, v in (line.partition("==") for line in listed)}
    return {n: v for n, v in found.items() if n not in SEEDED}


def timed_install(installer: str, where: Path) -> tuple[float, dict[str, str]]:
    """Seconds to install the pinned set with ``installer`` ("pip" or "uv") into a fresh venv under
    ``where``, with empty caches; and what it installed."""
    venv = where / installer
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {**os.environ, "PIP_CACHE_DIR": str(where / f"{installer}-pip-cache"),
           "UV_CACHE_DIR": str(where / f"{installer}-uv-cache")}
    command = ([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                *REQUIREMENTS] if installer == "pip" else [str(python), str(ROOT / "tools" / "install.py"), *REQUIREMENTS])
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start, distributions(python)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "install.md")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    load = os.getloadavg()[0]
    rows = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="lec4-install-") as tmp:
            pip_s, pip_got = timed_install("pip", Path(tmp))
            uv_s, uv_got = timed_install("uv", Path(tmp))
        if pip_got != uv_got:
            differ = sorted(set(pip_got.items()) ^ set(uv_got.items()))
            print(f"error: pip and tools/install.py installed different distributions: {differ}", file=sys.stderr)
            return 1
        rows.append((r + 1, pip_s, uv_s, len(uv_got)))
        print(f"round {r + 1}: pip {pip_s:.1f} s, tools/install.py (uv) {uv_s:.1f} s, {len(uv_got)} distributions")
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# `make env`: installing the pinned wheels into a fresh venv, empty caches", "",
             f"Run {when} by `benchmarks/install.py` on commit `{commit}`, {os.cpu_count()} cores ({cpu}), "
             f"Python {platform.python_version()}, load average (1 min) before {load:.1f}. Both installers "
             "read the same sources (pip's configuration) and installed the same distributions at the same "
             "versions (checked).", "",
             "| round | pip install (s) | tools/install.py: uv (s), installing uv included | distributions |",
             "|---|---|---|---|"]
    lines += [f"| {r} | {p:.1f} | {u:.1f} | {n} |" for r, p, u, n in rows]
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
