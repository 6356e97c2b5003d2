"""maxpool2d_backward: window origins computed with kernel_size instead of stride."""
BREAKS = "maxpool2d_backward"


def maxpool2d_backward(grad_out, x, kernel_size, stride):
    N, C, H, W = x.shape
    H_out, W_out = conv_output_size(H, kernel_size, stride, 0), conv_output_size(W, kernel_size, stride, 0)
    if tuple(grad_out.shape) != (N, C, H_out, W_out):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {(N, C, H_out, W_out)}")
    windows = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)    # (N, C, H', W', k, k)
    best = windows.reshape(N, C, H_out, W_out, -1).argmax(dim=-1)
    rows = torch.arange(H_out, device=x.device).view(-1, 1) * kernel_size + best // kernel_size
    cols = torch.arange(W_out, device=x.device).view(1, -1) * kernel_size + best % kernel_size
    grad_x = torch.zeros_like(x).view(N, C, H * W)
    grad_x.scatter_add_(2, (rows * W + cols).reshape(N, C, -1), grad_out.reshape(N, C, -1))
    return grad_x.view(N, C, H, W)
