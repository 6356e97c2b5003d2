"""conv2d_backward: weight gradient averaged over the batch instead of summed."""
BREAKS = "conv2d_backward"


def conv2d_backward(grad_out, x, weight, stride=1, padding=0):
    N, C, H, W = x.shape
    n_filters, _, KH, KW = weight.shape
    if weight.shape[1] != C:
        raise ValueError(f"weight has {weight.shape[1]} input channels, x has {C}")
    H_out, W_out = conv_output_size(H, KH, stride, padding), conv_output_size(W, KW, stride, padding)
    if tuple(grad_out.shape) != (N, n_filters, H_out, W_out):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {(N, n_filters, H_out, W_out)}")
    xp = F.pad(x, (padding,) * 4)
    grad_xp = torch.zeros_like(xp)
    grad_weight = torch.zeros_like(weight)
    for a in range(KH):
        for b in range(KW):
            rows, cols = slice(a, a + stride * H_out, stride), slice(b, b + stride * W_out, stride)
            patch = xp[:, :, rows, cols]                                       # (N, C, H', W')
            grad_weight[:, :, a, b] = torch.einsum("nfij,ncij->fc", grad_out, patch)
            grad_xp[:, :, rows, cols] += torch.einsum("nfij,fc->ncij", grad_out, weight[:, :, a, b])
    grad_x = grad_xp[:, :, padding:padding + H, padding:padding + W]
    return grad_x, grad_weight / N, grad_out.sum(dim=(0, 2, 3))
