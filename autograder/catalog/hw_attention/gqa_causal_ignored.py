"""Always applies the causal mask, ignoring causal=False."""
BREAKS = "gqa_attention"


def gqa_attention(q, k, v, causal=True):
    T, S, D = q.shape[2], k.shape[2], q.shape[3]
    grouped_q = q.unflatten(1, (k.shape[1], q.shape[1] // k.shape[1]))
    scores = grouped_q @ k.unsqueeze(2).transpose(-2, -1) / math.sqrt(D)
    visible = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    scores = scores.masked_fill(~visible, float("-inf"))
    return (scores.float().softmax(dim=-1).to(v.dtype) @ v.unsqueeze(2)).flatten(1, 2)
