"""Sliding chunks that assume T is a multiple of w/2: the last T % (w/2) queries are dropped (or w > T crashes)."""
BREAKS = "sliding_window_attention"


def sliding_window_attention(q, k, v, w):
    B, Hq, T, D = q.shape
    Hkv = k.shape[1]
    half = w // 2
    n = T // half
    keys = F.pad(k[:, :, :n * half], (0, 0, half, 0)).unfold(2, 2 * half, half)
    values = F.pad(v[:, :, :n * half], (0, 0, half, 0)).unfold(2, 2 * half, half)
    queries = q[:, :, :n * half].unflatten(2, (n, half)).unflatten(1, (Hkv, Hq // Hkv))
    scores = queries @ keys.unsqueeze(2) / math.sqrt(D)
    i = torch.arange(half, device=q.device)[:, None]
    j = torch.arange(2 * half, device=q.device)
    c = torch.arange(n, device=q.device)[:, None, None]
    visible = (j >= i) & (j <= i + half) & ((c - 1) * half + j >= 0)
    weights = scores.masked_fill(~visible, float("-inf")).float().softmax(dim=-1).to(v.dtype)
    out = weights @ values.unsqueeze(2).transpose(-2, -1)
    return out.flatten(3, 4).flatten(1, 2)
