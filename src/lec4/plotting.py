"""One figure style for the whole book, the few plot types it repeats, and a text report per figure.

Readable text. A figure in the book is a PNG shown at most as wide as the text column; a
wider PNG is shrunk to fit. A text of ``font_pt`` points in a figure saved at ``dpi`` is
``font_pt * dpi / 72`` pixels high in the PNG, and on screen::

    rendered px = font_pt * dpi / 72 * displayed width / natural width      (rendered_text_px)

The style below keeps every text at least :data:`MIN_TEXT_PX` CSS pixels high for any
figure up to :data:`MAX_FIGURE_WIDTH_IN` inches wide shown in the theme's text column
(:data:`BOOK_COLUMN_PX`, measured in the browser test at its 1280 px window).

Checked, not hoped for. In a Jupyter kernel :func:`use_book_style` makes every figure's PNG
carry a *text report* in its metadata (``lec4-text``: the dpi, the smallest font drawn, the
pairs of texts that overlap), measured from what matplotlib actually drew. The browser test
reads it back from each image of the built site and checks the size at the image's displayed
width and that no texts overlap (tick labels, titles, labels, legends, annotations).
"""
from __future__ import annotations

import base64
import io
import json
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import torch

# Width in CSS px of the book's text column (sphinx-book-theme, 1280 px wide window, the test's
# viewport); tests/test_browser.py fails if the built site's column is narrower than this.
BOOK_COLUMN_PX = 680
# Smallest rendered text height we accept, in CSS px (about a 7.5 pt font on a 96 dpi screen).
MIN_TEXT_PX = 10.0
# Figures are drawn at this dpi; a figure up to MAX_FIGURE_WIDTH_IN wide keeps every text of the
# style >= MIN_TEXT_PX when shrunk to the column (tests/test_plotting.py checks the arithmetic).
FIGURE_DPI = 100
MAX_FIGURE_WIDTH_IN = 9.0
# The PNG metadata key of the text report (tEXt chunk, JSON).
TEXT_REPORT_KEY = "lec4-text"

BOOK_STYLE = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": FIGURE_DPI,
    "savefig.dpi": FIGURE_DPI,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10.5,
    "ytick.labelsize": 10.5,
    "legend.fontsize": 10.5,
    "legend.title_fontsize": 10.5,
    "figure.titlesize": 12.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": True,   # a legend drawn over lines stays readable
    "legend.framealpha": 0.9,
    "image.cmap": "viridis",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}
# the smallest font the style itself sets (points)
STYLE_MIN_FONT_PT = min(BOOK_STYLE[k] for k in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                                                "ytick.labelsize", "legend.fontsize", "legend.title_fontsize"))


def rendered_text_px(font_pt: float, dpi: float, natural_width: float, displayed_width: float) -> float:
    """Height in CSS px of a ``font_pt`` text of a PNG saved at ``dpi``, ``natural_width`` px wide,
    shown ``displayed_width`` px wide."""
    if natural_width <= 0 or dpi <= 0:
        raise ValueError(f"natural_width and dpi must be positive, got {natural_width} and {dpi}")
    return font_pt * dpi / 72.0 * displayed_width / natural_width


def min_font_pt(figure_width_in: float, column_px: float = BOOK_COLUMN_PX, dpi: float = FIGURE_DPI,
                min_px: float = MIN_TEXT_PX) -> float:
    """The smallest font (points) that stays >= ``min_px`` for a figure ``figure_width_in`` wide
    shown in a ``column_px`` column (a figure narrower than the column is shown at its own size)."""
    natural = figure_width_in * dpi
    return min_px / rendered_text_px(1.0, dpi, natural, min(natural, column_px))


def use_book_style() -> None:
    """Apply the book's matplotlib style; in a Jupyter kernel also attach the text report to every PNG.

    Call once at the top of a page, after importing pyplot.
    """
    matplotlib.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: only the style
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    # matplotlib selects its backend on the first figure, and matplotlib-inline then registers its
    # own PNG formatter for Figure, replacing one registered before: select it now, then register
    plt.close(plt.figure())
    shell.display_formatter.formatters["image/png"].for_type(Figure, _png_with_text_report)


