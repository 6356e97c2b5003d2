"""lec4.diagrams.attention draws what lec4 computes: the data behind each diagram (and the data read back
from the drawn artists) is checked against lec4's caches, masks and rotations and against independent
references (PyTorch's grouped SDPA, complex multiplication, the lecture's definitions), not pixels."""
from __future__ import annotations

import cmath
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from lec4 import attention  # noqa: E402
from lec4.diagrams import attention as diagrams  # noqa: E402
from lec4.transformer import RollingBufferCache  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def cell_colors(ax):
    """{(x, y) centre: face colour} of the filled cells an axes drew."""
    return {(round(p.get_x() + p.get_width() / 2, 2), round(p.get_y() + p.get_height() / 2, 2)): p.get_facecolor()
            for p in ax.patches if isinstance(p, Rectangle) and p.get_fill()}


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("t", [1, 2, 5, 9])
def test_kv_step_follows_the_lecture(t):
    """Earlier keys/values reused, the new ones cached; query, scores and weights used once and dropped."""
    step = diagrams.kv_cache_step(t)
    assert step.roles["k"] == step.roles["v"] == ("reused",) * (t - 1) + ("new, cached",)
    assert step.roles["q"] == (None,) * (t - 1) + ("discarded",)
    assert step.roles["s"] == step.roles["a"] == ("discarded",) * t     # one score per key: all t are read


def test_kv_step_drawing_shows_the_roles():
    t = 4
    _, ax = plt.subplots()
    step = diagrams.draw_kv_cache_step(t, ax)
    colors = cell_colors(ax)
    assert len(colors) == len(diagrams.KV_ROWS) * t
    for row, name in enumerate(diagrams.KV_ROWS):
        y = len(diagrams.KV_ROWS) - 1 - row
        for j, role in enumerate(step.roles[name], start=1):
            expected = matplotlib.colors.to_rgba(diagrams.ROLE_COLORS[role] if role else diagrams.EMPTY)
            assert colors[(j, y)] == expected, (name, j)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["reused", "new, cached", "discarded"]


def test_kv_step_rejects_bad_t():
    with pytest.raises(ValueError, match="t must be an int >= 1"):
        diagrams.kv_cache_step(0)


# ----------------------------------------------------------------------------- rolling buffer
def test_growing_cache_timeline_keeps_everything():
    timeline = diagrams.cache_timeline(6)
    assert timeline.slots == tuple(tuple(range(t + 1)) for t in range(6))
    assert timeline.written == tuple(range(6))
    assert timeline.read == tuple(tuple(range(t + 1)) for t in range(6))


@pytest.mark.parametrize("W", [1, 3, 4])
def test_rolling_timeline_is_slot_i_mod_W_and_reads_the_window(W):
    n = 11
    timeline = diagrams.cache_timeline(n, W)
    w = attention.lecture_w_from_mistral(W) if W >= 2 else None
    for t in range(n):
        assert timeline.written[t] == t % W                                # Mistral: position i in slot i mod W
        assert sorted(p for p in timeline.slots[t] if p >= 0) == list(range(max(0, t - W + 1), t + 1))
        if w is not None:                                                  # what the query reads = the lecture's window
            allowed = attention.sliding_window_mask(n, w)[t].nonzero().flatten().tolist()
            assert list(timeline.read[t]) == allowed
    cache = RollingBufferCache(W)                                          # same slots as the cache itself
    for t in range(n):
        cache.update(torch.full((1, 1, 1, 1), float(t)), torch.zeros(1, 1, 1, 1), torch.tensor([t]))
    assert tuple(cache.positions.tolist()) == timeline.slots[-1]


def test_rolling_timeline_drawing_prints_the_slots():
    _, ax = plt.subplots()
    timeline = diagrams.draw_cache_timeline(7, 3, ax)
    drawn = {(round(text.get_position()[1]), round(text.get_position()[0])): int(text.get_text()) for text in ax.texts}
    expected = {(t, slot): p for t, held in enumerate(timeline.slots) for slot, p in enumerate(held) if p >= 0}
    assert drawn == expected
    green = matplotlib.colors.to_rgba(diagrams.ROLE_COLORS["new, cached"])
    written = sorted((round(y), round(x)) for (x, y), c in cell_colors(ax).items() if c == green)
    assert written == [(t, t % 3) for t in range(7)]


