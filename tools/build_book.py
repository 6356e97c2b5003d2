"""Build the book: run Jupyter Book 1.x, say where the site is.

MathJax 3 comes from the pinned PyPI package sphinx-mathjax-offline, which the book's
configuration loads as a Sphinx extension: it is copied into the site, no CDN.

Execution is cached (jupyter-cache), so a rebuild with unchanged code re-executes nothing.
A failing cell fails the build; the error names the page and shows the cell.

    python tools/build_book.py [BOOK_DIR]
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PLACEHOLDER_HOSTS = ("example.edu", "example.com", "example.org", "example.net")


def placeholder_urls(book: Path) -> list[str]:
    """The book's configured URLs (hub of the launch buttons, published site) on a placeholder host."""
    from urllib.parse import urlparse

    import yaml

    config = yaml.safe_load((book / "_config.yml").read_text())
    urls = {"launch_buttons.jupyterhub_url": (config.get("launch_buttons") or {}).get("jupyterhub_url") or "",
            "html.baseurl": (config.get("html") or {}).get("baseurl") or ""}
    found = []
    for key, url in urls.items():
        host = urlparse(url).hostname or ""
        if any(host == h or host.endswith("." + h) for h in PLACEHOLDER_HOSTS):
            found.append(f"{key} = {url}")
    return found


def build(book: Path = BOOK) -> Path:
    """Build ``book`` into ``book/_build/html``; exit with a clear message on failure."""
    book = Path(book).resolve()
    if not (book / "_config.yml").exists():
        sys.exit(f"error: {book} has no _config.yml; is it a Jupyter Book folder?")
    start = time.perf_counter()
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(book), "--builder", "html", "--warningiserror", "--keep-going"]
    result = subprocess.run(cmd, cwd=book.parent)
    if result.returncode != 0:
        sys.exit("error: the book failed to build: see the page and cell named above "
                 f"(execution logs: {book}/_build/html/reports/)")
    html = book / "_build" / "html" / "index.html"
    if not (html.parent / "_static" / "mathjax" / "tex-chtml.js").exists():
        sys.exit("error: MathJax was not copied into the site: install the pinned "
                 "sphinx-mathjax-offline (`make env`) and keep it in book/_config.yml's extra_extensions")
    for entry in placeholder_urls(book):
        print(f"warning: {book.name}/_config.yml: {entry} is a placeholder host; set the real one "
              "before publishing (launch buttons / links to the site would lead nowhere)", file=sys.stderr)
    print(f"\nBook built in {time.perf_counter() - start:.1f} s. Open {html}")
    return html


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else BOOK)
