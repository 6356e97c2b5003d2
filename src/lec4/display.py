"""One way to show a table or a grid of numbers in the book and in notebooks.

Every function returns a :class:`Shown`, which Jupyter renders as HTML (``_repr_html_``),
so a cell ends with ``display.table(...)`` and the page shows the table, not the plumbing.
The styles use the book theme's CSS variables (pydata-sphinx-theme ``--pst-color-*``), so
text, borders and highlights follow the light and the dark theme; outside the book (plain
JupyterLab) they fall back to neutral colours.

* :func:`table` — a header and rows of cells (numbers right-aligned, text left-aligned);
* :func:`grid` — a 2-D array of numbers with padded, aligned cells;
* :func:`compare_grids` — a reference grid (a slide's) and a computed one side by side,
  the cells that differ highlighted in both, under a caption that reads as a sentence.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch

# One stylesheet, emitted with each shown object (it is small and keeps notebooks self-contained).
STYLE = """
.lec4-shown { margin: 0.4em 0 1em; max-width: 100%; overflow-x: auto; }
.lec4-shown table { border-collapse: collapse; width: auto; margin: 0; font-variant-numeric: tabular-nums;
  color: var(--pst-color-text-base, inherit); background: transparent; font-size: 0.9em; }
.lec4-shown th, .lec4-shown td { padding: 0.3em 0.7em; text-align: left; vertical-align: top;
  border: none; border-bottom: 1px solid var(--pst-color-border, #c8c8c8);
  color: var(--pst-color-text-base, inherit); background: transparent; }
.lec4-shown thead th { border-bottom: 2px solid var(--pst-color-text-muted, #888); font-weight: 600; }
.lec4-shown td.lec4-num { text-align: right; white-space: nowrap; }
.lec4-shown caption, .lec4-shown .lec4-caption { caption-side: top; text-align: left; padding: 0 0 0.4em;
  color: var(--pst-color-text-base, inherit); font-size: 0.95em; }
.lec4-grids { display: flex; flex-wrap: wrap; gap: 0.5em 2em; align-items: flex-start; }
.lec4-grid td { text-align: right; min-width: 2.4em; padding: 0.2em 0.45em;
  border: 1px solid var(--pst-color-border, #c8c8c8); font-family: var(--pst-font-family-monospace, monospace); }
.lec4-grid caption { font-weight: 600; }
.lec4-shown td.lec4-diff { background: var(--pst-color-danger-bg, #fde2e2); color: var(--pst-color-text-base, #000);
  font-weight: 700; outline: 2px solid var(--pst-color-danger, #c00); outline-offset: -2px; }

"""
_NUMBER = re.compile(r"^[-−+]?[\d.,\u2009\u202f ]*\d[\d.,\u2009\u202f ]*\s?(%|[kKMGTB]|KiB|MiB|GiB|ms|s)?$")


@dataclass(frozen=True)
class Raw:
    """A table cell already written in HTML (a link, ``<code>``): shown as is, not escaped."""

    html: str


@dataclass(frozen=True)
class Shown:
    """HTML that Jupyter displays (``_repr_html_``); ``str()`` gives the HTML too."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def _cell(value: Any) -> tuple[str, bool]:
    """(HTML of one cell, whether it is a number). ``None`` shows as "—"."""
    if isinstance(value, Raw):
        return value.html, False
    if value is None:
        return "—", False
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u202f"), True
    if isinstance(value, float):
        return _fmt(value), True
    text = str(value)
    return html.escape(text), all(_NUMBER.match(part) for part in text.split(" / "))  # "1.5 / 0.25": numbers


def _fmt(value: float) -> str:
    """A grid number: integers without decimals, others with up to 2 decimals (0.3, not 0.30000000000000004)."""
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):d}"
    return f"{value:.2f}".rstrip("0")


def _wrap(body: str, caption: str | None, kind: str = "") -> Shown:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return Shown(f'<div class="lec4-shown"><style>{STYLE}</style>'
                 f'<table class="lec4-table {kind}">{cap}{body}</table></div>')


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], caption: str | None = None) -> Shown:
    """A table: ``header`` (n names) over ``rows`` (each n cells; numbers right-aligned).

    Cells may be numbers, strings, ``None`` ("—") or :class:`Raw` HTML; everything else is escaped.
    """
    header = list(header)
    if not header:
        raise ValueError("table needs a header with at least one column name")
    bad = [(i, len(r)) for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise ValueError(f"every row needs {len(header)} cells (one per header column); "
                         f"row {bad[0][0]} has {bad[0][1]}")
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = [_cell(v) for v in row]
        body.append("<tr>" + "".join(f'<td class="lec4-num">{c}</td>' if num else f"<td>{c}</td>"
                                     for c, num in cells) + "</tr>")
    return _wrap(f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>", caption)


def _as_grid(values: Any, name: str) -> torch.Tensor:
    grid_values = torch.as_tensor(values).detach().cpu().to(torch.float64)
    if grid_values.dim() != 2:
        raise ValueError(f"{name} must be a 2-D grid (H, W); got shape {tuple(grid_values.shape)}")
    return grid_values


def _grid_table(values: torch.Tensor, caption: str | None, differ: torch.Tensor | None) -> str:
    rows = []
    for i, row in enumerate(values.tolist()):
        cells = []
        for j, v in enumerate(row):
            cls = ' class="lec4-diff"' if differ is not None and bool(differ[i, j]) else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="lec4-table lec4-grid">{cap}<tbody>{"".join(rows)}</tbody></table>'


def code(text: str) -> Raw:
    """A table cell shown as code (``<code>``, escaped): identifiers, layer reprs."""
    return Raw(f"<code>{html.escape(str(text))}</code>")


def grid(values: Any, caption: str | None = None) -> Shown:

    """A 2-D grid of numbers (H, W), one padded, right-aligned cell per value."""
    body = _grid_table(_as_grid(values, "values"), caption, None)
    return Shown(f'<div class="lec4-shown"><style>{STYLE}</style>{body}</div>')


def compare_grids(reference: Any, computed: Any, caption: str, labels: Sequence[str] = ("slide", "computed"),
                  atol: float = 1e-9) -> Shown:
    """``reference`` (H, W) and ``computed`` (H, W) side by side; differing cells highlighted in both.

    ``caption`` starts the sentence under which both grids stand; the count of differing
    cells completes it ("… : 4 of 49 cells differ (highlighted).").
    """
    reference, computed = _as_grid(reference, "reference"), _as_grid(computed, "computed")
    if reference.shape != computed.shape:
        raise ValueError(f"the grids must have the same shape; got {tuple(reference.shape)} "
                         f"and {tuple(computed.shape)}")
    if len(labels) != 2:
        raise ValueError(f"labels must name the two grids, e.g. ('slide', 'computed'); got {labels!r}")
    differ = (reference - computed).abs() > atol
    n = int(differ.sum())
    verdict = (f"all {differ.numel()} cells agree." if n == 0 else
               f"{n} of {differ.numel()} cells differ (highlighted).")
    sentence = f"{caption.rstrip('.:; ')}: {verdict}"
    grids = "".join(_grid_table(g, label, differ) for g, label in zip((reference, computed), labels))
    return Shown(f'<div class="lec4-shown"><style>{STYLE}</style>'
                 f'<p class="lec4-caption">{html.escape(sentence)}</p>'
                 f'<div class="lec4-grids">{grids}</div></div>')
