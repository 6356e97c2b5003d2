"""Attention references: explicit masks, grouped-query attention by a loop, sliding windows.

These are the *naive* forms the book teaches with: a full T×S score matrix plus a boolean
mask, a Python loop over query heads for GQA, a Python loop over queries for the sliding
window. The fast forms (vectorized GQA, sliding-chunks attention) are the assignment
``hw-attention``.

Shapes: queries (B, H_q, T, D), keys/values (B, H_kv, S, D); masks are boolean (T, S) with
True = "may attend". Window convention of the lecture (Longformer): w is even and query t
sees the w/2 + 1 keys max(0, t − w/2) … t (the rightmost being t itself).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from lec4.utils import check_shape


# ----------------------------------------------------------------------------- masks
def check_window(w: int | None) -> None:
    """Raise a ValueError unless w is None (no window) or an even integer ≥ 2."""
    if w is None:
        return
    if isinstance(w, bool) or not isinstance(w, int) or w < 2 or w % 2:
        raise ValueError(f"window w must be an even integer >= 2 (query t sees keys t − w/2 … t, "
                         f"w/2 + 1 tokens), got w={w!r}")


def window_mask(q_positions: torch.Tensor, k_positions: torch.Tensor, w: int | None = None) -> torch.Tensor:
    """Boolean (T, S) mask: query at position m may attend key at position n iff n ≤ m and m − n ≤ w/2.

    q_positions (T,), k_positions (S,): integer positions (keys may come from a cache, in any
    order). w=None gives the plain causal mask.
    """
    check_window(w)
    check_shape("q_positions", q_positions, "(T,)", 1)
    check_shape("k_positions", k_positions, "(S,)", 1)
    distance = q_positions[:, None] - k_positions[None, :]          # m − n
    allowed = distance >= 0
    if w is not None:
        allowed &= distance <= w // 2
    return allowed


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) boolean lower-triangular mask: token t attends to tokens 0 … t."""
    positions = torch.arange(T, device=device)
    return window_mask(positions, positions)


def sliding_window_mask(T: int, w: int, device=None) -> torch.Tensor:
    """(T, T) boolean mask of the lecture's sliding window: token t attends to max(0, t − w/2) … t."""
    check_window(w)
    positions = torch.arange(T, device=device)
    return window_mask(positions, positions, w)


# ------------------------------------------------------------ window conventions
def window_conventions(w: int) -> dict[str, object]:
    """The lecture's window w expressed in the conventions of other papers and libraries.

    - ``visible_tokens``: keys a query sees including itself, w/2 + 1.
    - ``mistral_W``: Mistral 7B's W, the rolling-buffer size = keys seen at decoding, w/2 + 1.
    - ``flash_attn_window_size``: FlashAttention's ``window_size=(left, right)``, query i sees keys
      i − left … i + right; causal sliding window = (w/2, 0).
    - ``flex_sliding_window``: the constant in FlexAttention's example mask
      ``q_idx - kv_idx <= SLIDING_WINDOW`` (with ``q_idx >= kv_idx``) = w/2.
    """
    check_window(w)
    return {"lecture_w": w, "visible_tokens": w // 2 + 1, "mistral_W": w // 2 + 1,
            "flash_attn_window_size": (w // 2, 0), "flex_sliding_window": w // 2}


def lecture_w_from_mistral(W: int) -> int:
    """Inverse of ``window_conventions(w)["mistral_W"]``: w = 2(W − 1). Needs W ≥ 2."""
    if isinstance(W, bool) or not isinstance(W, int) or W < 2:
        raise ValueError(f"Mistral's window W (keys seen, including the current token) must be an int >= 2, got {W!r}")
    return 2 * (W - 1)


def flex_sliding_window_mask_mod(w: int) -> Callable:
    """A FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` for the lecture's causal window w."""
    half = window_conventions(w)["flex_sliding_window"]

    def sliding_window_causal(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= half)

    return sliding_window_causal


# ------------------------------------------------------------ naive attention
def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    check_shape("q", q, "(B, H_q, T, D)", 4)
    check_shape("k", k, "(B, H_kv, S, D)", 4)
    check_shape("v", v, "(B, H_kv, S, D)", 4)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape (B, H_kv, S, D), got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q (B, H_q, T, D) and k (B, H_kv, S, D) must agree on B and D, "
                         f"got {tuple(q.shape)} and {tuple(k.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                     return_weights: bool = False):
    """softmax(Q Kᵀ / √D + M) V with M = 0 where ``mask`` is True and −∞ where it is False.

    q: (B, H, T, D), k, v: (B, H, S, D), mask: boolean, broadcastable to (B, H, T, S).
    Materializes the full (B, H, T, S) score matrix: O(T·S) memory (the lecture's "naive").
    Returns (B, H, T, D), and the attention weights (B, H, T, S) if ``return_weights``.
    """
    _check_qkv(q, k, v)
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"masked_attention needs as many key/value heads as query heads "
                         f"(use gqa_attention_loop for H_kv < H_q), got q {tuple(q.shape)}, k {tuple(k.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])          # (B, H, T, S)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be boolean (True = may attend), got {mask.dtype}")
        try:
            mask = mask.expand_as(scores)
        except RuntimeError as err:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the scores "
                             f"(B, H, T, S) = {tuple(scores.shape)}") from err
        if not mask.any(dim=-1).all():
            raise ValueError("mask leaves some query with no key to attend to (a row of all False)")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v
    return (out, weights) if return_weights else out


