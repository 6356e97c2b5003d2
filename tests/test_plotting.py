"""lec4.plotting: the book's figure style keeps text readable at the column width, and the text
report that the browser test reads back from each figure measures what matplotlib drew."""
from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lec4 import plotting  # noqa: E402
from lec4.plotting import (BOOK_COLUMN_PX, BOOK_STYLE, FIGURE_DPI, MAX_FIGURE_WIDTH_IN, MIN_TEXT_PX,  # noqa: E402
                           STYLE_MIN_FONT_PT, drawn_texts, figure_png, min_font_pt, read_text_report,
                           rendered_text_px, text_report, use_book_style)


@pytest.fixture(autouse=True)
def book_style():
    with matplotlib.rc_context():
        use_book_style()
        yield
        plt.close("all")


def test_rendered_text_px_is_points_to_pixels_times_the_shrink():
    # 72 dpi: one point is one pixel; shown at half its width, half the height
    assert rendered_text_px(10, 72, 500, 500) == pytest.approx(10)
    assert rendered_text_px(10, 72, 500, 250) == pytest.approx(5)
    assert rendered_text_px(9, 144, 1000, 1000) == pytest.approx(18)
    with pytest.raises(ValueError, match="positive"):
        rendered_text_px(10, 100, 0, 100)


def test_style_keeps_every_text_readable_up_to_the_widest_figure():
    # the widest allowed figure is shrunk into the column; its smallest style font stays >= MIN_TEXT_PX
    natural = MAX_FIGURE_WIDTH_IN * FIGURE_DPI
    assert natural > BOOK_COLUMN_PX, "the check below must cover a figure that is shrunk"
    px = rendered_text_px(STYLE_MIN_FONT_PT, FIGURE_DPI, natural, BOOK_COLUMN_PX)
    assert px >= MIN_TEXT_PX, f"smallest style text renders at {px:.1f} px"
    assert STYLE_MIN_FONT_PT >= min_font_pt(MAX_FIGURE_WIDTH_IN)
    # and the default figure fits the column unshrunk
    assert BOOK_STYLE["figure.figsize"][0] * FIGURE_DPI <= BOOK_COLUMN_PX
    # the old style (7 pt labels on a 10-inch figure at 110 dpi) would fail the same arithmetic
    assert rendered_text_px(7, 110, 10 * 110, BOOK_COLUMN_PX) < MIN_TEXT_PX


def test_drawn_texts_measures_what_is_drawn():
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [3, 1, 2], label="data")
    ax.set_xlabel("step"); ax.set_title("title")
    ax.tick_params(axis="y", labelsize=6)
    ax.legend()
    ax.text(0.5, 0.5, "   ")  # blank: not a drawn text
    invisible = ax.text(0.2, 0.2, "hidden"); invisible.set_visible(False)
    texts = drawn_texts(fig)
    strings = {t["text"] for t in texts}
    assert {"step", "title", "data"} <= strings and "hidden" not in strings
    assert min(t["size_pt"] for t in texts) == pytest.approx(6)
    # only ticks inside the view: x ticks drawn at 0.0 .. 2.0, none of the locator's extras
    xticks = [ax.xaxis.get_major_formatter()(v) for v in ax.get_xticks() if 0 <= v <= 2]
    assert all(label in strings for label in xticks)
    assert text_report(fig)["min_font_pt"] == pytest.approx(6)


def test_overlapping_tick_labels_are_reported():
    fig, ax = plt.subplots(figsize=(3, 2))
    names = [f"a long category name {i}" for i in range(12)]
    ax.bar(names, range(12))  # horizontal labels on a 3-inch axis collide
    report = text_report(fig)
    assert report["overlaps"], "crowded tick labels not reported"
    fig2, ax2 = plt.subplots()
    ax2.barh(names, range(12))  # the same labels one per row do not
    assert text_report(fig2)["overlaps"] == []


def test_tick_labels_that_run_together_are_reported():
    """Two labels on one row with no space between them read as one word ("Common CrawlWebText2", the
    GPT-3 mixture chart as first built): reported even though their boxes do not overlap."""
    names = ["Common Crawl", "WebText2", "Books1", "Books2", "Wikipedia"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.bar(range(5), [410, 19, 12, 55, 3])
    ax.set_xticks(range(5), names)
    report = text_report(fig)
    assert ("Common Crawl", "WebText2") in report["overlaps"], f"run-together labels not reported: {report}"
    ax.set_xticks(range(5), [n.replace(" ", "\n") for n in names])  # the book's fix
    assert text_report(fig)["overlaps"] == []
    plt.close(fig)


def test_figure_without_text_has_no_font():
    fig, ax = plt.subplots()
    ax.imshow([[0, 1], [1, 0]]); ax.axis("off")
    report = text_report(fig)
    assert report["min_font_pt"] is None and report["n_texts"] == 0


def test_png_carries_its_text_report():
    fig, ax = plt.subplots()
    ax.plot([1, 2]); ax.set_xlabel("x label")
    png = figure_png(fig)
    report = read_text_report(png)
    assert report["dpi"] == FIGURE_DPI and report["min_font_pt"] == pytest.approx(BOOK_STYLE["xtick.labelsize"])
    assert read_text_report(base64.b64decode(plotting._png_with_text_report(fig))) == report


def test_use_book_style_attaches_the_report_to_ipython_figures():
    """In an IPython shell a figure's image/png output (what the book saves) carries the report."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        use_book_style()
        fig, ax = plt.subplots()
        ax.plot([1, 2]); ax.set_title("t", fontsize=7)
        data, _ = shell.display_formatter.format(fig)
        report = read_text_report(base64.b64decode(data["image/png"]))
        assert report is not None, "the kernel's PNG of a figure has no text report"
        assert report["min_font_pt"] == pytest.approx(7)
    finally:
        InteractiveShell.clear_instance()


def test_use_book_style_writes_the_text_report_into_a_kernels_figures():
    """In a real Jupyter kernel (as the book build runs its pages) a figure shown after
    use_book_style() carries the text report: matplotlib-inline registers its own PNG formatter
    when the backend is selected, which used to replace ours (no report in any figure)."""
    import base64

    import nbformat
    from nbclient import NotebookClient

    from lec4.plotting import read_text_report

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfrom lec4.plotting import use_book_style\n"
                                  "use_book_style()"),
        nbformat.v4.new_code_cell("fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([1, 2, 3])\n"
                                  "ax.set_title('a title')\nax.set_xlabel('x')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600).execute()
    pngs = [o["data"]["image/png"] for o in nb.cells[1].outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1, nb.cells[1].outputs
    report = read_text_report(base64.b64decode(pngs[0]))
    assert report is not None, "the figure's PNG has no text report"
    assert report["min_font_pt"] >= 10 and report["n_texts"] > 0, report
