"""Build the book: run Jupyter Book 1.x, print the whole book to one PDF, say where both are.

MathJax 3 comes from the pinned PyPI package sphinx-mathjax-offline, which the book's
configuration loads as a Sphinx extension: it is copied into the site, no CDN.

Execution is cached (jupyter-cache), so a rebuild with unchanged code re-executes nothing.
A failing cell fails the build; the error names the page and shows the cell.

The PDF (``_build/html/lec4-book.pdf``, linked from every page's footer) is printed from the
built site by Debian's Chromium through Playwright, page by page in the table of contents'
order, after MathJax has typeset each page, with the exercises' solutions shown; pypdf joins
the pages into one file with a bookmark per page. No LaTeX, nothing downloaded.

    python tools/build_book.py [BOOK_DIR] [--pdf-only]
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PLACEHOLDER_HOSTS = ("example.edu", "example.com", "example.org", "example.net")
PDF_NAME = "lec4-book.pdf"  # book/_config.yml's footer links to it
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Print layout: the reader's tools (header, sidebars, buttons, footer links) are not printed;
# solutions and collapsed notes are opened before printing (see print_pdf); code the site folds away is not printed.
PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article, .prev-next-area,
.bd-footer, .bd-footer-content, .bd-header-announcement, .skip-link, .toggle-button,
button.toggle-button, .theme-switch-button, .search-button { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-main .bd-content { margin-left: 0 !important; }
.bd-article { padding-left: 0 !important; padding-right: 0 !important; }
figure, img, table, .admonition, div.cell { break-inside: avoid; }
/* code the site folds away (cells tagged hide-input: plotting, tables) stays off paper */
details.hide.above-input { display: none !important; }
"""


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


def toc_pages(book: Path) -> list[str]:
    """The book's pages in reading order (root, then every part's chapters)."""
    import yaml

    toc = yaml.safe_load((book / "_toc.yml").read_text())
    chapters = toc.get("chapters") or [c for part in toc.get("parts", []) for c in part["chapters"]]
    return [toc["root"]] + [c["file"] for c in chapters]


def chromium_path() -> str:
    """Debian's Chromium (installed with apt-get when we are root); a clear error otherwise."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's chromium (prints the book's PDF)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        found = shutil.which("chromium")
    if not found:
        sys.exit("error: the book's PDF is printed with Chromium, which is not installed; "
                 "run `sudo apt-get install -y chromium` (Debian), then `make book` again")
    return found


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def print_pdf(html_dir: Path, pages: list[str], out: Path) -> Path:
    """Print ``pages`` of the built site to one PDF ``out``, as a reader of paper would read them."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfWriter

    chromium = chromium_path()
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    parts: list[tuple[str, bytes]] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 1400})
                page.add_init_script("localStorage.setItem('mode', 'light'); localStorage.setItem('theme', 'light');")
                for name in pages:
                    page.goto(f"{url}/{name}.html", wait_until="networkidle")
                    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                           timeout=60000)
                    page.evaluate("() => MathJax.startup.promise")
                    # open every collapsed solution and note so paper shows them (not the folded
                    # plotting code of hide-input cells: PRINT_CSS leaves it off paper)
                    page.evaluate("""() => {
                        document.querySelectorAll('details:not(.above-input)').forEach(d => { d.open = true; });
                        document.querySelectorAll('.toggle-hidden').forEach(el => el.classList.remove('toggle-hidden'));
                        document.querySelectorAll('.toggle-hidden-content, .toggle-details__container')
                                .forEach(el => { el.style.display = ''; });
                    }""")
                    page.add_style_tag(content=PRINT_CSS)
                    page.evaluate("() => document.fonts.ready")
                    title = page.evaluate("() => (document.querySelector('article h1') || {}).textContent || ''")
                    parts.append((title.replace("#", "").strip() or name, page.pdf(
                        print_background=True, display_header_footer=True, header_template="<span></span>",
                        footer_template=('<div style="font-size:8px;width:100%;text-align:center;color:#555">'
                                         '<span class="title"></span> &middot; <span class="pageNumber"></span>'
                                         '</div>'),
                        prefer_css_page_size=True)))
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()

    import io

    from pypdf import PdfReader

    writer = PdfWriter()
    for title, data in parts:
        start = len(writer.pages)
        writer.append(PdfReader(io.BytesIO(data)))
        writer.add_outline_item(title=title, page_number=start)
    writer.add_metadata({"/Title": "Pretraining, Modern Transformers and CNNs (10-423/10-623 lecture 4)"})
    tmp = out.with_suffix(".tmp.pdf")
    with open(tmp, "wb") as fh:
        writer.write(fh)
    tmp.replace(out)
    return out


def build_pdf(book: Path = BOOK) -> Path:
    """Print the already built site of ``book`` to ``_build/html/lec4-book.pdf``."""
    book = Path(book).resolve()
    html_dir = book / "_build" / "html"
    if not (html_dir / "index.html").exists():
        sys.exit(f"error: {html_dir} has no built site; run `make book` (it builds the site, then the PDF)")
    start = time.perf_counter()
    out = print_pdf(html_dir, toc_pages(book), html_dir / PDF_NAME)
    print(f"PDF printed in {time.perf_counter() - start:.1f} s: {out}")
    return out


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
    build_pdf(book)
    return html


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = Path(args[0]) if args else BOOK
    if "--pdf-only" in sys.argv[1:]:
        build_pdf(target)
    else:
        build(target)
