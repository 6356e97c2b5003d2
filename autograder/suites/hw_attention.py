"""Hidden (and mirrored visible) tests of the assignment ``hw-attention``.

The assignment's public contract -- graded cells and points, forbidden names, tolerances, memory
allowances, the visible cases, the masks -- is :mod:`lec4.homework.hw_attention`, which the notebook
imports too; this module adds the hidden cases and the trusted references.

The student's ``apply_rope``, ``gqa_attention`` and ``sliding_window_attention`` run in the
sandbox (:mod:`autograder.engine.runner`); every verdict below is computed here, from the returned
tensors, against references that share no code with the submission:

- RoPE: the lecture's dense rotation matrix R_{Theta,m} in float64 (``lec4.rope.rope_by_definition``,
  the book's form) and, for the memory checks, where D is too large for a dense matrix, complex
  multiplication by e^{i m theta} in complex128;
- attention: PyTorch's ``scaled_dot_product_attention`` in float64 with an explicit boolean mask
  built from the definition (``attention_reference``); for the long sliding-window call, a per-row
  float64 recomputation of sampled rows.

Tolerances are per dtype (a few units of its rounding error on values of size ~1); RoPE adds the
error the contract allows from float32 angles (about 2^-24 * position radians).
"""
from __future__ import annotations

import math
import random

import torch

from autograder.checks import (MIB, Check, autograd_reference, device_check, fresh_call, gradient_check, memory_check,
                               property_check, unchanged_check, value_check)
from lec4.homework.checking import random_tensor
from lec4.homework.hw_attention import (ASSIGNMENT, FORBIDDEN, GQA_CASES, GRAD_TOLERANCE, GRADE_CELLS,  # noqa: F401
                                        NOTEBOOK, ROPE_CASES, ROPE_MEMORY_ALLOWANCE, SWA_CASES,
                                        SWA_MEMORY_ALLOWANCE, TOLERANCES, attention_reference, causal_mask,
                                        rope_tolerance, window_mask)
from lec4.rope import rope_by_definition


