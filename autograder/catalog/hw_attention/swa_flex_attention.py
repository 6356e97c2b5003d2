"""Uses FlexAttention with a sliding-window score_mod (a forbidden attention kernel)."""
BREAKS = "sliding_window_attention"

from torch.nn.attention.flex_attention import flex_attention


def sliding_window_attention(q, k, v, w):
    def window(score, b, h, t, s):
        return torch.where((s <= t) & (s >= t - w // 2), score, -float("inf"))
    return flex_attention(q, k, v, score_mod=window, enable_gqa=True)
