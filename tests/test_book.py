"""The book builds from clean, executes every page without error and has every page."""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import CHAPTERS, ROOT

pytestmark = [pytest.mark.book]


def test_toc_lists_every_chapter():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for c in toc["chapters"]]
    assert files == CHAPTERS


def test_every_page_built_with_executed_outputs(built_book):
    for page in CHAPTERS:
        html = built_book / f"{page}.html"
        assert html.exists(), f"page {page} missing from the built site"
        text = html.read_text()
        # each page executes at least one cell through lec4 and shows its output
        assert "cell_output" in text, f"{page}: no executed cell output in the page"


def test_no_execution_reports(built_book):
    reports = built_book / "reports"
    assert not reports.exists() or not any(reports.iterdir()), \
        f"execution reports present (a cell failed): {sorted(p.name for p in reports.iterdir())}"


def test_math_renders_from_local_mathjax(built_book):
    """MathJax 3 is published with the site and every page loads it, and nothing else, locally."""
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax was not published with the site"
    assert (built_book / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir(), \
        "MathJax's fonts were not published with the site"
    for page in CHAPTERS:
        text = (built_book / f"{page}.html").read_text()
        # what the browser fetches: scripts, and linked resources other than navigation links
        loaded_links = [tag for tag in re.findall(r"<link[^>]*>", text)
                        if not re.search(r'rel="(canonical|alternate|next|prev|index|search)"', tag)]
        sources = (re.findall(r'<script[^>]*\bsrc="([^"]+)"', text)
                   + [m for tag in loaded_links for m in re.findall(r'\bhref="([^"]+)"', tag)])

        assert "_static/mathjax/tex-chtml.js" in [s.split("?")[0] for s in sources], \
            f"{page} does not load the local MathJax"
        remote = [s for s in sources if re.match(r"(https?:)?//", s)]
        assert not remote, f"{page} loads scripts or styles from another host: {remote}"


def test_no_progress_widgets_or_timing_noise(built_book):
    """Saved outputs are what a reader needs: no tqdm widgets, no "page executed in N s" cells."""
    for page in CHAPTERS:
        text = (built_book / f"{page}.html").read_text()
        assert "application/vnd.jupyter.widget" not in text, f"{page}: a progress-bar widget was saved"
        assert not re.search(r"executed in \d", text), f"{page}: a cell reports the page's execution time"


def test_download_and_launch_buttons(built_book):
    text = (built_book / "pretraining.html").read_text()
    assert "_sources/pretraining.ipynb" in text or "pretraining.ipynb" in text, "no .ipynb download"
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    hub = config["launch_buttons"]["jupyterhub_url"]
    assert hub and hub in text, "JupyterHub launch button missing"