def group_size(h_q: int, h_kv: int) -> int:
    """g = h_q / h_kv query heads per key/value head; ValueError unless h_kv divides h_q."""
    if h_kv <= 0 or h_q <= 0 or h_q % h_kv:
        raise ValueError(f"grouped-query attention needs h_q divisible by h_kv (g = h_q / h_kv query heads "
                         f"share one key/value head), got h_q={h_q}, h_kv={h_kv}")
    return h_q // h_kv


def gqa_attention_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """Grouped-query attention by a Python loop over query heads: head h reads key/value head h // g.

    q: (B, H_q, T, D); k, v: (B, H_kv, S, D) with H_q divisible by H_kv; mask: boolean (T, S).
    H_kv = H_q is multi-head attention (MHA), H_kv = 1 multi-query attention (MQA). Returns (B, H_q, T, D).
    """
    _check_qkv(q, k, v)
    g = group_size(q.shape[1], k.shape[1])
    heads = []
    for h in range(q.shape[1]):
        kv = h // g                                     # the shared key/value head of h's group
        heads.append(masked_attention(q[:, h:h + 1], k[:, kv:kv + 1], v[:, kv:kv + 1], mask))
    return torch.cat(heads, dim=1)


def sliding_window_attention_naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: int) -> torch.Tensor:
    """Sliding-window self-attention the naive way: the full T×T scores, then the window mask.

    q, k, v: (B, H, T, D) (same T: self-attention). Returns (B, H, T, D). O(T²) time and memory.
    """
    check_window(w)
    _check_qkv(q, k, v)
    return masked_attention(q, k, v, sliding_window_mask(q.shape[2], w, device=q.device))


def sliding_window_attention_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: int) -> torch.Tensor:
    """Sliding-window self-attention with a for-loop over queries: query t only scores keys t − w/2 … t.

    q, k, v: (B, H, T, D). Returns (B, H, T, D). O(T·w) time and memory, but T Python iterations.
    """
    check_window(w)
    _check_qkv(q, k, v)
    if q.shape != k.shape:
        raise ValueError(f"self-attention needs q and k of one shape (B, H, T, D), got {tuple(q.shape)} and {tuple(k.shape)}")
    T, scale = q.shape[2], 1.0 / math.sqrt(q.shape[-1])
    out = torch.empty_like(q)
    for t in range(T):
        lo = max(0, t - w // 2)
        scores = (k[:, :, lo:t + 1] @ q[:, :, t, :, None]).squeeze(-1) * scale    # (B, H, ≤ w/2+1)
        out[:, :, t] = (torch.softmax(scores, dim=-1)[..., None] * v[:, :, lo:t + 1]).sum(dim=2)
    return out


# ------------------------------------------------------------ measuring
def time_call(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Best wall-clock time of ``fn()`` in seconds over ``repeats`` runs (after ``warmup`` runs)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_cpu_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated on the CPU while ``fn()`` runs, from PyTorch's profiler.

    The profiler attributes every allocation and free to the operator that made it; the running
    sum over operators in the order they finish is the memory held, and its maximum the peak
    (approximate to within one operator's own temporaries).
    """
    from torch.profiler import ProfilerActivity, profile

    with _silenced_stderr_fd(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    held = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.end):
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak


@contextlib.contextmanager
def _silenced_stderr_fd():
    """Send file descriptor 2 to /dev/null for a moment: the profiler's C++ backend prints
    start/stop notices there, which would land in a notebook's output (Python exceptions still raise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# ------------------------------------------------------------ what the sliding-chunks algorithm stores
def chunked_score_count(B: int, H: int, T: int, w: int) -> int:
    """Scores the sliding-chunks algorithm writes to memory: B·H·n·(w/2)·w with n = ⌈T / (w/2)⌉.

    It cuts the queries into n chunks of w/2 and scores each chunk against the w keys of its own and
    the previous chunk in one batched matrix product: a (B, H, n, w/2, w) tensor, about B·H·T·w numbers
    (twice the T·(w/2 + 1) scores the band needs), which the mask, the softmax and the product with V
    then read and write again. A fused kernel keeps each block of scores in on-chip memory instead.
    """
    check_window(w)
    if min(B, H, T) < 1:
        raise ValueError(f"B, H and T must be positive, got B={B}, H={H}, T={T}")
    half = min(w // 2, T)
    return B * H * -(-T // half) * half * 2 * half


# ------------------------------------------------------------ committed benchmark results
# Package data of lec4 (pyproject.toml): the tables ship with the library, so a page reads them
# wherever lec4 is installed -- a student's server in the hub, a clone of the published course.
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def benchmark_results(name: str, results_dir: Path | str = RESULTS_DIR) -> str | None:
    """The committed markdown results table ``lec4/results/<name>``, or None if not measured yet.

    The book shows these next to the numbers it measures while building (the tables are written by
    the scripts in the course repository's ``benchmarks/``; the GPU table by
    ``benchmarks/gpu_attention.py`` on a GPU machine; the build itself stays on the CPU).
    """
    if "/" in name or not name.endswith(".md"):
        raise ValueError(f"name must be a file name in lec4/results ending in .md, got {name!r}")
    path = Path(results_dir) / name
    return path.read_text() if path.is_file() else None


def results_tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables of a markdown results file: (heading above the table, header cells, rows of cells).

    For showing a committed table with :func:`lec4.display.table`; the notes around the tables
    (machine, command) are in the text itself.
    """
    tables, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: "):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            bad = [r for r in rows if len(r) != len(header)]
            if bad:
                raise ValueError(f"table {heading!r}: a row has {len(bad[0])} cells, the header {len(header)}")
            tables.append((heading, header, rows))
            continue
        i += 1
    return tables
