"""The public specification of the assignment ``hw-conv`` (conv2d / max-pool backward, a CNN on digits).

The notebook's locked cells import from here: the graded cells and their points, the forbidden names,
tolerances, the visible cases and the *given* code the students build on (the forward layers, the
CNN's initialization). The hidden-test suite (``autograder.suites.hw_conv``) imports the same objects
and adds hidden cases and trusted references. After a change, regenerate the release
(``python -m autograder generate hw-conv``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lec4.conv import conv_output_size  # noqa: F401 (one rule for the output size; the notebook imports it from here)

ASSIGNMENT = "hw-conv"
NOTEBOOK = "hw-conv.ipynb"

# grade_id of every graded cell -> (the function it grades, its points). cnn_logits is given; it runs
# through the student's Conv2dFunction / MaxPool2dFunction (the solution cell "wiring").
GRADE_CELLS = {
    "test_conv2d_backward_visible": ("conv2d_backward", 6),
    "test_conv2d_backward_hidden": ("conv2d_backward", 14),
    "test_maxpool2d_backward_visible": ("maxpool2d_backward", 4),
    "test_maxpool2d_backward_hidden": ("maxpool2d_backward", 8),
    "test_wiring": ("cnn_logits", 3),
    "test_train_cnn": ("cnn_logits", 5),
}

# Checks before the deadline (`python -m autograder serve`): "verdicts" or "count" per graded cell
# (see lec4.homework.hw_attention.PRE_DEADLINE).
PRE_DEADLINE = {
    "test_conv2d_backward_visible": "verdicts", "test_conv2d_backward_hidden": "count",
    "test_maxpool2d_backward_visible": "verdicts", "test_maxpool2d_backward_hidden": "count",
    "test_wiring": "verdicts", "test_train_cnn": "count",
}
PRE_DEADLINE_CHECKS_PER_DAY = 5  # checks per student per rolling 24 hours

# Asking autograd for the gradient is not writing the backward pass.
NO_AUTOGRAD = frozenset({"autograd", "backward", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "enable_grad",
                         "set_grad_enabled", "requires_grad_"})
# PyTorch's own layers and their gradients.
TORCH_CONV = frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                        "conv2d_input", "conv2d_weight", "convolution_backward", "_convolution", "Conv2d",
                        "ConvTranspose2d"})
TORCH_POOL = frozenset({"max_pool2d", "max_pool2d_with_indices", "max_pool2d_with_indices_backward",
                        "max_unpool2d", "MaxPool2d", "MaxUnpool2d", "adaptive_max_pool2d", "fractional_max_pool2d"})
# The visible tests' references below compute the graded gradients: forbidden where they would solve the task.
FORBIDDEN_CONV = TORCH_CONV | NO_AUTOGRAD | {"conv2d_backward_reference", "conv_expected"}
FORBIDDEN_POOL = TORCH_POOL | NO_AUTOGRAD | {"maxpool2d_backward_reference", "pool_expected"}
# function -> names it (and every helper it calls) must not use: lec4.homework.checking.forbidden_uses.
# The CNN (cnn_logits and everything it calls) must not fall back to PyTorch's own layers.
FORBIDDEN = {
    "conv2d_backward": FORBIDDEN_CONV,
    "maxpool2d_backward": FORBIDDEN_POOL,
    "cnn_logits": TORCH_CONV | TORCH_POOL,
}

# (atol, rtol) of every value check per dtype: the notebook's visible tests and the grader's checks.
TOLERANCES = {torch.float64: (1e-9, 1e-7), torch.float32: (1e-3, 1e-4)}

# Visible cases. conv2d_backward: (N, C, H, W, F, KH, KW, stride, padding);
# maxpool2d_backward: (N, C, H, W, kernel_size, stride).
CONV_CASES = [(2, 3, 6, 6, 4, 3, 3, 1, 0), (2, 2, 7, 8, 3, 3, 2, 2, 1)]
POOL_CASES = [(2, 3, 8, 8, 2, 2),    # the lecture's 2x2, stride 2
              (2, 2, 7, 9, 3, 1),    # overlapping windows
              (1, 2, 9, 8, 3, 2)]    # overlap, odd sizes
# The value checks of the visible test cells, (case, seed, dtype): the notebook runs exactly these
# (inputs from conv_inputs / pool_inputs, expectations from conv_expected / pool_expected, TOLERANCES),
# and so does the grader for the same cells, so passing the visible cell means passing its checks.
CONV_VISIBLE = [*((case, 100 + i, torch.float64) for i, case in enumerate(CONV_CASES)),
                ((1, 2, 5, 5, 3, 3, 3, 1, 0), 110, torch.float32)]
POOL_VISIBLE = [*((case, 600 + i, torch.float64) for i, case in enumerate(POOL_CASES)),
                ((1, 1, 6, 6, 2, 2), 610, torch.float32)]


# ----------------------------------------------------------------------------- given code
def conv2d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1,
                   padding: int = 0) -> torch.Tensor:
    """The lecture's convolution layer (a cross-correlation), computed by im2col.

    x (N, C, H, W), weight (F, C, KH, KW), bias (F,) or None -> (N, F, H', W').
    """
    N, _, H, W = x.shape
    n_filters, _, KH, KW = weight.shape
    cols = F.unfold(x, (KH, KW), padding=padding, stride=stride)    # (N, C*KH*KW, H'*W'): one column per window
    out = weight.reshape(n_filters, -1) @ cols                       # (N, F, H'*W')
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(N, n_filters, conv_output_size(H, KH, stride, padding), conv_output_size(W, KW, stride, padding))


def maxpool2d_forward(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Max over kernel_size x kernel_size windows: x (N, C, H, W) -> (N, C, H', W')."""
    windows = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)   # (N, C, H', W', k, k)
    return windows.amax(dim=(-2, -1))


