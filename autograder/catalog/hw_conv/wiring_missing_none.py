"""wiring: Conv2dFunction.backward returns 3 gradients for 5 forward inputs (no None for stride and padding)."""
BREAKS = "wiring"


class Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return conv2d_forward(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        return conv2d_backward(grad_out, x, weight, ctx.stride, ctx.padding)


class MaxPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride):
        ctx.save_for_backward(x)
        ctx.kernel_size, ctx.stride = kernel_size, stride
        return maxpool2d_forward(x, kernel_size, stride)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return maxpool2d_backward(grad_out, x, ctx.kernel_size, ctx.stride), None, None


def conv2d_layer(x, weight, bias, stride=1, padding=0):
    return Conv2dFunction.apply(x, weight, bias, stride, padding)


def maxpool2d_layer(x, kernel_size, stride):
    return MaxPool2dFunction.apply(x, kernel_size, stride)
