"""Build the book: copy MathJax in, run Jupyter Book 1.x, say where the site is.

Execution is cached (jupyter-cache), so a rebuild with unchanged code re-executes nothing.
A failing cell fails the build; the error names the page and shows the cell.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def install_mathjax() -> None:
    """Copy MathJax 2 from the jupyter-server-mathjax wheel so math renders without a CDN."""
    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    target = BOOK / "_mathjax" / "mathjax"
    if not (source / "MathJax.js").exists():
        sys.exit(f"error: MathJax not found in {source}; reinstall jupyter-server-mathjax")
    if not (target / "MathJax.js").exists():
        shutil.copytree(source, target, dirs_exist_ok=True)


def build(builder: str = "html") -> Path:
    install_mathjax()
    start = time.perf_counter()
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(BOOK), "--builder", builder,
           "--warningiserror", "--keep-going"]
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        sys.exit("error: the book failed to build (see the page and cell named above; "
                 "execution reports are in book/_build/html/reports/)")
    html = BOOK / "_build" / "html" / "index.html"
    print(f"\nBook built in {time.perf_counter() - start:.1f} s: {html}")
    return html


if __name__ == "__main__":
    build()
