"""lec4.diagrams.cnn: the diagrams draw the data lec4 computes (checked on that data, not on pixels).

References are independent of the diagram code: PyTorch's F.conv2d for the convolution step,
lec4.architectures' own summary/depth/count_params (themselves checked against nn.Modules in
test_architectures.py) for the block diagrams. Text legibility uses lec4.plotting's measurement
of what matplotlib actually drew.
"""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lec4 import architectures as arch  # noqa: E402
from lec4 import conv  # noqa: E402
from lec4.diagrams import cnn as diagrams  # noqa: E402
from lec4.plotting import drawn_texts, min_font_pt, overlapping_texts, use_book_style  # noqa: E402


@pytest.fixture(autouse=True)
def _style_and_close():
    use_book_style()
    yield
    plt.close("all")


def _legible(fig):
    """No two drawn texts overlap; every text is large enough for the figure's width in the book."""
    texts = drawn_texts(fig)
    assert texts, "the figure draws no text"
    assert overlapping_texts(texts) == []
    width_in = fig.get_size_inches()[0]
    smallest = min(t["size_pt"] for t in texts)
    assert smallest >= min_font_pt(width_in), (smallest, width_in)
    return texts


def _patch(fig, gid):
    found = [p for ax in fig.axes for p in ax.patches if p.get_gid() == gid]
    assert len(found) == 1, f"expected one patch with gid {gid!r}, found {len(found)}"
    return found[0]


# --------------------------------------------------------------------------- the convolution step


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_step_arithmetic_equals_pytorch_for_every_cell(stride):
    gen = torch.Generator().manual_seed(stride)
    image = torch.randint(-3, 4, (7, 8), generator=gen).double()
    kernel = torch.randint(-2, 3, (3, 2), generator=gen).double()
    reference = F.conv2d(image[None, None], kernel[None, None], stride=stride)[0, 0] + 0.5
    for r in range(reference.shape[0]):
        for c in range(reference.shape[1]):
            step = diagrams.conv_step(image, kernel, r, c, stride=stride, bias=0.5)
            assert step.value == pytest.approx(float(reference[r, c]))
            assert torch.equal(step.window, image[r * stride:r * stride + 3, c * stride:c * stride + 2])
            # the written arithmetic is the sum it claims: products of window and kernel, plus the bias
            lhs, rhs = step.arithmetic.split(" = ")
            products = [t.split("×") for t in lhs.split(" + ")]
            assert len(products) == kernel.numel() + 1                   # 6 products and the bias
            total = sum(float(a) * float(b) for a, b in products[:-1]) + float(products[-1][0])
            assert total == pytest.approx(float(reference[r, c])) == pytest.approx(float(rhs))
    assert torch.allclose(step.output, reference)


def test_conv_step_on_the_lecture_example_matches_the_slide():
    ex = conv.LECTURE_EXAMPLES["3x3 kernel"]
    for r in range(5):
        for c in range(5):
            assert diagrams.conv_step(ex.image, ex.kernel, r, c).value == float(ex.slide_output[r, c])


