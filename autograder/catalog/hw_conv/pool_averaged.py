"""maxpool2d_backward: spreads each gradient evenly over its window (average-pool backward)."""
BREAKS = "maxpool2d_backward"


def maxpool2d_backward(grad_out, x, kernel_size, stride):
    N, C, H, W = x.shape
    H_out, W_out = conv_output_size(H, kernel_size, stride, 0), conv_output_size(W, kernel_size, stride, 0)
    if tuple(grad_out.shape) != (N, C, H_out, W_out):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {(N, C, H_out, W_out)}")
    windows = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)    # (N, C, H', W', k, k)
    best = windows.reshape(N, C, H_out, W_out, -1).argmax(dim=-1)
    rows = torch.arange(H_out, device=x.device).view(-1, 1) * stride + best // kernel_size
    cols = torch.arange(W_out, device=x.device).view(1, -1) * stride + best % kernel_size
    spread = grad_out.reshape(N * C, 1, -1).expand(-1, kernel_size ** 2, -1) / kernel_size ** 2
    return F.fold(spread, (H, W), kernel_size, stride=stride).view(N, C, H, W)
