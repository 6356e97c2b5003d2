"""The layers of a CNN as modules, a LeNet-5-style network and its training loop.

Each layer follows the lecture's "Layers of a CNN" slides:

- :class:`ReLU`, :class:`Softmax`, :class:`SoftmaxCrossEntropy` and :class:`FullyConnected`
  (a linear layer on a flattened 3D input) have *explicit* backward passes, written from
  the lecture's formulas as ``torch.autograd.Function``\\ s and tested against autograd.
- :class:`Conv2d` and :class:`MaxPool2d` compute their forward pass with :mod:`lec4.conv`
  and let autograd differentiate it. Writing their backward passes by hand is the
  hw-conv assignment, so it is deliberately not done here.

:class:`LeNet5` stacks them (upsampling the 8x8 digits to LeNet's 32x32 input);
:func:`train_classifier` trains any classifier and logs through :mod:`lec4.tracking`.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lec4.conv import conv2d_unfold, conv_output_size, max_pool2d
from lec4.data import Split
from lec4.tracking import start_run
from lec4.utils import check_shape, count_parameters, seed_everything  # noqa: F401 (count_parameters: public here)

# --------------------------------------------------------------------------- explicit backward


class ReLUFunction(torch.autograd.Function):
    """y = max(0, x) elementwise; dJ/dx_j = dJ/dy_j if x_j > 0 else 0 (the subderivative 0 at 0)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensors
        return grad_y * (x > 0).to(grad_y.dtype)


