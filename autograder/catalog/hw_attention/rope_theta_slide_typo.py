"""Copies the slide's typo theta_i = 10000^(-2^(i-1)/d): exponent 2**i instead of 2*i."""
BREAKS = "apply_rope"


def apply_rope(x, positions, base=10000.0):
    half = x.shape[-1] // 2
    i = torch.arange(half, device=x.device, dtype=torch.float32)
    theta = base ** (-(2.0 ** (i - 1)) / x.shape[-1])
    angles = positions.float()[:, None] * theta
    cos, sin = angles.cos(), angles.sin()
    even, odd = x.float()[..., 0::2], x.float()[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2).to(x.dtype)
