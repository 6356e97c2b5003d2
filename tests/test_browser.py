"""The built site in a real browser (headless Chromium from Debian, driven by Playwright),
every page in the light and the dark theme, as a reader sees it:

- it loads with its figures, no broken image, no console error, no failed request and no
  request to any host but the site's own (everything offline, no CDN);
- every formula is typeset by MathJax (as many typeset containers as ``span.math`` /
  ``div.math`` elements, no MathJax error) and no raw TeX is left in the visible text;
- nothing is wider than the text column (no sideways-scrolling table, code or output);
- every piece of text is legible: WCAG AA contrast (4.5:1) against its actual background.

The chapters teach as a textbook does (team SHARED.md "Book conventions"), checked on every
chapter page in both themes:

- every figure is a numbered figure ("Fig. 1.2") with a sentence as caption, a real alt text,
  and a cross-reference from the text; its text is at least ``lec4.plotting.MIN_TEXT_PX`` high
  at the width it is shown (from the text report the book's style writes into each PNG: the
  smallest font matplotlib drew, the dpi; measured against the image's natural and displayed
  width) and no two of its texts overlap;
- every ``##`` section ends with at least one exercise; every solution is collapsed until the
  reader clicks it, then shown;
- the chapter ends with a summary; every page links the notation page and the PDF.

Full-page screenshots go to artifacts/screenshots/PAGE-THEME.png (gitignored).
"""
from __future__ import annotations

import functools
import http.server
import re
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import BACK_MATTER, CHAPTERS, ROOT

pytestmark = [pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
SHOTS = ROOT / "artifacts" / "screenshots"
THEMES = ["light", "dark"]
MIN_CONTRAST = 4.5  # WCAG 2 AA for body text
# raw TeX that a reader must never see: delimiters, and any \command
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\[A-Za-z]+|\^\{|_\{")
# a subscript written in prose (q_t, h_kv, θ_i): it belongs in math or in words
PROSE_SUBSCRIPT = re.compile(r"(?<![\w/.-])[A-Za-zθ]_[A-Za-z0-9]{1,3}\b")
PAGES = [(page, theme) for page in CHAPTERS + BACK_MATTER for theme in THEMES]
TEACHING = CHAPTERS[1:]  # the three numbered chapters (intro is the preface)
CHAPTER_PAGES = [(page, theme) for page in TEACHING for theme in THEMES]
# `##` sections that need no exercise of their own
NO_EXERCISE_SECTIONS = {"Summary", "References"}
# an alt text that says nothing: empty, a file name or hash, the format, "image"/"figure"
MEANINGLESS_ALT = re.compile(r"^\s*$|^[0-9a-f]{8,}|\.(png|svg|jpe?g)\b|^(png|svg|image|figure|plot)$", re.I)


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
        pytest.fail("chromium not found: install Debian's chromium and chromium-driver (`make test` does)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS,
                                                       headless=True, viewport={"width": 1280, "height": 900})
        yield context
        context.close()


class LoadedPage:
    """A page opened in one theme, with everything the browser reported while loading it."""

    def __init__(self, browser, site_url: str, name: str, theme: str):
        self.name, self.theme, self.site_url = name, theme, site_url
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.requests: list[str] = []
        page = browser.new_page()
        # pydata-sphinx-theme reads the reader's choice from localStorage before it paints
        page.add_init_script(f"localStorage.setItem('mode', '{theme}'); localStorage.setItem('theme', '{theme}');")
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", lambda req: self.requests.append(req.url))
        page.on("requestfailed", lambda req: self.failed.append(f"{req.url} ({req.failure})"))
        page.on("response", lambda r: self.failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)
        self.response = page.goto(f"{site_url}/{name}.html", wait_until="networkidle")
        self.page = page
        self.where = f"{name} ({theme} theme)"

    def wait_for_math(self) -> None:
        """Wait until MathJax 3 has typeset the page; fail clearly if MathJax never started."""
        try:
            self.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                        timeout=20000)
        except Exception:
            n = self.page.evaluate("() => document.querySelectorAll('span.math, div.math').length")
            raw = len(RAW_TEX.findall(visible_prose(self)))
            pytest.fail(f"{self.where}: MathJax 3 never started (no MathJax script loaded, or it failed): "
                        f"0 of {n} formulas typeset, raw TeX visible {raw} times")

        self.page.evaluate("() => MathJax.startup.promise")


def _open_page(request, browser, site_url):
    """The fixtures' one body: open the (page, theme) of ``request.param`` once for all the tests of
    this file that use it (pytest runs them together), close it after them. The tests only read the
    page, except test_solutions_are_hidden_until_clicked, the last test of its pages."""
    page_name, theme = request.param
    loaded = LoadedPage(browser, site_url, page_name, theme)
    yield loaded
    loaded.page.close()


@pytest.fixture(scope="module", params=PAGES, ids=[f"{p}-{t}" for p, t in PAGES])
def loaded(request, browser, site_url):
    """Every page (chapters and back matter) in both themes."""
    yield from _open_page(request, browser, site_url)


@pytest.fixture(scope="module", params=CHAPTER_PAGES, ids=[f"{p}-{t}" for p, t in CHAPTER_PAGES])
def chapter(request, browser, site_url):
    """The three numbered chapters in both themes (the textbook checks)."""
    yield from _open_page(request, browser, site_url)


def test_page_loads_offline_without_errors(loaded):
    page = loaded.page
    assert loaded.response is not None and loaded.response.ok, \
        f"{loaded.where}: HTTP {loaded.response and loaded.response.status}"
    assert page.evaluate("() => document.documentElement.dataset.theme") == loaded.theme, \
        f"{loaded.where}: the theme was not applied"
    assert page.locator("article h1").count() >= 1, f"{loaded.where}: no title rendered"
    broken = page.evaluate("""() => Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src)""")
    assert not broken, f"{loaded.where}: broken images {broken}"
    figures = page.evaluate("() => document.querySelectorAll('.cell_output img').length")
    assert figures >= (1 if loaded.name in TEACHING else 0), f"{loaded.where}: no figure from an executed cell"
    loaded.wait_for_math()
    foreign = [u for u in loaded.requests if not (u.startswith(loaded.site_url + "/") or u.startswith("data:"))]
    assert not foreign, f"{loaded.where}: requests leave the machine: {foreign}"
    assert not loaded.failed, f"{loaded.where}: failed requests {loaded.failed}"
    assert not loaded.errors, f"{loaded.where}: console errors {loaded.errors}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{loaded.name}-{loaded.theme}.png"), full_page=True)