# ----------------------------------------------------------------------------- GQA
def kv_head_read(h_q: int, h_kv: int, attend) -> list[int]:
    """Which key/value head each query head reads, found by running attention: value head i holds the
    constant i, so every output of a query head equals the index of the head it read."""
    T, D = 3, 4
    q, k = torch.randn(1, h_q, T, D), torch.randn(1, h_kv, T, D)
    v = torch.arange(h_kv, dtype=torch.float32)[None, :, None, None].expand(1, h_kv, T, D).contiguous()
    out = attend(q, k, v)
    assert torch.allclose(out, out[..., :1, :1].expand_as(out), atol=1e-6)
    return out[0, :, 0, 0].round().long().tolist()


@pytest.mark.parametrize("h_q,h_kv", [(8, 8), (8, 2), (8, 1), (6, 3), (71, 1), (12, 4)])
def test_gqa_groups_are_the_heads_attention_reads(h_q, h_kv):
    groups = list(diagrams.gqa_groups(h_q, h_kv))
    assert groups == kv_head_read(h_q, h_kv, attention.gqa_attention_loop)
    assert groups == kv_head_read(h_q, h_kv, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    g = h_q // h_kv                                                    # the lecture's Q^(i,j): group i, member j
    assert all(groups[i * g + j] == i for i in range(h_kv) for j in range(g))


def test_gqa_drawing_joins_each_query_to_its_group():
    for h_q, h_kv in [(8, 8), (8, 2), (8, 1)]:
        _, ax = plt.subplots()
        groups = diagrams.draw_gqa(h_q, h_kv, ax)
        lines = ax.get_lines()
        assert len(lines) == h_q
        x_kv = [(h_q - 1) * (i + 0.5) / h_kv for i in range(h_kv)]
        for h, line in enumerate(lines):
            (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
            assert (x0, y0, y1) == (h, 1.0, 0.0)
            assert x1 == pytest.approx(x_kv[groups[h]])
        assert ax.get_title().startswith(diagrams.attention_name(h_q, h_kv))
    assert [diagrams.attention_name(8, h) for h in (8, 2, 1)] == ["MHA", "GQA", "MQA"]


def test_gqa_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        diagrams.gqa_groups(6, 4)


# ----------------------------------------------------------------------------- sliding window
@pytest.mark.parametrize("T,w", [(24, 8), (26, 8), (7, 4), (3, 8), (40, 6), (1, 2)])
def test_chunks_cover_the_window(T, w):
    """Both chunkings cover every allowed (query, key) pair; square chunks are w × w and overlap by w/2."""
    mask = attention.sliding_window_mask(T, w)
    squares = diagrams.square_chunks(T, w)
    covered = torch.zeros(T, T, dtype=torch.bool)
    for start, stop in squares:
        covered[start:stop, start:stop] = True
    assert (covered | ~mask).all()
    assert all(stop - start == w for start, stop in squares[:-1])
    assert all(b[0] - a[0] == w // 2 for a, b in zip(squares, squares[1:]))      # overlap w − w/2 = w/2
    covered[:] = False
    for (qs, qe), (ks, ke) in diagrams.query_blocks(T, w):
        covered[qs:qe, ks:ke] = True
        assert qe - qs <= w // 2 and ke - ks <= w
    assert (covered | ~mask).all()


def test_each_query_sees_half_w_plus_one_keys():
    T, w = 20, 6
    rows = attention.sliding_window_mask(T, w).sum(1).tolist()
    assert rows == [min(t + 1, w // 2 + 1) for t in range(T)]


def test_window_work_counts():
    T, w = 24, 8
    work = diagrams.window_work(T, w)
    assert work["band"] == sum(min(t + 1, w // 2 + 1) for t in range(T))
    assert work["full"] == T * T
    assert work["square_chunks"] == 5 * w * w                                  # 5 blocks of 8 × 8
    # unclipped, the query blocks are exactly what lec4 says the sliding-chunks algorithm scores
    T, w = 4096, 512
    work = diagrams.window_work(T, w)
    padded = work["query_blocks"] + (w // 2) ** 2                              # the first block's missing left half
    assert padded == attention.chunked_score_count(1, 1, T, w)
    assert 1.9 < work["query_blocks"] / work["band"] < 2.1                     # about twice the band
    assert 3.7 < work["square_chunks"] / work["band"] < 4.1                    # about four times the band


@pytest.mark.parametrize("chunks", [None, "square", "blocks"])
def test_window_drawing_shows_the_mask_and_chunks(chunks):
    T, w = 16, 6
    _, ax = plt.subplots()
    drawn = diagrams.draw_sliding_window(T, w, chunks, ax)
    shown = torch.as_tensor(ax.images[0].get_array()).bool()
    assert torch.equal(shown, attention.sliding_window_mask(T, w)) and torch.equal(drawn.mask, shown)
    assert sum(t.get_text() == "1" for t in ax.texts) == int(shown.sum())
    outlines = [(round(p.get_x() + 0.5), round(p.get_y() + 0.5), round(p.get_width()), round(p.get_height()))
                for p in ax.patches if not p.get_fill()]
    assert outlines == list(drawn.outlines)
    expected = {None: [], "square": [(s, s, e - s, e - s) for s, e in diagrams.square_chunks(T, w)],
                "blocks": [(ks, qs, ke - ks, qe - qs) for (qs, qe), (ks, ke) in diagrams.query_blocks(T, w)]}
    assert outlines == expected[chunks]


def test_causal_drawing_and_bad_chunks():
    _, ax = plt.subplots()
    drawn = diagrams.draw_sliding_window(5, None, ax=ax)
    assert torch.equal(drawn.mask, torch.ones(5, 5, dtype=torch.bool).tril())
    with pytest.raises(ValueError, match="chunks must be"):
        diagrams.draw_sliding_window(5, 2, "diagonal")
    with pytest.raises(ValueError, match="even integer"):
        diagrams.square_chunks(5, 3)


# ----------------------------------------------------------------------------- RoPE on one pair
def test_rope_pairs_rotate_like_complex_numbers():
    q, k, theta = [1.0, 0.3], [0.8, -0.5], 0.35
    for pair in diagrams.rope_pairs(q, k, theta, [(2, 0), (5, 3), (6, 1), (0, 4)]):
        zq = complex(*q) * cmath.exp(1j * pair.m * theta)
        zk = complex(*k) * cmath.exp(1j * pair.n * theta)
        assert complex(*pair.q.tolist()) == pytest.approx(zq)
        assert complex(*pair.k.tolist()) == pytest.approx(zk)
        assert pair.score == pytest.approx((zq * zk.conjugate()).real)        # q·k = Re(z_q conj(z_k))
        expected = abs(zq) * abs(zk) * math.cos(cmath.phase(complex(*q)) - cmath.phase(complex(*k))
                                                 + (pair.m - pair.n) * theta)
        assert pair.score == pytest.approx(expected)                           # depends on m − n only


def test_rope_drawing_draws_the_rotated_vectors():
    positions = [(2, 0), (5, 3), (6, 1)]
    fig, axes = plt.subplots(1, 3)
    pairs = diagrams.draw_rope_pairs([1.0, 0.3], [0.8, -0.5], 0.35, positions, axes)
    for ax, pair in zip(axes, pairs):
        tips = [a.xy for a in ax.texts if hasattr(a, "arrow_patch") and a.arrow_patch is not None]
        assert tips == [pytest.approx(tuple(pair.q.tolist())), pytest.approx(tuple(pair.k.tolist()))]
    assert pairs[0].score == pytest.approx(pairs[1].score) and pairs[0].score != pytest.approx(pairs[2].score)
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        diagrams.rope_pairs([1.0, 0.0, 0.0], [1.0, 0.0], 0.1, [(0, 0)])
