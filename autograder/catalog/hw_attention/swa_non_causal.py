"""A symmetric (Longformer-encoder) window |t - s| <= w/2: sees w/2 future tokens."""
BREAKS = "sliding_window_attention"


def sliding_window_attention(q, k, v, w):
    T, D = q.shape[2], q.shape[3]
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    t, s = torch.arange(T, device=q.device)[:, None], torch.arange(T, device=q.device)
    visible = (s - t).abs() <= w // 2
    scores = (q @ k.transpose(-2, -1) / math.sqrt(D)).masked_fill(~visible, float("-inf"))
    return scores.float().softmax(dim=-1).to(v.dtype) @ v
