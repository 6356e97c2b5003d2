"""Correct values, but builds the dense (T, D, D) rotation matrices: O(T * D^2) memory and time."""
BREAKS = "apply_rope"


def apply_rope(x, positions, base=10000.0):
    D = x.shape[-1]
    i = torch.arange(D // 2, device=x.device)
    angles = positions.float()[:, None] * base ** (-2.0 * i.float() / D)
    R = torch.zeros(len(positions), D, D, device=x.device)
    R[:, 2 * i, 2 * i], R[:, 2 * i, 2 * i + 1] = angles.cos(), -angles.sin()
    R[:, 2 * i + 1, 2 * i], R[:, 2 * i + 1, 2 * i + 1] = angles.sin(), angles.cos()
    return torch.einsum("tij,bhtj->bhti", R, x.float()).to(x.dtype)