def test_every_formula_is_typeset(loaded):
    loaded.wait_for_math()
    counts = loaded.page.evaluate("""() => {
        const math = Array.from(document.querySelectorAll('span.math, div.math'));
        return {math: math.length,
                typeset: math.filter(el => el.querySelector('mjx-container')).length,
                errors: Array.from(document.querySelectorAll('mjx-merror'))
                             .map(el => el.getAttribute('data-mjx-error') || el.textContent).slice(0, 5)};
    }""")
    assert counts["math"] >= (5 if loaded.name in TEACHING + ["notation"] else 0), \
        f"{loaded.where}: formulas missing: {counts}"
    assert counts["typeset"] == counts["math"], \
        f"{loaded.where}: {counts['math'] - counts['typeset']} of {counts['math']} formulas not typeset"
    assert not counts["errors"], f"{loaded.where}: MathJax could not typeset {counts['errors']}"


def visible_prose(loaded) -> str:
    """The article's text as the reader sees it, without code, typeset math and scripts."""
    return loaded.page.evaluate("""() => {
        const article = document.querySelector('article').cloneNode(true);
        article.querySelectorAll('pre, code, mjx-container, script, style, .highlight, .headerlink')
               .forEach(el => el.remove());
        return article.textContent;
    }""")


def test_no_raw_tex_in_visible_text(loaded):
    loaded.wait_for_math()
    text = visible_prose(loaded)
    context = [text[max(m.start() - 40, 0):m.end() + 20].replace("\n", " ") for m in RAW_TEX.finditer(text)]
    assert not context, f"{loaded.where}: raw TeX visible ({len(context)}x), e.g. {context[:4]}"
    subscripts = [text[max(m.start() - 30, 0):m.end() + 10].replace("\n", " ")
                  for m in PROSE_SUBSCRIPT.finditer(text)]
    assert not subscripts, f"{loaded.where}: subscripts written outside math: {subscripts[:6]}"


def test_nothing_wider_than_the_text_column(loaded):
    loaded.wait_for_math()
    wide = loaded.page.evaluate("""() => {
        const column = document.querySelector('article.bd-article');
        const right = column.getBoundingClientRect().right + 1;
        const out = [];
        // tables, code, printed outputs and figures: no sideways scrolling, nothing past the column
        for (const el of column.querySelectorAll('table, pre, .cell_output img, mjx-container[display="true"]')) {
            const box = el.getBoundingClientRect();
            const scroller = el.closest('.lec4-shown, .pst-scrollable-table-container, .highlight, .output') || el;

            if (box.right > right || el.scrollWidth > el.clientWidth + 1
                || scroller.scrollWidth > scroller.clientWidth + 1) {
                out.push(`${el.tagName.toLowerCase()} ${Math.round(Math.max(box.width, el.scrollWidth))}px: `
                         + el.textContent.trim().slice(0, 60));
            }
        }
        return {column: Math.round(column.getBoundingClientRect().width), wide: out};
    }""")
    assert not wide["wide"], f"{loaded.where}: wider than the {wide['column']} px text column: {wide['wide']}"


