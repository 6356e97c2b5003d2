"""Diagrams of the Modern Transformers chapter: the KV cache, the rolling buffer, GQA's grouping, the
sliding window with its chunks, and RoPE's rotation of one pair of coordinates.

Each diagram has two halves. A *data* function computes what is drawn from lec4's own code: the
caches of :mod:`lec4.transformer`, the head grouping of :mod:`lec4.attention`, the window mask of
:func:`lec4.attention.sliding_window_mask`, the rotation of :func:`lec4.rope.rotation_matrix`. A ``draw_*``
function draws exactly that data with matplotlib and returns it, so the tests check the data a picture
shows (and read it back from the artists), not pixels. Text sizes follow the book's style
(:mod:`lec4.plotting`); legends sit outside the data.

Positions are 0-based as in the code, except in :func:`kv_cache_step`, which numbers tokens 1 … t
as the chapter's formulas do.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Patch, Rectangle

from lec4 import attention, rope
from lec4.transformer import KVCache, RollingBufferCache

# One colour per role, the same in every diagram (Okabe-Ito, readable for colour-blind readers).
ROLE_COLORS = {
    "reused": "#56B4E9",         # read from the cache, computed at an earlier step
    "new, cached": "#009E73",    # computed at this step and kept for later steps
    "discarded": "#E69F00",      # computed at this step, used once, dropped
}
EMPTY = "#F2F2F2"
GROUP_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"]


def _axes(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _legend_below(ax, roles, ncol=None):
    handles = [Patch(facecolor=ROLE_COLORS[r], edgecolor="0.3", label=r) for r in roles]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=ncol or len(handles),
              frameon=False, handlelength=1.2, columnspacing=1.2)


def _check_positive(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _token(position: int):
    """A one-token key and value (1, 1, 1, 1) holding its own position: the cache's content is readable."""
    kv = torch.full((1, 1, 1, 1), float(position))
    return kv, kv.clone(), torch.tensor([position])


# ----------------------------------------------------------------------------- the KV cache, one step
KV_ROWS = ("q", "k", "v", "s", "a")
KV_ROW_NAMES = {"q": "query", "k": "keys", "v": "values", "s": "scores", "a": "weights"}


@dataclass(frozen=True)
class KVStep:
    """Decoding step t (tokens 1 … t): for each row of :data:`KV_ROWS`, the role of each position 1 … t
    (a key of :data:`ROLE_COLORS`, or None where the quantity does not exist at this step)."""
    t: int
    roles: dict[str, tuple[str | None, ...]]


def kv_cache_step(t: int) -> KVStep:
    """What step t of generation reads from the cache, computes, keeps and drops.

    Runs :class:`lec4.transformer.KVCache` through steps 1 … t − 1, then step t: the keys and values the
    cache held before the step are *reused*, the ones it holds after it and not before are *new, cached*.
    The step computes one query q_t, one score s_{t,j} and one weight a_{t,j} per key it reads: none of
    them is stored in the cache, so all are *discarded* once the step's output is computed.
    """
    _check_positive("t", t)
    cache = KVCache()
    for j in range(1, t):
        cache.update(*_token(j))
    before = set() if cache.positions is None else set(cache.positions.tolist())
    _, _, read = cache.update(*_token(t))
    after = set(cache.positions.tolist())
    read = set(read.tolist())
    kv = tuple("reused" if j in before else "new, cached" if j in after else "discarded" for j in range(1, t + 1))
    once = tuple("discarded" if j in read else None for j in range(1, t + 1))
    query = tuple(None for _ in range(1, t)) + ("discarded",)
    return KVStep(t, {"q": query, "k": kv, "v": kv, "s": once, "a": once})


def draw_kv_cache_step(t: int = 5, ax=None) -> KVStep:
    """The lecture's KV-cache picture for step t: one column per token 1 … t, one row per quantity,
    coloured by :func:`kv_cache_step`'s roles (legend below the grid). Returns the drawn step."""
    step = kv_cache_step(t)
    ax = _axes(ax, (min(1.0 + 0.8 * t, 6.4), 3.2))
    for row, name in enumerate(KV_ROWS):
        for j, role in enumerate(step.roles[name], start=1):
            y = len(KV_ROWS) - 1 - row
            color = ROLE_COLORS[role] if role else EMPTY
            ax.add_patch(Rectangle((j - 0.45, y - 0.4), 0.9, 0.8, facecolor=color, edgecolor="0.3", lw=0.8))
            if role:
                label = {"q": f"$q_{{{t}}}$", "k": f"$k_{{{j}}}$", "v": f"$v_{{{j}}}$",
                         "s": f"$s_{{{t},{j}}}$", "a": f"$a_{{{t},{j}}}$"}[name]
                ax.text(j, y, label, ha="center", va="center", fontsize=9)
    ax.set_xlim(0.4, t + 0.6)
    ax.set_ylim(-0.6, len(KV_ROWS) - 0.4)
    ax.set_yticks(range(len(KV_ROWS)), [KV_ROW_NAMES[r] for r in reversed(KV_ROWS)])
    ax.set_xticks(range(1, t + 1))
    ax.xaxis.tick_top()
    ax.set_xlabel(f"token position (step {t} generates the token after position {t})", labelpad=6)
    ax.xaxis.set_label_position("top")
    ax.tick_params(length=0)
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    _legend_below(ax, ["reused", "new, cached", "discarded"])
    return step