def drawn_texts(fig) -> list[dict]:
    """Every text matplotlib draws for ``fig``: its string, font size (pt) and box (px, at fig.dpi).

    Measured by drawing the figure with a renderer that records each ``draw_text`` call, so
    tick labels outside the view, invisible or empty texts are not counted.
    """
    fig.canvas.draw()  # lay out first (tight_layout, tick locations)
    renderer = fig.canvas.get_renderer()
    seen: dict[int, tuple] = {}
    original = renderer.draw_text

    def recording(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None and str(s).strip():
            seen.setdefault(id(mtext), (mtext, prop.get_size_in_points()))
        return original(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = recording
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text  # back to the class's method
    texts = []
    for mtext, size in seen.values():
        box = mtext.get_window_extent(renderer)
        texts.append({"text": mtext.get_text(), "size_pt": float(size),
                      "box": [float(box.x0), float(box.y0), float(box.x1), float(box.y1)]})
    return texts


# Two texts on one row closer than this fraction of their font size (about a space) read as one
# word: "Common CrawlWebText2", two tick labels whose boxes touch without overlapping.
MIN_WORD_GAP_EM = 0.25


def overlapping_texts(texts: list[dict], tolerance_px: float = 1.0, dpi: float = 100.0) -> list[tuple[str, str]]:
    """Pairs of texts (from :func:`drawn_texts`, boxes in px at ``dpi``) that collide: their boxes
    overlap by more than ``tolerance_px`` both ways, or they share a row and the gap between them
    is under ``MIN_WORD_GAP_EM`` of the smaller font size (they run together)."""
    pairs = []
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["box"], b["box"]
            dx = min(ax1, bx1) - max(ax0, bx0)  # > 0: overlap, < 0: minus the gap
            dy = min(ay1, by1) - max(ay0, by0)
            min_gap_px = MIN_WORD_GAP_EM * min(a["size_pt"], b["size_pt"]) * dpi / 72
            if dy > tolerance_px and dx > -min_gap_px:
                pairs.append((a["text"], b["text"]))
    return pairs


def text_report(fig) -> dict:
    """What the browser test needs to judge a figure's text: dpi, smallest font (None if no text),
    overlapping pairs, number of texts."""
    texts = drawn_texts(fig)
    return {"dpi": float(fig.dpi), "min_font_pt": min((t["size_pt"] for t in texts), default=None),
            "n_texts": len(texts), "overlaps": overlapping_texts(texts, dpi=float(fig.dpi))}


def figure_png(fig) -> bytes:
    """The figure as the book shows it: a PNG at the figure's dpi, tight box, with its text report."""
    report = text_report(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight",
                metadata={TEXT_REPORT_KEY: json.dumps(report)})
    return buffer.getvalue()


def read_text_report(png: bytes) -> dict | None:
    """The text report stored in a PNG by :func:`figure_png` (None if it has none)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        raw = image.info.get(TEXT_REPORT_KEY)
    return None if raw is None else json.loads(raw)


def _png_with_text_report(fig) -> str:
    # IPython's image/png formatter: base64 text, as matplotlib-inline returns it
    return base64.b64encode(figure_png(fig)).decode("ascii")


def show_images(images: torch.Tensor | Sequence[torch.Tensor], titles: Sequence[str] | None = None,
                ncols: int = 8, cmap: str = "gray", scale: float = 1.2, symmetric: bool = False):
    """Show a grid of 2-D images (each (H, W), or (1, H, W)); returns the figure.

    ``symmetric`` centres the colour map on 0 (for filters and signed feature maps). Titles use
    the style's tick-label size, so keep them short.
    """
    images = [torch.as_tensor(im).detach().cpu().squeeze() for im in images]
    if not images:
        raise ValueError("show_images needs at least one image")
    bad = [tuple(im.shape) for im in images if im.dim() != 2]
    if bad:
        raise ValueError(f"each image must be (H, W) or (1, H, W); got shapes {bad[:3]}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, im) in enumerate(zip(axes.flat, images)):
        if symmetric:
            vmax = float(im.abs().max()) or 1.0
            ax.imshow(im, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        else:
            ax.imshow(im, cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=matplotlib.rcParams["xtick.labelsize"])
    fig.tight_layout()
    return fig


def plot_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
                title: str | None = None, logy: bool = False, ax=None, legend_loc: str = "best"):
    """Line plot of named (x, y) series; returns the axes."""
    if not curves:
        raise ValueError("plot_curves needs at least one series")
    if ax is None:
        _, ax = plt.subplots()
    for label, (xs, ys) in curves.items():
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r}: {len(xs)} x values but {len(ys)} y values")
        ax.plot(xs, ys, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(loc=legend_loc)
    return ax
