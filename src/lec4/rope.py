"""Rotary position embeddings (RoPE) by their definition, and the lecture's slide checks.

Everything here builds the rotation matrix R_{Θ,m} explicitly and multiplies by it
(a D×D matrix per position): slow on purpose, so the code reads like the math.
The efficient element-wise rotation is the first task of the assignment ``hw-attention``.

Conventions: positions m are integers (0-based in code; RoPE only depends on differences),
head dimension D = d_k is even, pairs are the adjacent dimensions (2i, 2i+1) in 0-based
indexing, i.e. (2i−1, 2i) in the lecture's 1-based indexing.
"""
from __future__ import annotations

import torch

from lec4.utils import check_shape

DEFAULT_BASE = 10000.0


def _check_head_dim(d: int) -> None:
    if not isinstance(d, int) or d <= 0 or d % 2:
        raise ValueError(f"RoPE needs an even, positive head dimension d_k (pairs of coordinates "
                         f"are rotated), got d={d!r}")


def _positions(positions, dtype=torch.float64) -> torch.Tensor:
    """Positions as a 1-D float tensor (an int gives a single position)."""
    positions = torch.as_tensor(positions)
    if positions.dim() > 1 or positions.is_floating_point() or positions.is_complex():
        raise ValueError(f"positions must be an int or a 1-D integer tensor (T,), "
                         f"got {positions.dtype} of shape {tuple(positions.shape)}")
    return positions.reshape(-1).to(dtype)