# ----------------------------------------------------------------------------- full cache vs rolling buffer
@dataclass(frozen=True)
class CacheTimeline:
    """Positions 0 … n − 1 decoded one per step. ``slots[t]``: the position held by each cache slot after
    step t (−1: empty); ``written[t]``: the slot step t wrote; ``read[t]``: the key positions step t attended to.
    ``W`` is None for the growing cache (slot i holds position i)."""
    W: int | None
    slots: tuple[tuple[int, ...], ...]
    written: tuple[int, ...]
    read: tuple[tuple[int, ...], ...]


def cache_timeline(n_steps: int, W: int | None = None) -> CacheTimeline:
    """Run :class:`lec4.transformer.KVCache` (``W=None``) or :class:`~lec4.transformer.RollingBufferCache`
    (``W`` slots, position i in slot i mod W) for ``n_steps`` one-token steps and record its slots."""
    _check_positive("n_steps", n_steps)
    if W is not None:
        _check_positive("W", W)
    cache = KVCache() if W is None else RollingBufferCache(W)
    slots, written, read = [], [], []
    for t in range(n_steps):
        _, _, keys = cache.update(*_token(t))       # the buffer hands attention its W slots plus the new key
        held = cache.positions.tolist()
        slots.append(tuple(held))
        written.append(held.index(t))
        # what the query attends to after the window mask (lec4.transformer.Attention): keys t − W + 1 … t
        read.append(tuple(sorted(p for p in keys.tolist() if W is None or t - p < W)))
    return CacheTimeline(W, tuple(slots), tuple(written), tuple(read))


def draw_cache_timeline(n_steps: int = 10, W: int | None = None, ax=None) -> CacheTimeline:
    """One row per step t, one column per cache slot, each cell the position the slot holds after the step:
    green where step t wrote, blue where the slot keeps an earlier position. Returns the drawn timeline."""
    timeline = cache_timeline(n_steps, W)
    n_slots = n_steps if W is None else W
    ax = _axes(ax, (0.45 * n_slots + 1.2, 0.32 * n_steps + 1.2))
    for t, (held, slot_written) in enumerate(zip(timeline.slots, timeline.written)):
        for slot in range(n_slots):
            position = held[slot] if slot < len(held) else -1
            role = None if position < 0 else "new, cached" if slot == slot_written else "reused"
            ax.add_patch(Rectangle((slot - 0.45, t - 0.42), 0.9, 0.84, facecolor=ROLE_COLORS[role] if role else EMPTY,
                                   edgecolor="0.3", lw=0.6))
            if role:
                ax.text(slot, t, str(position), ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.6, n_slots - 0.4)
    ax.set_ylim(n_steps - 0.5, -0.5)
    ax.set_xticks(range(n_slots))
    ax.set_yticks(range(n_steps))
    ax.set_xlabel("cache slot")
    ax.set_ylabel("step (position written)")
    ax.tick_params(length=0)
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title("growing KV cache" if W is None else f"rolling buffer, W = {W}")
    return timeline


