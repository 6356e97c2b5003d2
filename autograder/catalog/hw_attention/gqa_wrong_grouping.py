"""Query head h reads kv head h % Hkv (k.repeat) instead of h // (Hq // Hkv) (repeat_interleave)."""
BREAKS = "gqa_attention"


def gqa_attention(q, k, v, causal=True):
    T, S, D = q.shape[2], k.shape[2], q.shape[3]
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)
    if causal:
        visible = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
        scores = scores.masked_fill(~visible, float("-inf"))
    return scores.float().softmax(dim=-1).to(v.dtype) @ v