def test_conv_step_rejects_a_cell_outside_the_output():
    with pytest.raises(ValueError, match=r"outside the 5x5 output"):
        diagrams.conv_step(torch.zeros(7, 7), torch.zeros(3, 3), 5, 0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        diagrams.conv_step(torch.zeros(1, 7, 7), torch.zeros(3, 3), 0, 0)


def test_draw_conv_step_highlights_the_window_and_cell_it_computes():
    ex = conv.LECTURE_EXAMPLES["3x3 kernel"]
    step = diagrams.conv_step(ex.image, ex.kernel, 1, 2)
    fig = diagrams.draw_conv_step(step)
    window, cell = _patch(fig, "window"), _patch(fig, "cell")
    assert (window.get_x(), window.get_y(), window.get_width(), window.get_height()) == (2, 1, 3, 3)
    kernel_box = _patch(fig, "kernel")
    x_output = cell.get_x() - 2          # the output grid's left edge
    assert x_output > kernel_box.get_x() + 3 > 7                          # input, kernel, output left to right
    assert (cell.get_width(), cell.get_height()) == (1, 1)
    texts = _legible(fig)
    strings = [t["text"] for t in texts]
    assert step.arithmetic in strings
    # the output grid's 25 numbers, read back from the figure, are the computed output
    ax = fig.axes[0]
    drawn = {(round(t.get_position()[1] - 0.5, 3), round(t.get_position()[0] - 0.5, 3)): t.get_text()
             for t in ax.texts if t.get_position()[0] > x_output}
    y0 = cell.get_y() - 1
    for r in range(5):
        for c in range(5):
            assert drawn[(y0 + r, x_output + c)] == diagrams._fmt(step.output[r, c])


# --------------------------------------------------------------------------- architectures


@pytest.mark.parametrize("name", list(arch.ARCHITECTURES))
def test_network_blocks_account_for_every_layer(name):
    build, shape = arch.ARCHITECTURES[name]
    layers = build()
    blocks = diagrams.network_blocks(layers, shape)
    rows = arch.summary(layers, shape)
    assert sum(b.depth for b in blocks) == arch.depth(layers)
    assert sum(b.params for b in blocks) == arch.count_params(layers)
    assert blocks[-1].out_shape == rows[-1].out_shape
    # each "n × ..." label says how many layers the block groups
    for b in blocks:
        m = re.match(r"(\d+) × ", b.label)
        assert (int(m.group(1)) if m else 1) == b.repeat


def test_network_blocks_group_vgg_and_resnet_as_their_papers_do():
    vgg = diagrams.network_blocks(arch.vgg19(), (3, 224, 224))
    assert [b.repeat for b in vgg if b.kind == "conv"] == [2, 2, 4, 4, 4]       # configuration E
    resnet = diagrams.network_blocks(arch.resnet152(), (3, 224, 224))
    stages = [b for b in resnet if b.kind == "bottleneck"]
    assert tuple(b.repeat for b in stages) == arch.RESNET152_BLOCKS
    assert [b.out_shape for b in stages] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    assert resnet[0].label == "7×7 conv, 64, /2 + BN"


def test_draw_networks_draws_each_block_label_inside_its_box_legibly():
    nets = {n: (arch.ARCHITECTURES[n][0](), arch.ARCHITECTURES[n][1]) for n in ("VGG-19", "ResNet-152")}
    fig, blocks = diagrams.draw_networks(nets)
    texts = _legible(fig)
    strings = [t["text"] for t in texts]
    for name, bl in blocks.items():
        assert name in strings
        for b in bl:
            assert b.label in strings and b.shape_label in strings
    # every label fits inside its box (in display pixels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [p.get_window_extent(renderer) for p in ax.patches]
    for t in ax.texts:
        if t.get_gid() == "block":
            tb = t.get_window_extent(renderer)
            assert any(b.x0 <= tb.x0 and tb.x1 <= b.x1 and b.y0 <= tb.y0 and tb.y1 <= b.y1 for b in boxes), t.get_text()


def test_draw_networks_needs_a_network():
    with pytest.raises(ValueError, match="at least one network"):
        diagrams.draw_networks({})


# --------------------------------------------------------------------------- the residual block


def test_residual_block_layers_follow_the_bottleneck():
    labels, shortcut = diagrams.residual_block_layers(arch.Bottleneck(256, 128, 2))
    convs = [layer for layer in arch.Bottleneck(256, 128, 2).layers() if isinstance(layer, arch.Conv)]
    assert [lab for lab in labels if lab != "ReLU"] == [
        f"{c.k}×{c.k} conv, {c.c_out}" + (f", /{c.stride}" if c.stride > 1 else "") + " + BN" for c in convs[:3]]
    assert shortcut == "1×1 conv, 512, /2 + BN"                    # the projection: the shape changes
    assert diagrams.residual_block_layers(arch.Bottleneck(256, 64, 1))[1] == "identity: x"
    assert diagrams.residual_block_layers(None) == (["3×3 conv", "ReLU", "3×3 conv"], "identity: x")


@pytest.mark.parametrize("block", [None, arch.Bottleneck(256, 64, 1)])
def test_draw_residual_block_has_one_shortcut_in_the_residual_column(block):
    fig, (labels, shortcut) = diagrams.draw_residual_block(block)
    texts = _legible(fig)
    ax = fig.axes[0]
    lines = [line for line in ax.lines if line.get_gid() == "shortcut"]
    assert len(lines) == 1
    plain_right = max(p.get_x() + p.get_width() for p in ax.patches if hasattr(p, "get_x") and p.get_x() < 1)
    assert min(lines[0].get_xdata()) > plain_right               # drawn beside the residual block only
    strings = [t["text"] for t in texts]
    assert shortcut in strings and "plain block" in strings and "residual block" in strings
    for label in labels:
        assert strings.count(label) >= 2                         # the same layers in both columns
