"""Confuses w with w/2: query t sees keys t - w ... t (w + 1 keys). Dense masked form."""
BREAKS = "sliding_window_attention"


def sliding_window_attention(q, k, v, w):
    T, D = q.shape[2], q.shape[3]
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    t, s = torch.arange(T, device=q.device)[:, None], torch.arange(T, device=q.device)
    visible = (s <= t) & (s >= t - w)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(D)).masked_fill(~visible, float("-inf"))
    return scores.float().softmax(dim=-1).to(v.dtype) @ v
