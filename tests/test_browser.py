"""The built site in a real browser (headless Chromium from Debian, driven by Playwright):
every page renders with its figures, no broken images, no console errors. Screenshots go
to artifacts/screenshots/ (gitignored)."""
from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import CHAPTERS, ROOT

pytestmark = [pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
SHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def site_url(built_book):
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not found: install Debian's chromium and chromium-driver (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS,
                                                       headless=True, viewport={"width": 1280, "height": 900})
        yield context
        context.close()


@pytest.mark.parametrize("page_name", CHAPTERS)
def test_page_renders_without_errors(browser, site_url, page_name):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    failed: list[str] = []
    page.on("requestfailed", lambda req: failed.append(req.url))
    response = page.goto(f"{site_url}/{page_name}.html", wait_until="networkidle")
    assert response is not None and response.ok, f"{page_name}: HTTP {response and response.status}"
    assert page.locator("article h1").count() >= 1, f"{page_name}: no title rendered"
    broken = page.evaluate("""() => Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src)""")
    assert not broken, f"{page_name}: broken images {broken}"
    if page_name != "intro":
        figures = page.evaluate("() => document.querySelectorAll('.cell_output img').length")
        assert figures >= 1, f"{page_name}: no figure produced by an executed cell"
    if page.evaluate("() => document.querySelector('script[src*=\"MathJax.js\"]') !== null"):
        page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0",
                               timeout=20000)
        unrendered = page.evaluate("""() => Array.from(document.querySelectorAll('span.math, div.math'))
            .filter(el => !el.querySelector('.MathJax, .MathJax_Display, .MathJax_CHTML, .MathJax_SVG')).length""")
        assert unrendered == 0, f"{page_name}: {unrendered} formulas not typeset by MathJax"
    local_failures = [u for u in failed if u.startswith(site_url)]
    assert not local_failures, f"{page_name}: failed requests {local_failures}"
    assert not errors, f"{page_name}: console errors {errors}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{page_name}.png"), full_page=False)
    page.close()
