"""conv2d_backward: correct values from PyTorch's own conv gradients (torch.nn.grad.conv2d_input /
conv2d_weight), which the assignment forbids: it asks for the backward pass written by hand."""
BREAKS = "conv2d_backward"


def conv2d_backward(grad_out, x, weight, stride=1, padding=0):
    grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, stride=stride, padding=padding)
    grad_weight = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, stride=stride, padding=padding)
    return grad_x, grad_weight, grad_out.sum(dim=(0, 2, 3))