class SoftmaxFunction(torch.autograd.Function):
    """y_i = exp(x_i) / sum_k exp(x_k) over the last dim (K), for inputs (..., K).

    Backward, the lecture's Jacobian dy_i/dx_j = y_i (1[i = j] - y_j) contracted with
    dJ/dy: dJ/dx_j = y_j (dJ/dy_j - sum_i dJ/dy_i y_i), without forming the K x K matrix.
    """

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x - x.amax(dim=-1, keepdim=True))  # shift: same result, no overflow
        y = y / y.sum(dim=-1, keepdim=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensors
        return y * (grad_y - (grad_y * y).sum(dim=-1, keepdim=True))


class SoftmaxCrossEntropyFunction(torch.autograd.Function):
    """Mean over the batch of -log softmax(logits)[target]; logits (B, K), targets (B,).

    Fused because the gradient simplifies to (softmax(logits) - onehot(target)) / B.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        ctx.save_for_backward(log_probs, targets)
        return -log_probs.gather(1, targets[:, None]).mean()

    @staticmethod
    def backward(ctx, grad_loss):
        log_probs, targets = ctx.saved_tensors
        grad = log_probs.exp()
        grad[torch.arange(len(targets)), targets] -= 1.0
        return grad * (grad_loss / len(targets)), None


class FullyConnectedFunction(torch.autograd.Function):
    """y = alpha^T x_hat + alpha_0 with x_hat the flattened input (the lecture's 3D FC layer).

    x (B, C, H, W) or any (B, ...) flattening to (B, A); alpha (A, B_out); alpha_0 (B_out,).
    Backward: dJ/dx_hat = dJ/dy alpha^T (reshaped back to x's shape),
    dJ/dalpha = x_hat^T dJ/dy, dJ/dalpha_0 = sum over the batch of dJ/dy.
    """

    @staticmethod
    def forward(ctx, x, alpha, alpha0):
        x_hat = x.reshape(x.shape[0], -1)
        ctx.save_for_backward(x_hat, alpha)
        ctx.input_shape = x.shape
        return x_hat @ alpha + alpha0

    @staticmethod
    def backward(ctx, grad_y):
        x_hat, alpha = ctx.saved_tensors
        grad_x = (grad_y @ alpha.T).reshape(ctx.input_shape)
        return grad_x, x_hat.T @ grad_y, grad_y.sum(dim=0)


# --------------------------------------------------------------------------- layers as modules


class ReLU(nn.Module):
    """Elementwise max(0, x) with the lecture's explicit backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ReLUFunction.apply(x)


class Softmax(nn.Module):
    """Softmax over the last dim with the lecture's Jacobian backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SoftmaxFunction.apply(x)


class SoftmaxCrossEntropy(nn.Module):
    """The training loss: mean cross-entropy of softmax(logits (B, K)) and targets (B,)."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_shape("logits", logits, "(B, K)", 2)
        check_shape("targets", targets, "(B,)", 1)
        if targets.dtype != torch.int64:
            raise TypeError(f"targets must be int64 class indices, got {targets.dtype}")
        if len(targets) != len(logits):
            raise ValueError(f"{len(logits)} rows of logits but {len(targets)} targets")
        if len(targets) and (targets.min() < 0 or targets.max() >= logits.shape[1]):
            raise ValueError(f"targets must be in [0, {logits.shape[1]}), got range "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        return SoftmaxCrossEntropyFunction.apply(logits, targets)


class FullyConnected(nn.Module):
    """Linear layer on a flattened input: (B, C, H, W) or (B, A) -> (B, out_features)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # PyTorch's nn.Linear initialisation
        self.alpha = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.alpha0 = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x[0].numel() != self.alpha.shape[0]:
            raise ValueError(f"input {tuple(x.shape)} must flatten to (B, {self.alpha.shape[0]})")
        return FullyConnectedFunction.apply(x, self.alpha, self.alpha0)


class Conv2d(nn.Module):
    """Convolutional layer: (B, C_in, H, W) -> (B, C_out, H_out, W_out), weights alpha, bias beta.

    Forward is :func:`lec4.conv.conv2d_unfold`; the backward pass is autograd's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0):
        super().__init__()
        self.stride, self.padding, self.kernel_size = stride, padding, kernel_size
        bound = 1 / math.sqrt(in_channels * kernel_size**2)  # as nn.Conv2d
        self.alpha = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size)
                                  .uniform_(-bound, bound))
        self.beta = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_unfold(x, self.alpha, self.beta, self.stride, self.padding)

    def extra_repr(self) -> str:
        c_out, c_in, k, _ = self.alpha.shape
        return f"{c_in}, {c_out}, kernel_size={k}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(nn.Module):
    """Max-pooling (forward :func:`lec4.conv.max_pool2d`; backward by autograd)."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


# --------------------------------------------------------------------------- LeNet-5


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) for the 8x8 digits, built from this module's layers.

    The 8x8 digits are upsampled (bilinear) to LeNet's 32x32 input, so with the default
    ``kernel_size=5`` the layer sizes are those of LeNet-5 in its modern form: ReLU for the scaled
    tanh, max-pooling for the trainable subsampling, every C3 map connected to all six S2 maps and
    a linear 10-way output instead of fixed RBF units: 61,706 parameters, against the 1998 paper's
    60,000 (:func:`lec4.architectures.lenet5_paper_layer_params`). C5, a 5x5 convolution over a 5x5
    map, is the fully-connected F5 here.
    Other kernel sizes keep the layout and change the map sizes.

    (B, 1, 8, 8) -> logits (B, num_classes).
    """

    def __init__(self, kernel_size: int = 5, num_classes: int = 10, input_size: int = 32):
        super().__init__()
        self.input_size = input_size
        c1 = conv_output_size(input_size, kernel_size)
        c3 = conv_output_size(c1 // 2, kernel_size)
        self.layers = nn.ModuleDict(OrderedDict([
            ("C1 conv", Conv2d(1, 6, kernel_size)), ("C1 relu", ReLU()), ("S2 max-pool", MaxPool2d(2)),
            ("C3 conv", Conv2d(6, 16, kernel_size)), ("C3 relu", ReLU()), ("S4 max-pool", MaxPool2d(2)),
            ("F5 fully-connected", FullyConnected(16 * (c3 // 2) ** 2, 120)), ("F5 relu", ReLU()),
            ("F6 fully-connected", FullyConnected(120, 84)), ("F6 relu", ReLU()),
            ("output", FullyConnected(84, num_classes)),
        ]))

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        check_shape("x", x, "(B, 1, H, W)", 4)
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                             align_corners=False)

    def feature_maps(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Every intermediate activation, in order, starting with the upsampled input."""
        maps = OrderedDict(input=self.upsample(x))
        h = maps["input"]
        for name, layer in self.layers.items():
            h = layer(h)
            maps[name] = h
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return next(reversed(self.feature_maps(x).values()))


# --------------------------------------------------------------------------- training and evaluation


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Predicted class (N,) for inputs (N, ...), ``batch_size`` inputs at a time.

    (Not more by default: the im2col columns of a larger batch of LeNet-5's 32x32 inputs
    outgrow the CPU's caches, and evaluating gets slower, not faster.)
    """
    model.eval()
    return torch.cat([model(x[i:i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    check_shape("y_true", y_true, "(N,)", 1)
    check_shape("y_pred", y_pred, "(N,)", 1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)} differ in length")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must hold classes in [0, {num_classes})")
    flat = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


@dataclass
class TrainResult:
    """What :func:`train_classifier` returns: the run's history, final accuracies and time."""

    history: list[dict] = field(default_factory=list)
    train_accuracy: float = 0.0
    test_accuracy: float = 0.0
    seconds: float = 0.0
    parameters: int = 0

    def series(self, key: str) -> tuple[list[int], list[float]]:
        rows = [r for r in self.history if key in r]
        if not rows:
            raise KeyError(f"{key!r} was never logged")
        return [r["step"] for r in rows], [r[key] for r in rows]


def sgd_step(parameters, lr: float) -> None:
    """The lecture's update, in place: theta <- theta - lr * grad J(theta), for every parameter with a gradient."""
    with torch.no_grad():
        for p in parameters:
            if p.grad is not None:
                p -= lr * p.grad


def train_classifier(model: nn.Module, train: Split, test: Split, epochs: int = 10,
                     lr: float = 3e-3, batch_size: int = 64, seed: int = 0,
                     run_name: str | None = None, config: dict | None = None,
                     optimizer: str = "adam") -> TrainResult:
    """Minibatch training on the softmax cross-entropy, one tracked run.

    ``optimizer="sgd"`` is the lecture's Algorithm 1 on minibatches: forward, backward, then
    :func:`sgd_step` with the fixed step size ``lr``. ``"adam"`` (the default) replaces the step by
    Adam's, a per-parameter step size from running averages of the gradient and its square,
    which trains these small nets in fewer epochs than plain SGD at a single learning rate.

    Logs ``train/loss`` every step and, every epoch, ``train/accuracy`` and ``test/accuracy``
    through :func:`lec4.tracking.start_run` (W&B offline; disabled under pytest). The epoch's
    ``train/accuracy`` is counted on the minibatches as they are trained on (each by the weights
    before its step: no second pass over the training set); the returned ``train_accuracy`` is
    evaluated on the whole training set after the last epoch, ``test_accuracy`` likewise.
    ``seconds`` is the wall-clock training time (evaluation included).
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    gen = seed_everything(seed)
    loss_fn = SoftmaxCrossEntropy()
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    adam = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else None
    run = start_run(run_name or type(model).__name__,
                    config={"epochs": epochs, "lr": lr, "optimizer": optimizer, "batch_size": batch_size,
                            "seed": seed, "parameters": count_parameters(model), **(config or {})})
    start, step = time.perf_counter(), 0
    for epoch in range(epochs):
        model.train()
        correct = 0                                                  # this epoch's, counted as it trains
        for idx in torch.randperm(len(train), generator=gen).split(batch_size):
            logits = model(train.x[idx])
            loss = loss_fn(logits, train.y[idx])                     # forward: J(theta) on the minibatch
            correct += int((logits.argmax(dim=1) == train.y[idx]).sum())
            model.zero_grad()
            loss.backward()                                          # backward: grad J(theta)
            if adam is None:
                sgd_step(params, lr)                                 # update: theta <- theta - lr grad J
            else:
                adam.step()
            run.log({"train/loss": loss.item()}, step=step)
            step += 1
        test_acc = (predict(model, test.x) == test.y).float().mean().item()
        run.log({"train/accuracy": correct / len(train), "test/accuracy": test_acc, "epoch": epoch + 1}, step=step)
    train_acc = (predict(model, train.x) == train.y).float().mean().item()
    seconds = time.perf_counter() - start
    run.finish()
    return TrainResult(run.history, train_acc, test_acc, seconds, count_parameters(model))


# --------------------------------------------------------------------------- index maps of the layers


def window_input_index(out_index: int, offset: int, stride: int) -> int:
    """The lecture's max-pooling index map, which is also the convolution's: m = s(i - 1) + q.

    1-based like the slides: output position i = 1 ... H_out and window offset q = 1 ... K read
    input position m = s(i - 1) + q, which runs from 1 to s(H_out - 1) + K <= H.
    """
    if min(out_index, offset, stride) < 1:
        raise ValueError(f"indices are 1-based and the stride positive, got i={out_index}, q={offset}, s={stride}")
    return stride * (out_index - 1) + offset


def slide_conv_input_index(out_index: int, offset: int, stride: int) -> int:
    """The index of the lecture's "3D Convolutional Layer" slide, x_{h' + m s}: as written (wrong).

    The stride multiplies the kernel offset m instead of the output position h': the kernel's taps
    land s apart (a dilated kernel), neighbouring outputs are one pixel apart, and for m = K the
    index passes the input's end. Kept to show the slide's error next to :func:`window_input_index`.
    """
    return out_index + offset * stride


# --------------------------------------------------------------------------- how sure is an accuracy?


def accuracy_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for an accuracy of ``correct`` out of ``n`` (z = 1.96: 95 %)."""
    if n < 1 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n >= 1, got correct={correct}, n={n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def mcnemar_p(y_true: torch.Tensor, pred_a: torch.Tensor, pred_b: torch.Tensor) -> tuple[int, int, float]:
    """Exact McNemar test of two classifiers on the same test set.

    Returns (b, c, p): b test items only A gets right, c only B gets right, and the two-sided
    p-value of "A and B are equally accurate" (under it, b ~ Binomial(b + c, 1/2)). Items both get
    right or both get wrong say nothing about which is better.
    """
    for name, t in (("y_true", y_true), ("pred_a", pred_a), ("pred_b", pred_b)):
        check_shape(name, t, "(N,)", 1)
    if not y_true.shape == pred_a.shape == pred_b.shape:
        raise ValueError(f"need three (N,) tensors of one length, got {tuple(y_true.shape)}, "
                         f"{tuple(pred_a.shape)}, {tuple(pred_b.shape)}")
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n if n else 1.0
    return b, c, min(1.0, 2 * tail)


# --------------------------------------------------------------------------- why residual connections


def layer_gradient_norms(depth: int, residual: bool, channels: int = 8, size: int = 8, batch: int = 4,
                         seed: int = 0) -> list[float]:
    """Gradient norm of each layer's kernel in a freshly initialised stack of 3x3 conv + ReLU layers.

    Plain: h <- relu(conv(h)). Residual (He et al., 2016): h <- h + relu(conv(h)), so that
    dJ/dh_in = dJ/dh_out (I + d relu(conv)/dh): an identity path carries the gradient to the first
    layers whatever the layers in between do. PyTorch's default initialisation, input (B, C, S, S),
    loss = mean of the last layer's output. Returns ``depth`` norms, first layer first.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    convs = [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(depth)]
    h = torch.randn(batch, channels, size, size, generator=gen)
    for conv in convs:
        h = h + torch.relu(conv(h)) if residual else torch.relu(conv(h))
    h.mean().backward()
    return [conv.weight.grad.norm().item() for conv in convs]


@torch.no_grad()
def top_activating(model: LeNet5, x: torch.Tensor, layer: str, count: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """For every channel of ``layer``: the ``count`` inputs of ``x`` that make its map largest on average.

    Returns (indices (C, count), mean activations (C, count)), largest first: the
    "which inputs excite this unit" visualization (Zeiler & Fergus, 2014, show image patches).
    """
    model.eval()
    maps = model.feature_maps(x)
    if layer not in maps:
        raise KeyError(f"unknown layer {layer!r}; the model's layers are {list(maps)}")
    act = maps[layer]
    if act.dim() != 4:
        raise ValueError(f"layer {layer!r} has no channel maps (its output has shape {tuple(act.shape)})")
    if not 1 <= count <= len(x):
        raise ValueError(f"count must be in [1, {len(x)}], got {count}")
    mean = act.mean(dim=(2, 3)).T                                   # (C, N)
    values, indices = mean.topk(count, dim=1)
    return indices, values