def test_every_text_is_legible(loaded):
    """WCAG contrast of each text element against the background actually behind it."""
    loaded.wait_for_math()
    low = loaded.page.evaluate("""(minimum) => {
        const rgba = s => { const v = s.match(/[\\d.]+/g).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
        const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
        const lum = c => { const l = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                           return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
        const background = el => {
            const layers = [];
            for (let e = el; e; e = e.parentElement) {
                const c = rgba(getComputedStyle(e).backgroundColor);
                if (c[3] > 0) layers.push(c);
                if (c[3] >= 1) break;
            }
            let bg = [255, 255, 255, 1];
            if (layers.length && layers[layers.length - 1][3] >= 1) bg = layers.pop();
            while (layers.length) bg = over(layers.pop(), bg);
            return bg;
        };
        const out = [];
        for (const el of document.querySelectorAll('article *')) {
            const own = Array.from(el.childNodes).filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim()).join(' ');
            if (!own || el.closest('mjx-assistive-mml, script, style')) continue;
            const box = el.getBoundingClientRect();
            const style = getComputedStyle(el);
            if (box.width === 0 || box.height === 0 || style.visibility === 'hidden' || style.opacity === '0') continue;
            const bg = background(el);
            const fg = over(rgba(style.color), bg);
            const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
            const ratio = (a + 0.05) / (b + 0.05);
            if (ratio < minimum) out.push(`${ratio.toFixed(2)} ${el.tagName.toLowerCase()}.${el.className}: ${own.slice(0, 40)}`);
        }
        return out;
    }""", MIN_CONTRAST)
    assert not low, f"{loaded.where}: {len(low)} texts below {MIN_CONTRAST}:1 contrast, e.g. {low[:6]}"


# ---- the book as a textbook: figures, exercises, summary, notation, PDF ------------------------------

def _figures(loaded) -> list[dict]:
    """Every image of the page's content with what the checks need about it."""
    return loaded.page.evaluate("""() => {
        const article = document.querySelector('article.bd-article');
        const style = getComputedStyle(article);
        const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return Array.from(article.querySelectorAll('img')).map(img => {
            const figure = img.closest('figure');
            const caption = figure && figure.querySelector('figcaption');
            const number = caption && caption.querySelector('.caption-number');
            const text = caption && caption.querySelector('.caption-text');
            const id = figure && (figure.id || (figure.querySelector('[id]') || {}).id);
            const refs = id ? Array.from(document.querySelectorAll(`a[href$="#${id}"]`))
                                   .filter(a => !figure.contains(a)).length : 0;
            return {src: img.getAttribute('src'), alt: img.getAttribute('alt') || '',
                    natural: img.naturalWidth, shown: img.getBoundingClientRect().width, column: column,
                    inFigure: !!figure, number: number ? number.textContent.trim() : '',
                    caption: text ? text.textContent.trim() : '', id: id || '', refs: refs};
        });
    }""")


def test_every_figure_is_numbered_captioned_referenced_with_alt_text(loaded):
    loaded.wait_for_math()
    bad = []
    for fig in _figures(loaded):
        where = f"{fig['src']} ({fig['caption'][:50] or 'no caption'})"
        if not fig["inFigure"]:
            bad.append(f"{where}: not inside a figure (give the cell mystnb.figure caption and name)")
            continue
        if not re.fullmatch(r"Fig\.\s*\d+(\.\d+)*", fig["number"]):
            bad.append(f"{where}: figure not numbered (number {fig['number']!r})")
        if len(fig["caption"].split()) < 4:
            bad.append(f"{where}: caption {fig['caption']!r} is not a sentence saying what to see")
        if MEANINGLESS_ALT.search(fig["alt"]) or len(fig["alt"].split()) < 3:
            bad.append(f"{where}: alt text {fig['alt']!r} does not describe the figure")
        if not fig["id"] or fig["refs"] < 1:
            bad.append(f"{where}: not cross-referenced from the text ({{numref}} to {fig['id'] or 'its name'})")
    assert not bad, f"{loaded.where}: {len(bad)} figure problems:\n" + "\n".join(bad)


