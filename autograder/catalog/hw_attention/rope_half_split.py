"""GPT-NeoX "rotate_half": pairs (x_i, x_{i+D/2}) instead of the lecture's interleaved (x_2i, x_2i+1)."""
BREAKS = "apply_rope"


def apply_rope(x, positions, base=10000.0):
    half = x.shape[-1] // 2
    theta = base ** (-2.0 * torch.arange(half, device=x.device, dtype=torch.float32) / x.shape[-1])
    angles = positions.float()[:, None] * theta
    cos, sin = angles.cos(), angles.sin()
    first, second = x.float()[..., :half], x.float()[..., half:]
    return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1).to(x.dtype)
