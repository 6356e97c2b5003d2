"""lec4.display: the one way the book shows tables and grids (parsed back with html.parser)."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest
import torch

from lec4 import display


class Cells(HTMLParser):
    """Collects, per table, its caption, header cells and body cells as (text, class) pairs."""

    def __init__(self):
        super().__init__()
        self.tables, self.paragraphs, self._stack, self._text = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"caption": None, "th": [], "rows": [], "class": attrs.get("class", "")})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        if tag in ("td", "th", "caption", "p"):
            self._stack.append((tag, attrs.get("class", "")))
            self._text = ""

    def handle_data(self, data):
        if self._text is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag in ("td", "th", "caption", "p") and self._stack:
            kind, cls = self._stack.pop()
            text, self._text = self._text, None
            if kind == "caption":
                self.tables[-1]["caption"] = text
            elif kind == "th":
                self.tables[-1]["th"].append(text)
            elif kind == "td":
                self.tables[-1]["rows"][-1].append((text, cls))
            else:
                self.paragraphs.append(text)


def parse(shown) -> Cells:
    parser = Cells()
    parser.feed(shown._repr_html_())
    return parser


def test_table_cells_escaped_numbers_right_aligned():
    shown = display.table([["<b>x</b>", 12288, 0.25, None, display.Raw('<a href="#s">GQA</a>')]],
                          header=["name", "d", "p", "missing", "link"], caption="A caption.")
    parsed = parse(shown)
    (t,) = parsed.tables
    assert t["caption"] == "A caption."
    assert t["th"] == ["name", "d", "p", "missing", "link"]
    (row,) = [r for r in t["rows"] if r]
    texts = [c[0] for c in row]
    assert texts == ["<b>x</b>", "12\u202f288", "0.25", "—", "GQA"]      # the <b> was escaped, shown literally
    assert [c[1] for c in row] == ["", "lec4-num", "lec4-num", "", ""]
    assert '<a href="#s">GQA</a>' in str(shown) and "&lt;b&gt;" in str(shown)


def test_pairs_of_numbers_are_numbers_text_is_not():
    (t,) = parse(display.table([["1.50 / 0.25", "(2, 0)", "12 MiB", "GQA / MQA"]], header="abcd")).tables
    assert [c[1] for c in t["rows"][-1]] == ["lec4-num", "", "lec4-num", ""]


def test_code_cells_are_escaped_code():
    assert display.code("Conv(c_in=3) <x>").html == "<code>Conv(c_in=3) &lt;x&gt;</code>"


def test_table_rejects_ragged_rows():

    with pytest.raises(ValueError, match="every row needs 3 cells.*row 1 has 2"):
        display.table([[1, 2, 3], [1, 2]], header=["a", "b", "c"])
    with pytest.raises(ValueError, match="header"):
        display.table([], header=[])


def test_grid_values_formatted_one_per_cell():
    values = torch.tensor([[0.1 + 0.2, 1.0], [-0.5, 2.25]])
    (t,) = parse(display.grid(values, caption="g")).tables
    assert [[c[0] for c in r] for r in t["rows"]] == [["0.3", "1"], ["-0.5", "2.25"]]
    with pytest.raises(ValueError, match=r"2-D grid \(H, W\); got shape \(2, 2, 1\)"):
        display.grid(values[..., None])


def test_compare_grids_highlights_exactly_the_differing_cells():
    slide = torch.tensor([[0.0, 0.2, 0.1], [0.5, 0.4, 0.6]])
    computed = slide.clone()
    computed[0, 1], computed[1, 2] = 0.3, 0.2
    parsed = parse(display.compare_grids(slide, computed, "Blurring, no flip"))
    assert parsed.paragraphs == ["Blurring, no flip: 2 of 6 cells differ (highlighted)."]
    left, right = parsed.tables
    assert (left["caption"], right["caption"]) == ("slide", "computed")
    for t, source in [(left, slide), (right, computed)]:
        marked = {(i, j) for i, r in enumerate(t["rows"]) for j, c in enumerate(r) if "lec4-diff" in c[1]}
        assert marked == {(0, 1), (1, 2)}
        assert [float(c[0]) for r in t["rows"] for c in r] == pytest.approx(source.flatten().tolist(), abs=1e-6)
    agree = parse(display.compare_grids(slide, slide, "Identity."))
    assert agree.paragraphs == ["Identity: all 6 cells agree."]


def test_compare_grids_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape; got \(2, 3\) and \(3, 2\)"):
        display.compare_grids(torch.zeros(2, 3), torch.zeros(3, 2), "x")


def test_styles_follow_the_theme_variables():
    css = display.STYLE
    for variable in ["--pst-color-text-base", "--pst-color-border", "--pst-color-danger"]:
        assert f"var({variable}" in css
    assert "--pst-color-danger-text" not in css  # the text on a solid danger fill: white in the light theme