def test_figure_text_is_readable_and_does_not_overlap(loaded, built_book):
    from lec4.plotting import BOOK_COLUMN_PX, MIN_TEXT_PX, read_text_report, rendered_text_px

    loaded.wait_for_math()
    figures = _figures(loaded)
    bad = []
    for fig in figures:
        assert fig["column"] >= BOOK_COLUMN_PX - 1, \
            f"{loaded.where}: text column {fig['column']:.0f} px < lec4.plotting.BOOK_COLUMN_PX = {BOOK_COLUMN_PX}"
        path = built_book / fig["src"].split("?")[0]
        assert path.is_file(), f"{loaded.where}: {fig['src']} is not a file of the site"
        report = read_text_report(path.read_bytes()) if path.suffix == ".png" else None
        if report is None:
            bad.append(f"{fig['src']}: no text report (a PNG drawn under lec4.plotting.use_book_style())")
            continue
        # an image inside a collapsed block has no box yet: judge it at the width it would get
        shown = fig["shown"] if fig["shown"] > 0 else min(fig["natural"], fig["column"])
        if report["min_font_pt"] is not None:
            px = rendered_text_px(report["min_font_pt"], report["dpi"], fig["natural"], shown)
            if px < MIN_TEXT_PX:
                bad.append(f"{fig['src']} ({fig['caption'][:40]}): smallest text {report['min_font_pt']:g} pt "
                           f"at {report['dpi']:g} dpi, {fig['natural']} px shown at {shown:.0f} px "
                           f"-> {px:.1f} px < {MIN_TEXT_PX}")
        if report["overlaps"]:
            bad.append(f"{fig['src']} ({fig['caption'][:40]}): overlapping texts {report['overlaps'][:3]}")
    assert not bad, f"{loaded.where}: {len(bad)} figures hard to read:\n" + "\n".join(bad)


def _sections(loaded) -> list[dict]:
    return loaded.page.evaluate("""() => Array.from(document.querySelectorAll('article.bd-article section'))
        .filter(s => s.querySelector(':scope > h2'))
        .map(s => ({title: s.querySelector(':scope > h2').textContent.replace(/[#¶]/g, '').replace(/^[\\d.\\s]+/, '').trim(),
                    exercises: s.querySelectorAll('div.exercise').length}))""")


def test_every_section_ends_with_exercises_and_the_chapter_with_a_summary(chapter):
    sections = _sections(chapter)
    assert sections, f"{chapter.where}: no ## sections"
    titles = [s["title"] for s in sections]
    missing = [s["title"] for s in sections if s["exercises"] < 1 and s["title"] not in NO_EXERCISE_SECTIONS]
    assert not missing, f"{chapter.where}: sections without an exercise: {missing}"
    body = [t for t in titles if t != "References"]
    assert body and body[-1] == "Summary", f"{chapter.where}: the chapter does not end with a Summary section: {titles}"


def test_solutions_are_hidden_until_clicked(chapter):
    page = chapter.page
    solutions = page.locator("article.bd-article div.solution")
    n = solutions.count()
    exercises = page.locator("article.bd-article div.exercise").count()
    assert n >= exercises >= 1, f"{chapter.where}: {exercises} exercises but {n} solutions"
    for i in range(n):
        solution = solutions.nth(i)
        body = solution.locator(":scope > :not(.admonition-title):not(button)").first
        title = solution.locator(":scope > .admonition-title").first.inner_text().strip()
        assert "toggle" in (solution.get_attribute("class") or ""), \
            f"{chapter.where}: solution {title!r} is not collapsible (give it `:class: dropdown`)"
        assert not body.is_visible(), f"{chapter.where}: solution {title!r} is shown before the reader asks"
        # the reader's click on the title's toggle button (the title itself also links to the exercise)
        solution.locator(":scope > .admonition-title .toggle-button").first.click()
        body.wait_for(state="visible", timeout=5000)
        assert body.is_visible(), f"{chapter.where}: solution {title!r} did not open on click"


def test_notation_page_and_pdf_are_linked_from_every_page(loaded, built_book):
    links = loaded.page.evaluate("""() => ({
        // the sidebar's entry (on the notation page itself it links to "#")
        notation: Array.from(document.querySelectorAll('nav.bd-links a'))
            .filter(a => a.textContent.trim() === 'Notation' && a.offsetParent !== null
                         && /^(notation\\.html|#)$/.test(a.getAttribute('href') || '')).length,
        pdf: Array.from(document.querySelectorAll('a[href="lec4-book.pdf"]')).length})""")
    assert links["notation"] >= 1, f"{loaded.where}: no visible link to the notation page in the navigation"
    assert links["pdf"] >= 1, f"{loaded.where}: no link to the book's PDF"
    response = loaded.page.request.get(f"{loaded.site_url}/lec4-book.pdf")
    assert response.ok and response.body()[:5] == b"%PDF-", f"{loaded.where}: the PDF link is broken"