def _generator(seed: int | torch.Generator) -> torch.Generator:
    """``seed`` itself when it is a generator (draws continue from it), else a fresh one seeded with it."""
    return seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)


def distinct_values(shape, seed: int | torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A tensor of ``shape`` whose entries all differ (a shuffled grid in [-2, 2), exact in float32 too),
    so that every max-pool window has one maximum. ``seed``: an int, or a generator to draw from."""
    gen = _generator(seed)
    n = 1
    for size in shape:
        n *= size
    return (torch.randperm(n, generator=gen).to(dtype) / n - 0.5).reshape(shape) * 4


def init_cnn_params(seed: int = 0, dtype: torch.dtype = torch.float32, device="cpu") -> list[torch.Tensor]:
    """Parameters [conv1_w (8,1,3,3), conv1_b (8,), conv2_w (16,8,3,3), conv2_b (16,), fc_w (10,64), fc_b (10,)].

    Each is standard normal / sqrt(fan_in), drawn from ``seed`` in float32 (in float64 when ``dtype``
    is float64), then cast to ``dtype`` on ``device``.
    """
    gen = torch.Generator().manual_seed(seed)
    draw = torch.float64 if dtype == torch.float64 else torch.float32
    shapes = [(8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (10, 64), (10,)]
    fan_in = [9, 9, 72, 72, 64, 64]
    return [(torch.randn(shape, generator=gen, dtype=draw) / fan ** 0.5).to(dtype=dtype, device=device)
            for shape, fan in zip(shapes, fan_in)]


# ----------------------------------------------------------------------------- visible references
def conv2d_backward_reference(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                              bias: torch.Tensor | None, stride: int, padding: int) -> list[torch.Tensor]:
    """[dJ/dx, dJ/dweight, dJ/dbias] of ``F.conv2d`` by autograd, for dJ/dy = ``grad_out`` (N, F, H', W').

    Forbidden in ``conv2d_backward`` (it is the answer).
    """
    if bias is None:
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    F.conv2d(*leaves, stride=stride, padding=padding).backward(grad_out)
    return [t.grad for t in leaves]


def maxpool2d_backward_reference(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: int,
                                 stride: int) -> torch.Tensor:
    """dJ/dx (N, C, H, W) of ``F.max_pool2d`` by autograd. Forbidden in ``maxpool2d_backward``."""
    leaf = x.detach().clone().requires_grad_()
    F.max_pool2d(leaf, kernel_size, stride).backward(grad_out)
    return leaf.grad


# ----------------------------------------------------------------------------- test inputs
def conv_inputs(case, seed: int, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """[grad_out, x, weight] for ``case`` (N, C, H, W, F, KH, KW, stride, padding): drawn in float64 from
    ``seed`` (x, weight, then grad_out), cast to ``dtype``."""
    N, C, H, W, n_filters, KH, KW, stride, padding = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, H, W, dtype=torch.float64, generator=gen)
    weight = torch.randn(n_filters, C, KH, KW, dtype=torch.float64, generator=gen)
    out_shape = (N, n_filters, conv_output_size(H, KH, stride, padding), conv_output_size(W, KW, stride, padding))
    grad_out = torch.randn(out_shape, dtype=torch.float64, generator=gen)
    return [t.to(dtype) for t in (grad_out, x, weight)]


def conv_expected(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: int,
                  padding: int) -> list[torch.Tensor]:
    """[grad_x, grad_weight, grad_bias] by autograd in float64 at exactly these inputs, cast to x's dtype."""
    return [g.to(x.dtype) for g in conv2d_backward_reference(grad_out.double(), x.double(), weight.double(), None,
                                                              stride, padding)]


def pool_inputs(case, seed: int | torch.Generator, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """[grad_out, x] for ``case`` (N, C, H, W, kernel_size, stride): x of distinct values (one maximum per
    window), then grad_out, drawn in float64 from ``seed`` (or a running generator), cast to ``dtype``."""
    N, C, H, W, k, s = case
    gen = _generator(seed)
    x = distinct_values((N, C, H, W), gen)
    grad_out = torch.randn((N, C, conv_output_size(H, k, s), conv_output_size(W, k, s)), dtype=torch.float64,
                           generator=gen)
    return [grad_out.to(dtype), x.to(dtype)]


def pool_expected(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """grad_x by autograd in float64 at exactly these inputs, cast to x's dtype."""
    return maxpool2d_backward_reference(grad_out.double(), x.double(), kernel_size, stride).to(x.dtype)
