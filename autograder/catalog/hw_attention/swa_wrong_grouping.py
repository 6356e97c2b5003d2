"""Sliding chunks, but query head h reads kv head h % Hkv (k.repeat instead of repeat_interleave)."""
BREAKS = "sliding_window_attention"


def sliding_window_attention(q, k, v, w):
    B, Hq, T, D = q.shape
    k, v = k.repeat(1, Hq // k.shape[1], 1, 1), v.repeat(1, Hq // k.shape[1], 1, 1)
    half = min(w // 2, T)
    n = -(-T // half)
    pad = n * half - T
    keys = F.pad(k, (0, 0, half, pad)).unfold(2, 2 * half, half)
    values = F.pad(v, (0, 0, half, pad)).unfold(2, 2 * half, half)
    queries = F.pad(q, (0, 0, 0, pad)).unflatten(2, (n, half))
    scores = queries @ keys / math.sqrt(D)
    i = torch.arange(half, device=q.device)[:, None]
    j = torch.arange(2 * half, device=q.device)
    c = torch.arange(n, device=q.device)[:, None, None]
    visible = (j >= i) & (j <= i + half) & ((c - 1) * half + j >= 0)
    weights = scores.masked_fill(~visible, float("-inf")).float().softmax(dim=-1).to(v.dtype)
    out = weights @ values.transpose(-2, -1)
    return out.flatten(2, 3)[..., :T, :]
