"""A small modern decoder (Llama / Mistral style) built from the chapter's pieces.

Pre-norm blocks with RMSNorm, a SwiGLU MLP, RoPE applied by its definition (dense rotation
matrices, :mod:`lec4.rope`), attention with h_kv ≤ h_q key/value heads (the loop reference of
:mod:`lec4.attention`), an optional sliding window, and two caches for generation:
a growing KV cache and Mistral's rolling buffer cache (position i lives in slot i mod W).

Written for reading and testing on a CPU, not for speed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lec4.attention import check_window, group_size, gqa_attention_loop, window_conventions, window_mask
from lec4.rope import DEFAULT_BASE, rope_by_definition
from lec4.utils import check_shape, count_parameters  # noqa: F401 (public here too)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) ⊙ γ over the last dimension (Zhang & Sennrich, 2019).

    Unlike LayerNorm: no mean subtraction, no bias. x: (..., d_model) -> same shape.
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.weight.shape[0]:
            raise ValueError(f"RMSNorm({self.weight.shape[0]}) got input with last dimension {x.shape[-1]}")
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return x / rms * self.weight


class SwiGLU(nn.Module):
    """The gated MLP of PaLM and Llama: W₂ (Swish(W₁ x) ⊙ W₃ x), Swish = SiLU (Shazeer, 2020).

    x: (..., d_model) -> (..., d_model); hidden size d_ff. No biases, as in Llama.
    """

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)   # gate branch
        self.w3 = nn.Linear(d_model, d_ff, bias=False)   # value branch
        self.w2 = nn.Linear(d_ff, d_model, bias=False)   # back to the residual stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


@dataclass
class DecoderConfig:
    """Sizes of :class:`TinyDecoder`. ``window``: the lecture's w (None = full causal attention)."""
    vocab_size: int = 64
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 4          # h_q
    n_kv_heads: int = 2       # h_kv, divides h_q
    d_ff: int = 64
    window: int | None = None
    rope_base: float = DEFAULT_BASE

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        group_size(self.n_heads, self.n_kv_heads)
        check_window(self.window)
        if self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got d_model/n_heads = {self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


# ----------------------------------------------------------------------------- caches
class KVCache:
    """The growing KV cache of one layer: keys/values (B, h_kv, S, D) of every past position.

    ``update`` appends the new keys/values and returns everything attention needs this step.
    Queries, scores and attention weights are never cached: they are used once.
    """

    def __init__(self):
        self.k = self.v = self.positions = None

    def update(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor):
        """Store k, v (B, h_kv, T_new, D) at ``positions`` (T_new,); return all cached (k, v, positions)."""
        if self.k is None:
            self.k, self.v, self.positions = k, v, positions
        else:
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
            self.positions = torch.cat([self.positions, positions])
        return self.k, self.v, self.positions

    def nbytes(self) -> int:
        """Bytes held by the cached keys and values."""
        return 0 if self.k is None else self.k.nbytes + self.v.nbytes


class RollingBufferCache(KVCache):
    """Mistral's rolling buffer: W slots, position i is written to slot i mod W, overwriting i − W.

    With a sliding window in which a query sees W keys (itself and W − 1 before it) nothing
    older than W positions is ever read again, so W slots suffice. Attention does not care
    about the order of keys, only about their positions (kept per slot for the mask and RoPE
    was applied before caching), so the rotated order of the slots is harmless.
    """

    def __init__(self, W: int):
        super().__init__()
        if isinstance(W, bool) or not isinstance(W, int) or W < 1:
            raise ValueError(f"rolling buffer size W must be a positive int, got {W!r}")
        self.W = W

    def update(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor):
        """Return the buffer's keys plus the new ones (all a query of this step may need), then
        write the new positions into their slots i mod W (only the last W new ones survive)."""
        if self.k is None:
            B, H, _, D = k.shape
            self.k = k.new_zeros(B, H, self.W, D)
            self.v = v.new_zeros(B, H, self.W, D)
            self.positions = torch.full((self.W,), -1, dtype=positions.dtype, device=positions.device)
        filled = self.positions >= 0
        keys = torch.cat([self.k[:, :, filled], k], dim=2)
        values = torch.cat([self.v[:, :, filled], v], dim=2)
        key_positions = torch.cat([self.positions[filled], positions])
        keep = slice(max(0, len(positions) - self.W), None)        # older new tokens would be overwritten anyway
        slots = positions[keep] % self.W
        self.k[:, :, slots] = k[:, :, keep]
        self.v[:, :, slots] = v[:, :, keep]
        self.positions[slots] = positions[keep]
        return keys, values, key_positions


# ----------------------------------------------------------------------------- model
class Attention(nn.Module):
    """Causal self-attention with RoPE (by definition), h_kv ≤ h_q heads and an optional window.

    x: (B, T, d_model) at integer ``positions`` (T,) -> (B, T, d_model).
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        d_head = cfg.head_dim
        self.wq = nn.Linear(cfg.d_model, cfg.n_heads * d_head, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.n_kv_heads * d_head, bias=False)   # fewer heads: GQA's saving
        self.wv = nn.Linear(cfg.d_model, cfg.n_kv_heads * d_head, bias=False)
        self.wo = nn.Linear(cfg.n_heads * d_head, cfg.d_model, bias=False)

    def qkv(self, x: torch.Tensor, positions: torch.Tensor):
        """Rotated queries (B, h_q, T, D), rotated keys and values (B, h_kv, T, D)."""
        B, T, _ = x.shape
        split = lambda t, h: t.view(B, T, h, self.cfg.head_dim).transpose(1, 2)   # noqa: E731
        q = split(self.wq(x), self.cfg.n_heads)
        k = split(self.wk(x), self.cfg.n_kv_heads)
        v = split(self.wv(x), self.cfg.n_kv_heads)
        base = self.cfg.rope_base
        return rope_by_definition(q, positions, base), rope_by_definition(k, positions, base), v

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        q, k, v = self.qkv(x, positions)
        k_positions = positions
        if cache is not None:
            k, v, k_positions = cache.update(k, v, positions)
        mask = window_mask(positions, k_positions, self.cfg.window)            # (T, S)
        out = gqa_attention_loop(q, k, v, mask)                                 # (B, h_q, T, D)
        B, _, T, _ = out.shape
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))


class Block(nn.Module):
    """Pre-norm decoder block: x + Attn(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg.d_model, cfg.d_ff)

    def forward(self, x, positions, cache=None):
        x = x + self.attn(self.attn_norm(x), positions, cache)
        return x + self.mlp(self.mlp_norm(x))


class TinyDecoder(nn.Module):
    """Token embedding, ``n_layers`` blocks, final RMSNorm and an (untied) output layer.

    tokens: (B, T) integer ids -> logits (B, T, vocab_size). ``start`` is the position of the
    first token (for incremental decoding with ``caches``, one cache per layer).
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02 if isinstance(module, nn.Linear) else 1.0)

    def new_caches(self, kind: str = "full") -> list[KVCache]:
        """One cache per layer: ``"full"`` (growing KV cache) or ``"rolling"`` (needs a window)."""
        if kind == "full":
            return [KVCache() for _ in self.blocks]
        if kind == "rolling":
            if self.cfg.window is None:
                raise ValueError("a rolling buffer cache needs a sliding window (cfg.window); "
                                 "without one every past key is needed")
            W = window_conventions(self.cfg.window)["mistral_W"]
            return [RollingBufferCache(W) for _ in self.blocks]
        raise ValueError(f"cache kind must be 'full' or 'rolling', got {kind!r}")

    def forward(self, tokens: torch.Tensor, caches: list[KVCache] | None = None, start: int = 0) -> torch.Tensor:
        check_shape("tokens", tokens, "(B, T)", 2)
        if caches is not None and len(caches) != len(self.blocks):
            raise ValueError(f"need one cache per layer ({len(self.blocks)}), got {len(caches)}")
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.embed(tokens)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, None if caches is None else caches[i])
        return self.head(self.norm(x))


@torch.no_grad()
def decode_logits(model: TinyDecoder, tokens: torch.Tensor, cache: str | None = None, prefill: int = 1) -> torch.Tensor:
    """Logits (B, T, vocab) for ``tokens`` (B, T), computed the way generation computes them.

    cache=None: recompute the whole prefix for every new token (no cache), keeping the last row.
    cache="full" or "rolling": run the first ``prefill`` tokens at once, then one token per step,
    each step reading the keys/values of earlier steps from the cache.
    """
    check_shape("tokens", tokens, "(B, T)", 2)
    T = tokens.shape[1]
    if not 1 <= prefill <= T:
        raise ValueError(f"prefill must be between 1 and T={T}, got {prefill}")
    if cache is None:
        rows = [model(tokens[:, :prefill])]
        rows += [model(tokens[:, :t + 1])[:, -1:] for t in range(prefill, T)]
        return torch.cat(rows, dim=1)
    caches = model.new_caches(cache)
    rows = [model(tokens[:, :prefill], caches, start=0)]
    rows += [model(tokens[:, t:t + 1], caches, start=t) for t in range(prefill, T)]
    return torch.cat(rows, dim=1)


@torch.no_grad()
def generate(model: TinyDecoder, prompt: torch.Tensor, n_new: int, cache: str | None = "full"):
    """Greedy generation of ``n_new`` tokens after ``prompt`` (B, T0).

    Returns (tokens (B, T0 + n_new), caches) — the caches (None without one) to inspect their memory.
    """
    check_shape("prompt", prompt, "(B, T)", 2)
    tokens, caches = prompt, (None if cache is None else model.new_caches(cache))
    logits = model(prompt, caches, start=0)
    for _ in range(n_new):
        next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
        start = tokens.shape[1]
        tokens = torch.cat([tokens, next_token], dim=1)
        logits = model(tokens, None, 0) if caches is None else model(next_token, caches, start=start)
    return tokens, caches


def forward_macs(cfg: DecoderConfig, n_queries: int, n_keys: int, batch: int = 1) -> dict[str, int]:
    """Multiply-adds of one :class:`TinyDecoder` forward call on ``n_queries`` new tokens that attend
    to ``n_keys`` keys (the new ones included), split by where they go.

    * ``"weights"``: every matrix of every layer (W_q, W_k, W_v, W_o, the three SwiGLU matrices) and the
      output layer, once per new token: Θ(n_queries · d²);
    * ``"attention"``: Q Kᵀ and the weights times V, one score per (query, key) pair and head, all
      ``n_keys`` keys scored (the mask is applied afterwards): Θ(n_queries · n_keys · d);
    * ``"rope"``: this model's dense rotation matrices (one D×D product per head and token).
    """
    if min(n_queries, n_keys, batch) < 1 or n_keys < n_queries:
        raise ValueError(f"need 1 <= n_queries <= n_keys and batch >= 1, got n_queries={n_queries}, "
                         f"n_keys={n_keys}, batch={batch}")
    d, D, hq, hkv = cfg.d_model, cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    per_token = cfg.n_layers * (2 * d * hq * D + 2 * d * hkv * D + 3 * d * cfg.d_ff) + d * cfg.vocab_size
    return {"weights": batch * n_queries * per_token,
            "attention": batch * cfg.n_layers * 2 * hq * n_queries * n_keys * D,
            "rope": batch * cfg.n_layers * (hq + hkv) * n_queries * D * D}


def generation_macs(cfg: DecoderConfig, prompt_len: int, n_new: int, cache: str | None, batch: int = 1) -> dict[str, int]:
    """Multiply-adds of :func:`generate` (the prompt's forward, then ``n_new`` steps), by kind.

    The cost model of the KV cache: at step t (t tokens so far) generation without a cache runs the model
    on all t tokens, t · Θ(d²) for the matrices and Θ(t² d) for attention; with the cache it runs one token,
    Θ(d²) for the matrices and Θ(t d) for attention over the t cached keys. Summed over T steps: matrices
    Θ(T² d²) → Θ(T d²), attention Θ(T³ d) → Θ(T² d). The cache removes the recomputation of the prefix,
    not the growth of attention: each new token still reads every cached key.
    """
    if cache not in (None, "full"):
        raise ValueError(f"cache must be None or 'full' (the rolling buffer attends to at most W keys), got {cache!r}")
    if prompt_len < 1 or n_new < 0:
        raise ValueError(f"need prompt_len >= 1 and n_new >= 0, got {prompt_len}, {n_new}")
    calls = [(prompt_len, prompt_len)]
    calls += [(1 if cache else t, t) for t in range(prompt_len + 1, prompt_len + n_new + 1)]
    total = {"weights": 0, "attention": 0, "rope": 0}
    for n_queries, n_keys in calls:
        for kind, macs in forward_macs(cfg, n_queries, n_keys, batch).items():
            total[kind] += macs
    return total
