"""The public specification of the assignment ``hw-attention`` (RoPE, GQA, sliding-window attention).

The notebook's locked cells import from here; the hidden-test suite (``autograder.suites.hw_attention``)
imports the same objects and adds hidden cases and trusted references. Change a tolerance, a point
value or a visible case here, then regenerate the release (``python -m autograder generate hw-attention``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lec4 import attention

ASSIGNMENT = "hw-attention"
NOTEBOOK = "hw-attention.ipynb"

# grade_id of every graded cell -> (the function it grades, its points); the notebook's cells carry
# the same points (a test reads them from the notebook).
GRADE_CELLS = {
    "rope_visible": ("apply_rope", 10),
    "rope_hidden": ("apply_rope", 15),
    "rope_hidden_memory": ("apply_rope", 5),
    "gqa_visible": ("gqa_attention", 10),
    "gqa_hidden": ("gqa_attention", 20),
    "swa_visible": ("sliding_window_attention", 10),
    "swa_hidden": ("sliding_window_attention", 20),
    "swa_hidden_memory": ("sliding_window_attention", 10),
}

# Checks before the deadline (`python -m autograder serve`, README "Checking before the deadline"):
# per graded cell, what a student's check shows: "verdicts" (each check's pass/fail and hint) or
# "count" (only "hidden tests: k of n passed" for the function). After the due date: the normal feedback.
PRE_DEADLINE = {
    "rope_visible": "verdicts", "rope_hidden": "verdicts", "rope_hidden_memory": "count",
    "gqa_visible": "verdicts", "gqa_hidden": "count",
    "swa_visible": "verdicts", "swa_hidden": "count", "swa_hidden_memory": "count",
}
PRE_DEADLINE_CHECKS_PER_DAY = 5  # checks per student per rolling 24 hours

# PyTorch's (and common libraries') fused attention kernels: the task is to write attention.
ATTENTION_KERNELS = frozenset({
    "scaled_dot_product_attention", "flex_attention", "create_block_mask", "sdpa_kernel",
    "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_flash_attention_forward", "_efficient_attention_forward", "multi_head_attention_forward",
    "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
    "flash_attn_func", "memory_efficient_attention",
})
# Public functions that compute a graded quantity: lec4's slow forms from the book, and this module's
# visible-test references. Importable by a student, so forbidden in the function they would solve.
ROPE_REFERENCES = frozenset({"rope_by_definition", "rotation_matrix", "matrix_version_rope",
                             "half_split_rotation_matrix"})
ATTENTION_REFERENCES = frozenset({"attention_reference", "masked_attention", "gqa_attention_loop",
                                  "sliding_window_attention_naive", "sliding_window_attention_loop"})
# function -> names it must not use (the rule: lec4.homework.checking.forbidden_uses). Building a
# D x D matrix yourself is not a name; the memory checks catch it.
FORBIDDEN = {
    "apply_rope": ROPE_REFERENCES,
    "gqa_attention": ATTENTION_KERNELS | ATTENTION_REFERENCES,
    "sliding_window_attention": ATTENTION_KERNELS | ATTENTION_REFERENCES,
}

# (atol, rtol) per dtype: float32 sums of ~D products stay within ~1e-6; float16 (eps 2^-10) and
# bfloat16 (eps 2^-7) get ~5 eps, enough for matmuls and softmax done entirely in the low precision,
# far below the O(1) errors of a wrong formula.
TOLERANCES = {
    torch.float32: (2e-5, 2e-5),
    torch.float16: (5e-3, 5e-3),
    torch.bfloat16: (4e-2, 4e-2),
}
GRAD_TOLERANCE = (1e-4, 1e-4)  # float32 gradients: two more matmuls than the forward pass
MIB = 2**20
# Peak memory a call may add over its baseline call (same code, tiny input), in bytes.
ROPE_MEMORY_ALLOWANCE = 24 * MIB   # a single 4096 x 4096 float32 matrix is 64 MiB
SWA_MEMORY_ALLOWANCE = 64 * MIB    # dense float32 scores at T=6001, 2 heads are 275 MiB


def rope_tolerance(dtype: torch.dtype, x: torch.Tensor, positions: torch.Tensor) -> tuple[float, float]:
    """(atol, rtol) for RoPE of ``x`` at ``positions``: the dtype's tolerance plus the error float32
    angles may add (angles are exact to about 2^-24 * position radians)."""
    atol, rtol = TOLERANCES[dtype]
    return atol + 8 * 2**-24 * positions.abs().max().item() * x.abs().max().item(), rtol


# ----------------------------------------------------------------------------- visible cases
# apply_rope: (B, H, T, D, first position, dtype); positions are first, first + 1, ..., first + T - 1;
# case n uses the seed n.
ROPE_CASES = [
    (1, 1, 4, 2, 0, "float32"),
    (2, 3, 5, 8, 0, "float32"),
    (1, 2, 7, 16, 100, "float32"),
    (1, 2, 6, 64, 3000, "float32"),
    (1, 2, 6, 64, 3000, "float16"),
]
# gqa_attention: (B, Hq, Hkv, T, S, D, causal, dtype); case n draws q, k, v from the seeds 3n, 3n+1, 3n+2.
GQA_CASES = [
    (1, 2, 2, 5, 5, 8, True, "float32"),     # MHA
    (2, 4, 1, 6, 6, 8, True, "float32"),     # MQA
    (1, 6, 2, 7, 7, 16, True, "float32"),    # GQA, groups of 3
    (1, 4, 2, 3, 9, 8, True, "float32"),     # 3 new queries after 6 cached tokens (S > T)
    (1, 4, 2, 4, 6, 8, False, "float32"),    # no mask
    (1, 4, 2, 8, 8, 32, True, "float16"),
]
# sliding_window_attention: (B, Hq, Hkv, T, D, w, dtype); seeds as for GQA_CASES.
SWA_CASES = [
    (1, 2, 1, 9, 8, 4, "float32"),      # the lecture's w = 4: 3 keys per query
    (1, 4, 2, 10, 8, 6, "float32"),     # T not a multiple of w/2
    (2, 2, 2, 5, 8, 16, "float32"),     # w > T: plain causal attention
    (1, 4, 4, 13, 16, 2, "float32"),    # w = 2: the token and its predecessor
    (1, 4, 2, 16, 8, 8, "float16"),
]


# ----------------------------------------------------------------------------- definitions
def causal_mask(T: int, S: int) -> torch.Tensor:
    """(T, S) bool, True where query t may see key s: s <= t + (S - T) (aligned to the end, for KV caches).
    The rule is :func:`lec4.attention.window_mask`'s, the queries at positions S - T ... S - 1."""
    return attention.window_mask(torch.arange(S - T, S), torch.arange(S))


def window_mask(T: int, w: int) -> torch.Tensor:
    """(T, T) bool of the lecture's sliding window: query t sees keys max(0, t - w/2) ... t
    (:func:`lec4.attention.sliding_window_mask`; w even)."""
    return attention.sliding_window_mask(T, w)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) + M) v in float64 by PyTorch's own kernel; key/value head h // g serves query head h.

    q (B, Hq, T, D), k and v (B, Hkv, S, D), mask (T, S) bool (True where a key is visible) or None.
    Returns (B, Hq, T, D) in float64. Forbidden in the graded functions (see ``FORBIDDEN``).
    """
    group = q.shape[1] // k.shape[1]
    k64, v64 = (t.double().repeat_interleave(group, dim=1) for t in (k, v))
    return F.scaled_dot_product_attention(q.double(), k64, v64, attn_mask=mask)