# ----------------------------------------------------------------------------- references
def rope_dense_reference(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """The lecture's definition in float64: x[b, h, t] times the D x D block-diagonal R_{Theta, positions[t]}."""
    return rope_by_definition(x.double(), positions, base)


def rope_complex_reference(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """The same rotation as complex multiplication: (x_2i + i x_2i+1) * exp(i m theta_i), complex128."""
    D = x.shape[-1]
    theta = base ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
    phase = torch.polar(torch.ones(len(positions), D // 2, dtype=torch.float64), positions.double()[:, None] * theta)
    pairs = torch.view_as_complex(x.double().unflatten(-1, (D // 2, 2)).contiguous())
    return torch.view_as_real(pairs * phase).flatten(-2)


def window_rows_reference(q, k, v, w: int, rows: list[int]) -> torch.Tensor:
    """Rows ``rows`` of sliding-window attention, each recomputed from the definition in float64."""
    group = q.shape[1] // k.shape[1]
    out = []
    for t in rows:
        lo = max(0, t - w // 2)
        keys = k[:, :, lo:t + 1].double().repeat_interleave(group, dim=1)          # (B, Hq, n, D)
        values = v[:, :, lo:t + 1].double().repeat_interleave(group, dim=1)
        scores = (q[:, :, t:t + 1].double() @ keys.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        out.append(scores.softmax(dim=-1) @ values)
    return torch.cat(out, dim=2)                                                        # (B, Hq, len(rows), D)


# ----------------------------------------------------------------------------- apply_rope
def _value(grade_id, name, function, args, kwargs, expected, tolerance, device) -> Check:
    """One call on ``device``; its output must match ``expected`` (already in the input dtype)."""
    return value_check(grade_id, name, fresh_call(function, args, kwargs, device=device), expected, tolerance)


def _gradients(grade_id, name, function, args, kwargs, reference, grad_of, device, seed) -> Check:
    """Backpropagate a seeded random grad_output; gradients must match autograd through the float64 reference."""
    grad_output = random_tensor(tuple(args[0].shape), torch.float32, seed)   # every output is shaped as args[0]
    _, expected = autograd_reference(reference, list(args), tuple(grad_of), grad_output)
    call = fresh_call(function, args, kwargs, device=device, grad_of=tuple(grad_of), grad_output=grad_output)
    return gradient_check(grade_id, name, call, [g.float() for g in expected], GRAD_TOLERANCE)


def _unchanged(grade_id, name, function, args, kwargs, device) -> Check:
    return unchanged_check(grade_id, name, fresh_call(function, args, kwargs, device=device))


def _on_meta(grade_id, name, function, args, kwargs, shape, dtype) -> Check:
    """On the meta device every tensor the function creates without device=... lands on the CPU and fails."""
    return device_check(grade_id, name, fresh_call(function, args, kwargs, device="meta"), [shape], dtype)


def _memory(grade_id, name, function, small_args, big_args, kwargs, expected, rows, tolerance, allowance,
            cuda_bound, device) -> Check:
    """Peak memory of the big call over the small one (both isolated), and the big call's output right."""
    small = fresh_call(function, small_args, kwargs, device=device, isolated=True)
    big = fresh_call(function, big_args, kwargs, device=device, isolated=True)
    return memory_check(grade_id, name, small, big, expected, tolerance, allowance=allowance, cuda_bound=cuda_bound,
                        rows=rows)


# ----------------------------------------------------------------------------- apply_rope
def _rope_value(grade_id, name, x, positions, device, base=None) -> Check:
    kwargs = {} if base is None else {"base": base}
    expected = rope_dense_reference(x, positions, base or 10000.0).to(x.dtype)
    return _value(grade_id, name, "apply_rope", [x, positions], kwargs, expected,
                  rope_tolerance(x.dtype, x, positions), device)


def rope_checks(device: str) -> list[Check]:
    checks = []
    for seed, (B, H, T, D, first, dtype) in enumerate(ROPE_CASES):
        x = random_tensor((B, H, T, D), getattr(torch, dtype), seed)
        checks.append(_rope_value("rope_visible", f"visible case {seed}: {(B, H, T, D)} from {first}, {dtype}",
                                  x, torch.arange(first, first + T), device))

    def relative(outs):
        left, right = (outs[0] * outs[1]).sum().item(), (outs[2] * outs[3]).sum().item()
        return None if abs(left - right) < 1e-4 else "q.k after RoPE must depend only on the relative position"
    q, k = random_tensor((1, 1, 1, 8), seed=10), random_tensor((1, 1, 1, 8), seed=11)
    calls = [fresh_call("apply_rope", [t, torch.tensor([m])], device=device) for t, m in ((q, 5), (k, 2), (q, 12), (k, 9))]
    checks.append(property_check("rope_visible", "visible: relative positions", calls, relative))

    # Hidden: random and edge shapes, positions from 0, far from 0, arbitrary; every dtype.
    rng = random.Random(4231)
    shapes = [(1, 1, 1, 2), (1, 3, 7, 6), (2, 2, 9, 128), (1, 4, 33, 32)]
    shapes += [(rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 40), 2 * rng.randint(1, 48)) for _ in range(3)]
    shapes.append((1, 2, 9, 2))  # one pair, theta_0 = 1 whatever the base: the pairing and exponent cannot matter
    for n, shape in enumerate(shapes):
        x = random_tensor(shape, torch.float32, 100 + n)
        checks.append(_rope_value("rope_hidden", f"float32 {shape}, positions from 0", x, torch.arange(shape[2]), device))
    x = random_tensor((2, 3, 11, 64), torch.float32, 120)
    checks.append(_rope_value("rope_hidden", "float32, positions from 4093 (KV cache)", x, torch.arange(4093, 4104), device))
    positions = torch.tensor([7, 0, 2900, 3, 3, 1024, 65, 12, 4500, 1])
    x = random_tensor((1, 2, 10, 16), torch.float32, 121)
    checks.append(_rope_value("rope_hidden", "float32, arbitrary positions", x, positions, device))
    for base in (500000.0, 100.0, 1.0):  # base 1: every pair turns at theta = 1 (the exponent cannot matter)
        x = random_tensor((1, 2, 9, 32), torch.float32, 122)
        checks.append(_rope_value("rope_hidden", f"float32, base={base:g}", x, torch.arange(40, 49), device, base))
    for n, dtype in enumerate((torch.float16, torch.bfloat16)):
        x = random_tensor((2, 2, 13, 64), dtype, 130 + n)
        checks.append(_rope_value("rope_hidden", f"{dtype}, positions from 6000", x, torch.arange(6000, 6013), device))
    base_view = random_tensor((2, 9, 3, 16), torch.float32, 140)       # (B, T, H, D), viewed as (B, H, T, D)
    x = base_view.transpose(1, 2)
    checks.append(_rope_value("rope_hidden", "non-contiguous x (a transposed view)", x, torch.arange(9), device))
    x = random_tensor((2, 3, 8, 16), torch.float32, 141)
    checks.append(_unchanged("rope_hidden", "inputs unchanged", "apply_rope", [x, torch.arange(30, 38)], {}, device))
    checks.append(_gradients("rope_hidden", "gradient w.r.t. x", "apply_rope", [x, torch.arange(30, 38)], {},
                             rope_dense_reference, (0,), device, 142))
    for dtype in (torch.float32, torch.float16):
        checks.append(_on_meta("rope_hidden", f"inputs on another device ({dtype})", "apply_rope",
                               [random_tensor((1, 2, 5, 8), dtype, 143), torch.arange(5)], {}, (1, 2, 5, 8), dtype))

    # Memory: D = 4096 with 3 tokens; the output is 96 KiB, one D x D float32 matrix 64 MiB.
    small = [random_tensor((1, 2, 3, 8), torch.float32, 150), torch.arange(100, 103)]
    big = [random_tensor((1, 2, 3, 4096), torch.float32, 151), torch.arange(100, 103)]
    expected = rope_complex_reference(*big).float()
    checks.append(_memory("rope_hidden_memory", "no D x D matrix (D = 4096)", "apply_rope", small, big, {},
                          expected, None, rope_tolerance(torch.float32, *big), ROPE_MEMORY_ALLOWANCE,
                          cuda_bound=16 * big[0].numel() * 4 + 4 * MIB, device=device))
    # The same contract, decided without measuring: at D = 2**18 one D x D float32 matrix is
    # 256 GiB, which no machine allocates (the RSS above can miss lazily zeroed pages).
    huge = [random_tensor((1, 1, 2, 2**18), torch.float32, 152), torch.arange(7, 9)]
    checks.append(_value("rope_hidden_memory", "no D x D matrix (D = 262144)", "apply_rope", huge, {},
                         rope_complex_reference(*huge).float(), rope_tolerance(torch.float32, *huge), device))
    return checks


# ----------------------------------------------------------------------------- gqa_attention
def _qkv(B, Hq, Hkv, T, S, D, dtype, seed, scale=1.0):
    return (random_tensor((B, Hq, T, D), dtype, seed, scale), random_tensor((B, Hkv, S, D), dtype, seed + 1, scale),
            random_tensor((B, Hkv, S, D), dtype, seed + 2))


def _gqa_value(grade_id, name, q, k, v, causal, device, tolerance=None) -> Check:
    T, S = q.shape[2], k.shape[2]
    expected = attention_reference(q, k, v, causal_mask(T, S) if causal else None).to(q.dtype)
    return _value(grade_id, name, "gqa_attention", [q, k, v], {"causal": causal}, expected,
                  tolerance or TOLERANCES[q.dtype], device)


def gqa_checks(device: str) -> list[Check]:
    checks = []
    for n, (B, Hq, Hkv, T, S, D, causal, dtype) in enumerate(GQA_CASES):
        q, k, v = _qkv(B, Hq, Hkv, T, S, D, getattr(torch, dtype), 3 * n)
        checks.append(_gqa_value("gqa_visible", f"visible case {n}: Hq={Hq} Hkv={Hkv} T={T} S={S} causal={causal} "
                                 f"{dtype}", q, k, v, causal, device))

    rng = random.Random(977)
    cases = [  # (B, Hq, Hkv, T, S, D, causal)
        (1, 1, 1, 1, 1, 4, True),        # a single token
        (1, 8, 8, 9, 9, 16, True),       # MHA
        (2, 8, 1, 7, 7, 16, True),       # MQA
        (1, 12, 4, 11, 11, 32, True),    # GQA, groups of 3
        (2, 8, 2, 1, 17, 16, True),      # decoding one token after 16 cached ones
        (1, 4, 2, 5, 13, 8, True),       # 5 new tokens after 8 cached
        (2, 6, 3, 6, 10, 8, False),      # cross attention, S != T
    ]
    for _ in range(3):
        Hkv = rng.randint(1, 3)
        T = rng.randint(1, 24)
        cases.append((rng.randint(1, 2), Hkv * rng.randint(1, 4), Hkv, T, T + rng.randint(0, 9),
                      2 * rng.randint(2, 24), True))
    cases.append((1, 4, 2, 6, 6, 1, True))  # one-dimensional heads: 1/sqrt(D) = 1, only the softmax's axis matters
    for n, (B, Hq, Hkv, T, S, D, causal) in enumerate(cases):
        q, k, v = _qkv(B, Hq, Hkv, T, S, D, torch.float32, 200 + 3 * n)
        checks.append(_gqa_value("gqa_hidden", f"float32 Hq={Hq} Hkv={Hkv} T={T} S={S} D={D} causal={causal}",
                                 q, k, v, causal, device))
    for n, dtype in enumerate((torch.float16, torch.bfloat16)):
        q, k, v = _qkv(2, 8, 2, 19, 23, 64, dtype, 260 + 3 * n)
        checks.append(_gqa_value("gqa_hidden", f"{dtype}, S > T", q, k, v, True, device))
    q, k, v = _qkv(1, 4, 2, 10, 10, 16, torch.float32, 270, scale=8.0)       # scores in the hundreds
    checks.append(_gqa_value("gqa_hidden", "large scores (numerically stable softmax)", q, k, v, True, device,
                             tolerance=(1e-4, 1e-4)))
    q = random_tensor((2, 7, 4, 16), torch.float32, 280).transpose(1, 2)     # (B, Hq, T, D) views of (B, T, Hq, D)
    k = random_tensor((2, 7, 2, 16), torch.float32, 281).transpose(1, 2)
    v = random_tensor((2, 7, 2, 16), torch.float32, 282).transpose(1, 2)
    checks.append(_gqa_value("gqa_hidden", "non-contiguous q, k, v", q, k, v, True, device))
    q, k, v = _qkv(2, 6, 2, 5, 8, 8, torch.float32, 290)
    checks.append(_unchanged("gqa_hidden", "inputs unchanged", "gqa_attention", [q, k, v], {"causal": True}, device))
    reference = lambda q, k, v: attention_reference(q, k, v, causal_mask(q.shape[2], k.shape[2]))
    checks.append(_gradients("gqa_hidden", "gradients w.r.t. q, k, v", "gqa_attention", [q, k, v], {"causal": True},
                             reference, (0, 1, 2), device, 293))
    for dtype in (torch.float32, torch.bfloat16):
        args = list(_qkv(1, 4, 2, 3, 6, 8, dtype, 295))
        checks.append(_on_meta("gqa_hidden", f"inputs on another device ({dtype})", "gqa_attention", args,
                               {"causal": True}, (1, 4, 3, 8), dtype))
    return checks


# ----------------------------------------------------------------------------- sliding_window_attention
def _swa_value(grade_id, name, q, k, v, w, device) -> Check:
    expected = attention_reference(q, k, v, window_mask(q.shape[2], w)).to(q.dtype)
    return _value(grade_id, name, "sliding_window_attention", [q, k, v, w], {}, expected,
                  TOLERANCES[q.dtype], device)


def swa_checks(device: str) -> list[Check]:
    checks = []
    for n, (B, Hq, Hkv, T, D, w, dtype) in enumerate(SWA_CASES):
        q, k, v = _qkv(B, Hq, Hkv, T, T, D, getattr(torch, dtype), 3 * n)
        checks.append(_swa_value("swa_visible", f"visible case {n}: Hq={Hq} Hkv={Hkv} T={T} w={w} {dtype}",
                                 q, k, v, w, device))

    rng = random.Random(5150)
    cases = [  # (B, Hq, Hkv, T, D, w)
        (1, 1, 1, 1, 4, 2),          # a single token
        (1, 2, 2, 7, 8, 4),          # odd T, MHA
        (2, 8, 1, 23, 16, 8),        # MQA, T not a multiple of w or w/2
        (1, 6, 2, 30, 16, 10),       # GQA, w/2 odd
        (1, 4, 2, 6, 8, 64),         # w > T
        (1, 4, 2, 12, 8, 24),        # w = 2T: every query sees all its past
        (2, 4, 4, 64, 32, 16),       # T a multiple of w
        (1, 4, 2, 45, 8, 2),         # w = 2
    ]
    for _ in range(3):
        Hkv = rng.randint(1, 3)
        cases.append((rng.randint(1, 2), Hkv * rng.randint(1, 3), Hkv, rng.randint(2, 70), 2 * rng.randint(2, 16),
                      2 * rng.randint(1, 20)))
    cases.append((1, 4, 2, 9, 8, 16))  # T = w/2 + 1: every query sees its whole past, the last one just
    for n, (B, Hq, Hkv, T, D, w) in enumerate(cases):
        q, k, v = _qkv(B, Hq, Hkv, T, T, D, torch.float32, 300 + 3 * n)
        checks.append(_swa_value("swa_hidden", f"float32 Hq={Hq} Hkv={Hkv} T={T} D={D} w={w}", q, k, v, w, device))
    for n, dtype in enumerate((torch.float16, torch.bfloat16)):
        q, k, v = _qkv(2, 4, 2, 37, 37, 64, dtype, 360 + 3 * n)
        checks.append(_swa_value("swa_hidden", f"{dtype}, T=37, w=12", q, k, v, 12, device))
    q = random_tensor((1, 21, 4, 16), torch.float32, 370).transpose(1, 2)
    k = random_tensor((1, 21, 2, 16), torch.float32, 371).transpose(1, 2)
    v = random_tensor((1, 21, 2, 16), torch.float32, 372).transpose(1, 2)
    checks.append(_swa_value("swa_hidden", "non-contiguous q, k, v", q, k, v, 6, device))
    q, k, v = _qkv(2, 4, 2, 11, 11, 8, torch.float32, 380)
    checks.append(_unchanged("swa_hidden", "inputs unchanged", "sliding_window_attention", [q, k, v, 4], {}, device))
    reference = lambda q, k, v, w: attention_reference(q, k, v, window_mask(q.shape[2], w))
    checks.append(_gradients("swa_hidden", "gradients w.r.t. q, k, v", "sliding_window_attention", [q, k, v, 4], {},
                             reference, (0, 1, 2), device, 383))
    for dtype in (torch.float32, torch.float16):
        args = list(_qkv(1, 4, 2, 9, 9, 8, dtype, 385)) + [4]
        checks.append(_on_meta("swa_hidden", f"inputs on another device ({dtype})", "sliding_window_attention",
                               args, {}, (1, 4, 9, 8), dtype))

    # Memory: T = 6001, w = 64: dense float32 scores would take 2 * 6001^2 * 4 B = 275 MiB, the
    # sliding chunks 2 * 6001 * 64 * 4 B = 3 MiB per copy. Baseline: the same call with T = 64.
    T, w = 6001, 64
    small = list(_qkv(1, 2, 1, w, w, 16, torch.float32, 390)) + [w]
    big = list(_qkv(1, 2, 1, T, T, 16, torch.float32, 393)) + [w]
    rows = sorted({0, 1, w // 2 - 1, w // 2, w // 2 + 1, w, 3001, T - w // 2 - 1, T - 2, T - 1})
    expected = window_rows_reference(*big[:3], w, rows).float()
    io_bytes = 4 * sum(t.numel() for t in big[:3]) + 4 * big[0].numel()
    checks.append(_memory("swa_hidden_memory", f"memory O(T*w) at T={T}, w={w}", "sliding_window_attention",
                          small, big, {}, expected, rows, TOLERANCES[torch.float32], SWA_MEMORY_ALLOWANCE,
                          cuda_bound=8 * io_bytes + 12 * 2 * T * w * 4 + 8 * MIB, device=device))
    return checks


def build_checks(device: str) -> list[Check]:
    """Every check of the assignment, run on ``device`` ("cuda" when graded on a GPU machine), unanchored
    (the engine anchors them)."""
    return rope_checks(device) + gqa_checks(device) + swa_checks(device)
