"""Calls PyTorch's fused kernel (forbidden), hidden behind a getattr string."""
BREAKS = "gqa_attention"


def gqa_attention(q, k, v, causal=True):
    T, S = q.shape[2], k.shape[2]
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T) if causal else None
    kernel = getattr(F, "scaled_dot_product_attention")
    return kernel(q, k, v, attn_mask=mask, enable_gqa=True)
