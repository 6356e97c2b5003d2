"""Diagrams of the CNN chapter, drawn from the numbers and layer lists that ``lec4`` computes.

- :func:`conv_step` / :func:`draw_conv_step` — one step of a convolution: the input with the
  highlighted window, the kernel, the output with the highlighted cell, and the arithmetic of
  that cell written out (like the correlation figure of Dive into Deep Learning). The numbers
  drawn are the ones :func:`lec4.conv.convolve2d` computes.
- :func:`network_blocks` / :func:`draw_networks` — LeNet-5, AlexNet, VGG-19, ResNet-152 as stacks
  of blocks, grouped and labelled from the layer lists of :mod:`lec4.architectures`, with the
  output shape of every block.
- :func:`residual_block_layers` / :func:`draw_residual_block` — a plain block next to a residual
  block (the identity path around the layers, as in He et al., 2016, Figure 2).

Every function returns the data it draws, so the tests check the data, not pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from lec4 import architectures as arch
from lec4.conv import convolve2d
from lec4.utils import check_shape

# Colours that read on a white figure in both site themes (the figure keeps its white background).
WINDOW_COLOUR = "#3b75af"     # highlighted input window / kernel
OUTPUT_COLOUR = "#d1762f"     # highlighted output cell
KIND_COLOURS = {"input": "#e8e8e8", "conv": "#cfe3f5", "pool": "#fbe3c8", "fc": "#d9efd3",
                "bottleneck": "#cfe3f5", "output": "#e8e8e8"}
FONT = 11.0                   # points; with figures <= 8.5 in wide the smallest text (FONT - 1) renders >= 10 px


def _fmt(value: float) -> str:
    """A grid entry as the slides print it: integers without a decimal point, else up to 3 digits."""
    value = float(value)
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


# --------------------------------------------------------------------------- one convolution step


@dataclass(frozen=True)
class ConvStep:
    """Output cell (row, col) of a 2-D convolution (no kernel flip), with the terms of its sum.

    ``window`` is the (k_h, k_w) patch of ``image`` under the kernel; ``value`` =
    sum(window * kernel) + bias.
    """

    image: torch.Tensor
    kernel: torch.Tensor
    row: int
    col: int
    stride: int
    bias: float
    output: torch.Tensor     # the whole output map, from lec4.conv.convolve2d

    @property
    def window(self) -> torch.Tensor:
        k_h, k_w = self.kernel.shape
        r, c = self.row * self.stride, self.col * self.stride
        return self.image[r:r + k_h, c:c + k_w]

    @property
    def value(self) -> float:
        return float((self.window * self.kernel).sum()) + self.bias

    @property
    def terms(self) -> list[str]:
        """``"x×k"`` for every kernel entry, row by row (the bias last when non-zero)."""
        out = [f"{_fmt(x)}×{_fmt(k)}" for x, k in zip(self.window.flatten().tolist(), self.kernel.flatten().tolist())]
        return out + ([_fmt(self.bias)] if self.bias else [])

    @property
    def arithmetic(self) -> str:
        return " + ".join(self.terms) + f" = {_fmt(self.value)}"


def conv_step(image: torch.Tensor, kernel: torch.Tensor, row: int, col: int, stride: int = 1,
              bias: float = 0.0) -> ConvStep:
    """The arithmetic of output cell (row, col) (0-based) of ``image`` (H, W) convolved with ``kernel``."""
    check_shape("image", image, "(H, W)", 2)
    check_shape("kernel", kernel, "(k_h, k_w)", 2)
    image, kernel = image.double(), kernel.double()
    output = convolve2d(image, kernel, stride=stride) + bias
    h_out, w_out = output.shape
    if not (0 <= row < h_out and 0 <= col < w_out):
        raise ValueError(f"output cell ({row}, {col}) is outside the {h_out}x{w_out} output "
                         f"of a {tuple(kernel.shape)} kernel with stride {stride} on a {tuple(image.shape)} image")
    return ConvStep(image, kernel, row, col, stride, float(bias), output)


def _draw_grid(ax, values: torch.Tensor, x0: float, y0: float, highlight=None, colour=None, gid=None):
    """Draw a grid of numbers with its top-left corner at (x0, y0) (y grows downwards)."""
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            ax.add_patch(Rectangle((x0 + j, y0 + i), 1, 1, facecolor="white", edgecolor="#555555", lw=0.8))
            ax.text(x0 + j + 0.5, y0 + i + 0.5, _fmt(values[i, j]), ha="center", va="center", fontsize=FONT,
                    color="black")
    if highlight is not None:
        (r0, c0), (h, w) = highlight
        ax.add_patch(Rectangle((x0 + c0, y0 + r0), w, h, facecolor=colour, alpha=0.28, edgecolor=colour,
                               lw=2.5, gid=gid))


def draw_conv_step(step: ConvStep, titles=("input", "kernel", "output"), figsize=(8.0, 4.2)):
    """Input (window highlighted) ⋆ kernel = output (cell highlighted), the cell's arithmetic below.

    Returns the figure; its highlighted patches carry gid ``"window"``, ``"kernel"`` and ``"cell"``.
    """
    image, kernel, output = step.image, step.kernel, step.output
    gap = 1.6
    x_kernel = image.shape[1] + gap
    x_output = x_kernel + kernel.shape[1] + gap
    height = max(image.shape[0], output.shape[0])
    fig, ax = plt.subplots(figsize=figsize)
    k_h, k_w = kernel.shape
    _draw_grid(ax, image, 0, 0, ((step.row * step.stride, step.col * step.stride), (k_h, k_w)),
               WINDOW_COLOUR, "window")
    y_kernel = (image.shape[0] - k_h) / 2
    _draw_grid(ax, kernel, x_kernel, y_kernel, ((0, 0), (k_h, k_w)), WINDOW_COLOUR, "kernel")
    y_output = (image.shape[0] - output.shape[0]) / 2
    _draw_grid(ax, output, x_output, y_output, ((step.row, step.col), (1, 1)), OUTPUT_COLOUR, "cell")
    middle = image.shape[0] / 2
    ax.text(image.shape[1] + gap / 2, middle, "⋆", ha="center", va="center", fontsize=FONT + 8)
    ax.text(x_kernel + k_w + gap / 2, middle, "=", ha="center", va="center", fontsize=FONT + 8)
    for x, w, y, title in [(0, image.shape[1], 0, titles[0]), (x_kernel, k_w, y_kernel, titles[1]),
                           (x_output, output.shape[1], y_output, titles[2])]:
        ax.text(x + w / 2, y - 0.35, title, ha="center", va="bottom", fontsize=FONT + 0.5)
    ax.text(0, height + 0.6,
            step.arithmetic, ha="left", va="top", fontsize=FONT, color=OUTPUT_COLOUR, gid="arithmetic")
    ax.set_xlim(-0.2, x_output + output.shape[1] + 0.2)
    ax.set_ylim(height + 1.6, -1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- architectures as blocks


@dataclass(frozen=True)
class Block:
    """Consecutive layers of a network drawn as one box."""

    kind: str            # "conv", "pool", "fc", "bottleneck"
    label: str           # what the box says, e.g. "2 × 3×3 conv, 64"
    repeat: int          # how many layers (or bottleneck blocks) it groups
    depth: int           # weight layers on the main path (conv + fully-connected)
    params: int
    out_shape: tuple[int, int, int]

    @property
    def shape_label(self) -> str:
        c, h, w = self.out_shape
        return f"{c}" if h == w == 1 else f"{c}×{h}×{w}"


def _layer_key(layer) -> tuple:
    """Layers with the same key are grouped into one block (input channels may differ)."""
    if isinstance(layer, arch.Conv):
        return ("conv", layer.c_out, layer.k, layer.stride, layer.padding)
    if isinstance(layer, arch.Bottleneck):
        return ("bottleneck", layer.width)
    return ("single", id(layer))


def _label(layer, repeat: int, with_bn: bool) -> tuple[str, str]:
    times = f"{repeat} × " if repeat > 1 else ""
    if isinstance(layer, arch.Conv):
        stride = f", /{layer.stride}" if layer.stride > 1 else ""
        return "conv", f"{times}{layer.k}×{layer.k} conv, {layer.c_out}{stride}" + (" + BN" if with_bn else "")
    if isinstance(layer, arch.Pool):
        if layer.output is not None:
            return "pool", f"{layer.kind} pool to {layer.output}×{layer.output}"
        return "pool", f"{layer.k}×{layer.k} {layer.kind} pool, /{layer.stride}"
    if isinstance(layer, arch.Linear):
        return "fc", f"{times}FC {layer.n_out}"
    if isinstance(layer, arch.Bottleneck):
        w = layer.width
        return "bottleneck", f"{times}[1×1, {w} → 3×3, {w} → 1×1, {4 * w}]"
    raise ValueError(f"no block label for {layer!r}")


def network_blocks(layers: list, input_shape: tuple[int, int, int]) -> list[Block]:
    """Group a layer list of :mod:`lec4.architectures` into the blocks :func:`draw_networks` draws.

    Consecutive convolutions with the same kernel, width and stride, consecutive fully-connected
    layers of the same width and the bottleneck blocks of one ResNet stage each become one block;
    a batch-norm is folded into the convolution before it ("+ BN").
    """
    rows = arch.summary(layers, input_shape)
    blocks: list[Block] = []
    i = 0
    while i < len(rows):
        layer = rows[i].layer
        if isinstance(layer, arch.BatchNorm):
            raise ValueError(f"a batch-norm must follow a convolution, found {layer!r} at position {i}")
        j = i + 1
        group = [rows[i]]
        while j < len(rows):
            nxt = rows[j].layer
            if isinstance(nxt, arch.BatchNorm):
                group.append(rows[j])
                j += 1
                continue
            same = (_layer_key(nxt) == _layer_key(layer)
                    or (isinstance(layer, arch.Linear) and isinstance(nxt, arch.Linear)
                        and nxt.n_out == layer.n_out))
            if not same:
                break
            group.append(rows[j])
            j += 1
        main = [r for r in group if not isinstance(r.layer, arch.BatchNorm)]
        kind, label = _label(layer, len(main), with_bn=len(main) < len(group))
        blocks.append(Block(kind, label, len(main), sum(r.layer.depth for r in main),
                            sum(r.params for r in group), group[-1].out_shape))
        i = j
    return blocks


def draw_networks(networks: dict[str, tuple[list, tuple[int, int, int]]], figsize=None, box_width: float = 3.0):
    """Draw each network as a column of blocks from its input (top) to its output (bottom).

    ``networks`` maps a name to ``(layers, input_shape)``, e.g. ``{"LeNet-5": (arch.lenet5(), (1, 32, 32))}``.
    Each box names its layers; the output shape (C×H×W) is printed to its right.
    Returns ``(fig, {name: blocks})``.
    """
    if not networks:
        raise ValueError("draw_networks needs at least one network")
    all_blocks = {name: network_blocks(layers, shape) for name, (layers, shape) in networks.items()}
    n_rows = max(len(b) for b in all_blocks.values()) + 1  # + the input box
    row_h, box_h, col_w = 1.0, 0.72, box_width + 1.35
    if figsize is None:
        figsize = (1.05 * col_w * len(networks), 0.46 * (n_rows + 1.5) + 0.3)
    fig, ax = plt.subplots(figsize=figsize)
    arrow = dict(arrowstyle="-|>", color="#444444", lw=0.8, shrinkA=0, shrinkB=0)
    for col, (name, blocks) in enumerate(all_blocks.items()):
        x = col * col_w
        _, shape = networks[name]
        ax.text(x + box_width / 2, -0.4, name, ha="center", va="bottom", fontsize=FONT + 1, fontweight="bold")
        entries = [("input", "input image", "×".join(map(str, shape)))] + [(b.kind, b.label, b.shape_label)
                                                                          for b in blocks]
        for r, (kind, label, shape_label) in enumerate(entries):
            y = r * row_h
            ax.add_patch(FancyBboxPatch((x, y), box_width, box_h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                        facecolor=KIND_COLOURS[kind], edgecolor="#444444", lw=0.8))
            ax.text(x + box_width / 2, y + box_h / 2, label, ha="center", va="center", fontsize=FONT - 1,
                    gid="block")
            ax.text(x + box_width + 0.12, y + box_h / 2, shape_label, ha="left", va="center",
                    fontsize=FONT - 1, color="#333333", gid="shape")
            if r:
                ax.annotate("", xy=(x + box_width / 2, y), xytext=(x + box_width / 2, y - (row_h - box_h)),
                            arrowprops=arrow)
    ax.set_xlim(-0.1, col_w * len(networks) - 0.4)
    ax.set_ylim(n_rows * row_h, -0.9)
    ax.axis("off")
    fig.tight_layout()
    return fig, all_blocks


# --------------------------------------------------------------------------- the residual block


def residual_block_layers(block: arch.Bottleneck | None = None) -> tuple[list[str], str]:
    """The labels of a residual block's main path and of its shortcut.

    ``None`` gives the basic block (3×3 conv, ReLU, 3×3 conv); a :class:`lec4.architectures.Bottleneck`
    gives its 1×1 → 3×3 → 1×1 convolutions (each followed by batch-norm, ReLU between them) and a
    "1×1 conv" shortcut when the block changes the shape, else the identity.
    """
    if block is None:
        return ["3×3 conv", "ReLU", "3×3 conv"], "identity: x"
    convs = [layer for layer in block.layers() if isinstance(layer, arch.Conv)]
    main, shortcut = convs[:3], convs[3:]
    labels: list[str] = []
    for n, conv in enumerate(main):
        stride = f", /{conv.stride}" if conv.stride > 1 else ""
        labels.append(f"{conv.k}×{conv.k} conv, {conv.c_out}{stride} + BN")
        if n < 2:
            labels.append("ReLU")
    if shortcut:
        s = shortcut[0]
        return labels, f"{s.k}×{s.k} conv, {s.c_out}" + (f", /{s.stride}" if s.stride > 1 else "") + " + BN"
    return labels, "identity: x"


def _column(ax, x: float, labels: list[str], width: float, shortcut: str | None) -> float:
    """One block drawn from its input x (bottom) to its output (top); returns the top y.

    With ``shortcut`` (a label) the input also goes around the layers, drawn on the right, and is
    added before the last ReLU.
    """
    step, h = 1.0, 0.62
    centre = x + width / 2
    arrow = dict(arrowstyle="-|>", color="#444444", lw=1.0, shrinkA=0, shrinkB=0)
    ax.text(centre, 0.0, "x", ha="center", va="center", fontsize=FONT + 2, style="italic")
    y, prev = 0.0, 0.25

    def box(y, label, kind):
        ax.add_patch(FancyBboxPatch((x, y - h / 2), width, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=KIND_COLOURS[kind], edgecolor="#444444", lw=0.8))
        ax.text(centre, y, label, ha="center", va="center", fontsize=FONT, gid="layer")

    for label in labels:
        y += step
        box(y, label, "pool" if label == "ReLU" else "conv")
        ax.annotate("", xy=(centre, y - h / 2), xytext=(centre, prev), arrowprops=arrow)
        prev = y + h / 2
    if shortcut is not None:
        y += step * 0.9
        r = 0.22
        ax.add_patch(plt.Circle((centre, y), r, facecolor="white", edgecolor="#444444", lw=1.0))
        ax.text(centre, y, "+", ha="center", va="center", fontsize=FONT + 3)
        ax.annotate("", xy=(centre, y - r), xytext=(centre, prev), arrowprops=arrow)
        # the shortcut: from x, right, up past the layers, left into the sum
        side = x + width + 0.45
        ax.plot([centre + 0.15, side, side], [0.0, 0.0, y], color=OUTPUT_COLOUR, lw=1.8, gid="shortcut")
        ax.annotate("", xy=(centre + r, y), xytext=(side, y),
                    arrowprops=dict(arrowstyle="-|>", color=OUTPUT_COLOUR, lw=1.8, shrinkA=0, shrinkB=0))
        ax.text(side + 0.15, y / 2, shortcut, ha="left", va="center", fontsize=FONT, color=OUTPUT_COLOUR,
                rotation=90, gid="shortcut-label")
        prev = y + r
        y += step * 0.9
        box(y, "ReLU", "pool")
        ax.annotate("", xy=(centre, y - h / 2), xytext=(centre, prev), arrowprops=arrow)
        prev = y + h / 2
    ax.annotate("", xy=(centre, prev + 0.5), xytext=(centre, prev), arrowprops=arrow)
    return prev + 0.5


def draw_residual_block(block: arch.Bottleneck | None = None, figsize=None):
    """A plain block (left) and the same layers with the shortcut added before the last ReLU (right).

    Returns ``(fig, (main_labels, shortcut_label))``; the shortcut line has gid ``"shortcut"``.
    """
    labels, shortcut = residual_block_layers(block)
    plain = labels + ["ReLU"]          # the plain block ends in the same ReLU, without the sum
    width = 3.3 if block is not None else 2.2
    gap = 2.0
    fig, ax = plt.subplots(figsize=figsize or (2 * width + gap + 1.6, 1.0 + 0.62 * (len(labels) + 3)))
    top = _column(ax, 0.0, plain, width, shortcut=None)
    top = max(top, _column(ax, width + gap, labels, width, shortcut=shortcut))
    for x, title in [(width / 2, "plain block"), (width * 1.5 + gap, "residual block")]:
        ax.text(x, top + 0.3, title, ha="center", va="bottom", fontsize=FONT + 1, fontweight="bold")
    ax.set_xlim(-0.2, 2 * width + gap + 1.1)
    ax.set_ylim(-0.5, top + 1.1)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    return fig, (labels, shortcut)