def rope_thetas(d: int, base: float = DEFAULT_BASE) -> torch.Tensor:
    """θ_i = base^(−2(i−1)/d) for i = 1 … d/2, as in RoFormer (Su et al., 2021). Shape (d/2,).

    Computed in float64: the book compares formulas, and θ_{d/2} ≈ 1e-4 loses digits in fp32.
    """
    _check_head_dim(d)
    i = torch.arange(1, d // 2 + 1, dtype=torch.float64)
    return base ** (-2 * (i - 1) / d)


def slide_typo_thetas(d: int, base: float = DEFAULT_BASE) -> torch.Tensor:
    """The first RoPE slide's θ_i = base^(−2^(i−1)/d) (a power of two in the exponent). Shape (d/2,).

    Only here to show numerically what the typo would do; use :func:`rope_thetas`.
    """
    _check_head_dim(d)
    i = torch.arange(1, d // 2 + 1, dtype=torch.float64)
    return base ** (-(2.0 ** (i - 1)) / d)


def rotation_matrix(positions, d: int, base: float = DEFAULT_BASE,
                    thetas: torch.Tensor | None = None) -> torch.Tensor:
    """R_{Θ,m} exactly as on the slide: block-diagonal, block i = [[cos mθ_i, −sin mθ_i], [sin mθ_i, cos mθ_i]].

    positions: an int m, or (T,) integer positions. Returns (d, d) for an int, else (T, d, d),
    in float64. ``thetas`` (d/2,) overrides the standard θ (used to show the slide's typo).
    """
    _check_head_dim(d)
    single = isinstance(positions, int)
    m = _positions(positions)
    thetas = rope_thetas(d, base) if thetas is None else thetas.to(torch.float64)
    if thetas.shape != (d // 2,):
        raise ValueError(f"thetas must have shape (d/2,) = ({d // 2},), got {tuple(thetas.shape)}")
    angles = m[:, None] * thetas[None, :]                      # (T, d/2): m·θ_i
    cos, sin = torch.cos(angles), torch.sin(angles)
    R = torch.zeros(len(m), d, d, dtype=torch.float64)
    even = torch.arange(0, d, 2)                               # row/col of each block's top-left
    R[:, even, even] = cos
    R[:, even, even + 1] = -sin
    R[:, even + 1, even] = sin
    R[:, even + 1, even + 1] = cos
    return R[0] if single else R


def rope_by_definition(x: torch.Tensor, positions=None, base: float = DEFAULT_BASE) -> torch.Tensor:
    """Rotate every vector of ``x`` by the dense matrix of its position: x̃_m = R_{Θ,m} x_m.

    x: (..., T, D) — e.g. queries (B, H, T, D); positions: (T,) integers, default 0 … T−1.
    Returns x's shape and dtype. Cost O(T·D²): a full D×D matrix–vector product per position.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a tensor of shape (..., T, D), e.g. (B, H, T, D); got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    T, d = x.shape[-2], x.shape[-1]
    _check_head_dim(d)
    positions = torch.arange(T) if positions is None else torch.as_tensor(positions)
    if positions.shape != (T,):
        raise ValueError(f"positions must have shape (T,) = ({T},) to match x of shape "
                         f"{tuple(x.shape)}, got {tuple(positions.shape)}")
    R = rotation_matrix(positions.cpu(), d, base).to(device=x.device, dtype=x.dtype)  # (T, D, D)
    return torch.einsum("tij,...tj->...ti", R, x)


def half_split_rotation_matrix(positions, d: int, base: float = DEFAULT_BASE) -> torch.Tensor:
    """The linear map of the "matrix version" slide, written as a dense matrix M_m.

    The slide sets row m of g(Y) to [Y_{1:d/2} | Y_{d/2+1:d}] ⊙ cos C_m + [−Y_{d/2+1:d} | Y_{1:d/2}] ⊙ sin C_m
    with C_m = [mθ_1 … mθ_{d/2} | mθ_1 … mθ_{d/2}]. That is y ↦ M_m y with
    M_m = [[diag cos mθ, −diag sin mθ], [diag sin mθ, diag cos mθ]]: dimension i is paired
    with dimension i + d/2 instead of its neighbour. Returns (d, d) for an int, else (T, d, d).
    """
    _check_head_dim(d)
    single = isinstance(positions, int)
    angles = _positions(positions)[:, None] * rope_thetas(d, base)[None, :]   # (T, d/2)
    cos, sin = torch.diag_embed(torch.cos(angles)), torch.diag_embed(torch.sin(angles))
    M = torch.cat([torch.cat([cos, -sin], dim=-1), torch.cat([sin, cos], dim=-1)], dim=-2)
    return M[0] if single else M


def matrix_version_rope(Y: torch.Tensor, positions=None, base: float = DEFAULT_BASE) -> torch.Tensor:
    """g(Y; Θ) of the "matrix version" slide, applied row by row with the dense M_m. Y: (..., T, D)."""
    if not isinstance(Y, torch.Tensor) or Y.dim() < 2:
        raise ValueError("Y must be a tensor of shape (..., T, D)")
    T, d = Y.shape[-2], Y.shape[-1]
    positions = torch.arange(T) if positions is None else torch.as_tensor(positions)
    M = half_split_rotation_matrix(positions.cpu(), d, base).to(device=Y.device, dtype=Y.dtype)
    return torch.einsum("tij,...tj->...ti", M, Y)


def half_split_to_interleaved(d: int) -> torch.Tensor:
    """The permutation matrix P (d, d) with M_m = Pᵀ R_{Θ,m} P for every m.

    (P y)_{2i} = y_i and (P y)_{2i+1} = y_{i+d/2} (0-based): P moves the half-split pairs
    (i, i + d/2) next to each other, where the interleaved definition rotates them.
    """
    _check_head_dim(d)
    order = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=1).reshape(-1)
    return torch.eye(d, dtype=torch.float64)[order]          # row 2i picks y_i, row 2i+1 picks y_{i+d/2}


def relative_score_grid(q: torch.Tensor, k: torch.Tensor, positions, base: float = DEFAULT_BASE) -> torch.Tensor:
    """S[a, b] = (R_{Θ,m_a} q)ᵀ (R_{Θ,n_b} k): one query and one key placed at every pair of positions.

    q, k: (D,). positions: (P,). Returns (P, P) in float64. If scores depend only on m − n,
    S is constant along every diagonal (a Toeplitz matrix).
    """
    check_shape("q", q, "(D,)", 1)
    check_shape("k", k, "(D,)", 1)
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape (D,), got {tuple(q.shape)} and {tuple(k.shape)}")
    R = rotation_matrix(torch.as_tensor(positions), q.shape[0], base)   # (P, D, D)
    q_rot = R @ q.to(torch.float64)                                       # (P, D)
    k_rot = R @ k.to(torch.float64)
    return q_rot @ k_rot.T
