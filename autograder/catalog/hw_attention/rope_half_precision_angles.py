"""Computes the angles in x's dtype: in float16 a position of 6000 is only exact to +-2 radians."""
BREAKS = "apply_rope"


def apply_rope(x, positions, base=10000.0):
    half = x.shape[-1] // 2
    theta = base ** (-2.0 * torch.arange(half, device=x.device, dtype=x.dtype) / x.shape[-1])
    angles = positions.to(x.dtype)[:, None] * theta
    cos, sin = angles.cos(), angles.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
