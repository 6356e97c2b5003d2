"""conv2d_backward: input gradient as a full correlation of the dilated grad_out with the kernel NOT rotated by 180 degrees."""
BREAKS = "conv2d_backward"


def conv2d_backward(grad_out, x, weight, stride=1, padding=0):
    N, C, H, W = x.shape
    n_filters, _, KH, KW = weight.shape
    if weight.shape[1] != C:
        raise ValueError(f"weight has {weight.shape[1]} input channels, x has {C}")
    H_out, W_out = conv_output_size(H, KH, stride, padding), conv_output_size(W, KW, stride, padding)
    if tuple(grad_out.shape) != (N, n_filters, H_out, W_out):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {(N, n_filters, H_out, W_out)}")
    Hp, Wp = H + 2 * padding, W + 2 * padding
    cols = F.unfold(x, (KH, KW), padding=padding, stride=stride)             # (N, C*KH*KW, L)
    g = grad_out.reshape(N, n_filters, -1)
    grad_weight = torch.einsum("nfl,nkl->fk", g, cols).reshape(weight.shape)
    # dilate grad_out with stride - 1 zeros, pad by K - 1, correlate with the (should-be-rotated) kernel
    dilated = grad_out.new_zeros(N, n_filters, (H_out - 1) * stride + 1, (W_out - 1) * stride + 1)
    dilated[:, :, ::stride, ::stride] = grad_out
    dilated = F.pad(dilated, (KW - 1, Wp - dilated.shape[3], KH - 1, Hp - dilated.shape[2]))
    kernel = weight.transpose(0, 1)                                          # bug: weight.flip(2, 3) needed
    windows = F.unfold(dilated, (KH, KW))                                    # (N, F*KH*KW, Hp*Wp)
    grad_xp = (kernel.reshape(C, -1) @ windows).reshape(N, C, Hp, Wp)
    grad_x = grad_xp[:, :, padding:padding + H, padding:padding + W]
    return grad_x, grad_weight, grad_out.sum(dim=(0, 2, 3))