# ----------------------------------------------------------------------------- grouped-query attention
def gqa_groups(h_q: int, h_kv: int) -> tuple[int, ...]:
    """The key/value head each query head reads: head h reads head ⌊h / g⌋, g = h_q / h_kv
    (:func:`lec4.attention.group_size` checks that h_kv divides h_q)."""
    g = attention.group_size(h_q, h_kv)
    return tuple(h // g for h in range(h_q))


def draw_gqa(h_q: int, h_kv: int, ax=None, title: str | None = None, labels: bool = True) -> tuple[int, ...]:
    """Query heads (top row) joined to the key/value head they share (bottom row), one colour per group,
    as in Ainslie et al.'s Figure 2 (``labels``: name the rows). Returns the drawn grouping, :func:`gqa_groups`."""
    groups = gqa_groups(h_q, h_kv)
    ax = _axes(ax, (3.2, 2.2))
    x_q = [i for i in range(h_q)]
    x_kv = [(h_q - 1) * (i + 0.5) / h_kv for i in range(h_kv)]      # spread under the queries
    for h, kv in enumerate(groups):
        color = GROUP_COLORS[kv % len(GROUP_COLORS)]
        ax.plot([x_q[h], x_kv[kv]], [1.0, 0.0], color=color, lw=1.4, zorder=1)
        ax.add_patch(Rectangle((x_q[h] - 0.35, 0.95), 0.7, 0.35, facecolor=color, edgecolor="0.2", zorder=2))
    width = min(0.9, 0.75 * (h_q - 1) / h_kv)                         # boxes never touch
    for i in range(h_kv):
        color = GROUP_COLORS[i % len(GROUP_COLORS)]
        ax.add_patch(Rectangle((x_kv[i] - width / 2, -0.35), width, 0.35, facecolor="white", edgecolor=color, lw=2.2,
                               zorder=2))
    if labels:
        ax.text(-0.7, 1.12, "query\nheads", ha="right", va="center", fontsize=9)
        ax.text(-0.7, -0.17, "key/value\nheads", ha="right", va="center", fontsize=9)
    ax.set_xlim(-0.6, h_q - 0.4)
    ax.set_ylim(-0.5, 1.45)
    ax.axis("off")
    ax.set_title(title or f"{attention_name(h_q, h_kv)}: $h_q$ = {h_q}, $h_{{kv}}$ = {h_kv}")
    return groups


def attention_name(h_q: int, h_kv: int) -> str:
    """MHA (h_kv = h_q), MQA (h_kv = 1) or GQA (in between)."""
    g = attention.group_size(h_q, h_kv)
    return "MHA" if g == 1 else "MQA" if h_kv == 1 else "GQA"


# ----------------------------------------------------------------------------- sliding window and its chunks
def square_chunks(T: int, w: int) -> list[tuple[int, int]]:
    """The lecture's sliding chunks: w × w blocks [s, s + w) on the diagonal, s = 0, w/2, w, …, overlapping
    by w/2, as many as needed to reach position T − 1 (the last one clipped at T). Queries s + w/2 … s + w − 1
    find every key of their window inside the block that starts at s."""
    attention.check_window(w)
    _check_positive("T", T)
    half = w // 2
    return [(s, min(s + w, T)) for s in range(0, max(T - half, 1), half)]


def query_blocks(T: int, w: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The causal variant (the assignment's hint): blocks of w/2 queries, each scored against the w keys of
    its own block and the block before. Returns ((query start, stop), (key start, stop)), clipped to 0 … T."""
    attention.check_window(w)
    _check_positive("T", T)
    half = w // 2
    return [((s, min(s + half, T)), (max(0, s - half), min(s + half, T))) for s in range(0, T, half)]


def window_work(T: int, w: int) -> dict[str, int]:
    """Scores each way of computing the window computes, for one head: ``band`` the scores the window keeps
    (the mask's True entries), ``full`` all T² (the naive form), ``square_chunks`` the entries of the
    lecture's w × w blocks and ``query_blocks`` those of the (w/2) × w blocks, both as drawn (clipped at the
    sequence's ends; a block's overlap with the previous one counted again)."""
    band = int(attention.sliding_window_mask(T, w).sum())
    squares = sum((stop - start) ** 2 for start, stop in square_chunks(T, w))
    blocks = sum((qe - qs) * (ke - ks) for (qs, qe), (ks, ke) in query_blocks(T, w))
    return {"band": band, "full": T * T, "square_chunks": squares, "query_blocks": blocks}


@dataclass(frozen=True)
class WindowDiagram:
    """What :func:`draw_sliding_window` drew: the mask (query t, key j) and the chunk outlines
    (key start, query start, width in keys, height in queries)."""
    mask: torch.Tensor
    outlines: tuple[tuple[int, int, int, int], ...]


def draw_sliding_window(T: int, w: int | None, chunks: str | None = None, ax=None, numbers: bool = True,
                        title: str | None = None) -> WindowDiagram:
    """The mask of the lecture's sliding window (``w=None``: plain causal attention), query t down, key j
    across, allowed cells dark with a 1 in them (``numbers``); ``chunks="square"`` outlines the lecture's
    w × w chunks, ``chunks="blocks"`` the (w/2) × w query blocks. Returns the drawn mask and outlines."""
    mask = attention.causal_mask(T) if w is None else attention.sliding_window_mask(T, w)
    ax = _axes(ax, (3.4, 3.4))
    ax.imshow(mask.to(torch.float32).numpy(), cmap="Blues", vmin=0, vmax=1.6, interpolation="nearest")
    if numbers:
        for t, j in mask.nonzero().tolist():
            ax.text(j, t, "1", ha="center", va="center", fontsize=8)
    outlines = []
    if chunks == "square":
        outlines = [(s, s, e - s, e - s) for s, e in square_chunks(T, w)]
    elif chunks == "blocks":
        outlines = [(ks, qs, ke - ks, qe - qs) for (qs, qe), (ks, ke) in query_blocks(T, w)]
    elif chunks is not None:
        raise ValueError(f"chunks must be None, 'square' or 'blocks', got {chunks!r}")
    for c, (x, y, width, height) in enumerate(outlines):
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), width, height, fill=False, lw=2.0,
                               edgecolor=GROUP_COLORS[c % 5], zorder=3))
    step = w // 2 if w is not None and T // (w // 2) <= 8 else max(1, T // 8)   # chunk borders on the ticks
    ax.set_xticks(range(0, T, step))
    ax.set_yticks(range(0, T, step))
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position t")
    ax.grid(False)
    ax.set_title(title or ("causal attention" if w is None else f"sliding window, w = {w}"))
    return WindowDiagram(mask, tuple(outlines))


# ----------------------------------------------------------------------------- RoPE on one pair
@dataclass(frozen=True)
class RopePair:
    """One query pair at position m and one key pair at position n after RoPE's rotation by mθ and nθ,
    and their dot product (the pair's share of the score)."""
    m: int
    n: int
    q: torch.Tensor      # (2,) rotated query pair
    k: torch.Tensor      # (2,) rotated key pair
    score: float


def rope_pairs(q: torch.Tensor, k: torch.Tensor, theta: float,
               positions: list[tuple[int, int]]) -> list[RopePair]:
    """Rotate the 2-vectors q and k by :func:`lec4.rope.rotation_matrix` (d = 2, angle θ per position) to
    each (m, n) of ``positions``: q to m, k to n."""
    q, k = torch.as_tensor(q, dtype=torch.float64), torch.as_tensor(k, dtype=torch.float64)
    if q.shape != (2,) or k.shape != (2,):
        raise ValueError(f"q and k must be one pair of coordinates each, shape (2,); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}")
    thetas = torch.tensor([float(theta)], dtype=torch.float64)
    out = []
    for m, n in positions:
        q_rot = rope.rotation_matrix(int(m), 2, thetas=thetas) @ q
        k_rot = rope.rotation_matrix(int(n), 2, thetas=thetas) @ k
        out.append(RopePair(int(m), int(n), q_rot, k_rot, float(q_rot @ k_rot)))
    return out


def draw_rope_pairs(q, k, theta: float, positions: list[tuple[int, int]], axes=None) -> list[RopePair]:
    """One panel per (m, n): the pair of the query rotated to m and of the key rotated to n (arrows from
    the origin), the unrotated vectors dashed. Equal m − n gives equal angles between the arrows."""
    pairs = rope_pairs(q, k, theta, positions)
    if axes is None:
        _, axes = plt.subplots(1, len(pairs), figsize=(2.3 * len(pairs), 2.6))
    axes = list(axes) if hasattr(axes, "__iter__") else [axes]
    if len(axes) != len(pairs):
        raise ValueError(f"{len(pairs)} position pairs need {len(pairs)} axes, got {len(axes)}")
    q0, k0 = torch.as_tensor(q, dtype=torch.float64), torch.as_tensor(k, dtype=torch.float64)
    radius = 1.25 * float(max(q0.norm(), k0.norm()))
    for ax, pair in zip(axes, pairs):
        for vec, color in ((q0, "#0072B2"), (k0, "#D55E00")):
            ax.plot([0, vec[0]], [0, vec[1]], ls=":", color=color, lw=1.2)
        for vec, color, name in ((pair.q, "#0072B2", f"q at m={pair.m}"), (pair.k, "#D55E00", f"k at n={pair.n}")):
            ax.annotate("", xy=(float(vec[0]), float(vec[1])), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=2))
            x, y = float(vec[0]), float(vec[1])
            ax.text(1.08 * x, 1.08 * y, name, color=color, fontsize=9,     # beyond the tip, away from the origin
                    ha="left" if x >= 0 else "right", va="bottom" if y >= 0 else "top")
        ax.set_xlim(-1.6 * radius, 1.6 * radius)                             # room for the labels
        ax.set_ylim(-radius, radius)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_title(f"m − n = {pair.m - pair.n}, score {pair.score:.2f}", fontsize=10)
    return pairs
