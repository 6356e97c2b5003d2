"""conv2d_backward (im2col): the weight matrix is reshaped to (C*KH*KW, F) instead of transposed, mixing the channel axes in grad_x."""
BREAKS = "conv2d_backward"


def conv2d_backward(grad_out, x, weight, stride=1, padding=0):
    N, C, H, W = x.shape
    n_filters, _, KH, KW = weight.shape
    if weight.shape[1] != C:
        raise ValueError(f"weight has {weight.shape[1]} input channels, x has {C}")
    H_out, W_out = conv_output_size(H, KH, stride, padding), conv_output_size(W, KW, stride, padding)
    if tuple(grad_out.shape) != (N, n_filters, H_out, W_out):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {(N, n_filters, H_out, W_out)}")
    cols = F.unfold(x, (KH, KW), padding=padding, stride=stride)             # (N, C*KH*KW, L)
    g = grad_out.reshape(N, n_filters, -1)                                   # (N, F, L)
    grad_weight = (g @ cols.transpose(1, 2)).sum(0).reshape(weight.shape)
    grad_cols = weight.reshape(C * KH * KW, n_filters) @ g                   # bug: needs .reshape(F, -1).t()
    grad_x = F.fold(grad_cols, (H, W), (KH, KW), padding=padding, stride=stride)
    return grad_x, grad_weight, grad_out.sum(dim=(0, 2, 3))
