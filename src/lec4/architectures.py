"""Classic CNN architectures as layer lists: shapes, depth and parameter counts by arithmetic.

Nothing is downloaded and no weights are materialised. Each architecture is a list of
layer specifications (:class:`Conv`, :class:`Pool`, :class:`Linear`, :class:`BatchNorm`,
:class:`Bottleneck`); :func:`summary` walks the list, computing each output shape with
:func:`lec4.conv.conv_output_size` and each parameter count from its formula. The tests
check the totals against independently written ``nn.Module``\\ s instantiated on PyTorch's
``meta`` device (shapes only, no memory) and against the published counts.

Depth counts weight layers (convolutions and fully-connected layers) along the main
path, as the names "VGG-19" and "ResNet-152" do; ResNet's 1x1 projection shortcuts are
parameters but not depth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from lec4.conv import conv_output_size

Shape = tuple[int, int, int]  # (C, H, W)


@dataclass(frozen=True)
class Conv:
    """Convolution: c_out * (c_in * k * k) weights (+ c_out biases)."""

    c_in: int
    c_out: int
    k: int
    stride: int = 1
    padding: int = 0
    bias: bool = True

    depth = 1

    @property
    def params(self) -> int:
        return self.c_out * self.c_in * self.k**2 + (self.c_out if self.bias else 0)

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        if c != self.c_in:
            raise ValueError(f"{self} expects {self.c_in} input channels, got shape {shape}")
        return (self.c_out, conv_output_size(h, self.k, self.stride, self.padding),
                conv_output_size(w, self.k, self.stride, self.padding))


@dataclass(frozen=True)
class Pool:
    """Max- or average-pooling window (no parameters). ``output`` set: adaptive pooling to that size."""

    k: int = 2
    stride: int = 2
    padding: int = 0
    kind: str = "max"
    output: int | None = None

    depth = 0
    params = 0

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        if self.output is not None:
            return (c, self.output, self.output)
        return (c, conv_output_size(h, self.k, self.stride, self.padding),
                conv_output_size(w, self.k, self.stride, self.padding))


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation: a scale and a shift per channel (running statistics are not parameters)."""

    c: int

    depth = 0

    @property
    def params(self) -> int:
        return 2 * self.c

    def out_shape(self, shape: Shape) -> Shape:
        return shape


@dataclass(frozen=True)
class Linear:
    """Fully-connected layer on the flattened input: n_in * n_out weights + n_out biases."""

    n_in: int
    n_out: int

    depth = 1

    @property
    def params(self) -> int:
        return self.n_in * self.n_out + self.n_out

    def out_shape(self, shape: Shape) -> Shape:
        n = shape[0] * shape[1] * shape[2]
        if n != self.n_in:
            raise ValueError(f"{self} expects {self.n_in} inputs, got shape {shape} ({n} values)")
        return (self.n_out, 1, 1)


@dataclass(frozen=True)
class Bottleneck:
    """ResNet bottleneck block: 1x1 (width) -> 3x3 (width, stride) -> 1x1 (4 width), each + BN,
    plus a 1x1 projection + BN on the shortcut when the shape changes."""

    c_in: int
    width: int
    stride: int = 1

    depth = 3

    @property
    def c_out(self) -> int:
        return 4 * self.width

    def layers(self) -> list:
        main = [Conv(self.c_in, self.width, 1, bias=False), BatchNorm(self.width),
                Conv(self.width, self.width, 3, self.stride, 1, bias=False), BatchNorm(self.width),
                Conv(self.width, self.c_out, 1, bias=False), BatchNorm(self.c_out)]
        if self.stride != 1 or self.c_in != self.c_out:
            main += [Conv(self.c_in, self.c_out, 1, self.stride, bias=False), BatchNorm(self.c_out)]
        return main

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers())

    def out_shape(self, shape: Shape) -> Shape:
        for layer in self.layers()[:6]:  # the main path sets the shape
            shape = layer.out_shape(shape)
        return shape


Layer = Union[Conv, Pool, BatchNorm, Linear, Bottleneck]


# --------------------------------------------------------------------------- the architectures


def lenet5(num_classes: int = 10) -> list[Layer]:
    """LeNet-5 (LeCun et al., 1998) on 32x32: C1 6@5x5, S2, C3 16@5x5, S4, C5 120, F6 84, output.

    With every C3 map connected to all six S2 maps and a linear output layer (the modern form).
    """
    return [Conv(1, 6, 5), Pool(2, 2), Conv(6, 16, 5), Pool(2, 2),
            Linear(16 * 5 * 5, 120), Linear(120, 84), Linear(84, num_classes)]


def lenet5_paper_layer_params() -> dict[str, int]:
    """LeNet-5's trainable parameters per layer as the 1998 paper builds it (its Section II-B).

    Differences from :func:`lenet5`: S2/S4 subsampling has a trainable coefficient and bias
    per map; C3's maps see only 3, 4 or 6 of the S2 maps (the paper's Table I: 6 maps x 3,
    9 maps x 4, 1 map x 6); F6 is followed by 10 Euclidean RBF units whose 84-dimensional
    centres were "chosen by hand and kept fixed", so the output layer has no trainable parameters.
    """
    return {"C1": 6 * (25 + 1),
            "S2": 6 * 2,
            "C3": (6 * 3 + 9 * 4 + 1 * 6) * 25 + 16,
            "S4": 16 * 2,
            "C5": 120 * (16 * 25 + 1),
            "F6": 84 * (120 + 1),
            "output (RBF, fixed)": 0}


def lenet5_paper_params() -> int:
    """Total trainable parameters of the 1998 LeNet-5 (:func:`lenet5_paper_layer_params`)."""
    return sum(lenet5_paper_layer_params().values())


def alexnet(num_classes: int = 1000) -> list[Layer]:
    """AlexNet (Krizhevsky, Sutskever & Hinton, 2012) in its common single-GPU form.

    Five convolutions (64, 192, 384, 256, 256 maps) with max-pooling, three fully-connected
    layers, on 224x224x3; the layout of torchvision's ``alexnet`` (from Krizhevsky's
    "one weird trick" paper). The 2012 paper split 96/256/384/384/256 maps over two GPUs.
    """
    return [Conv(3, 64, 11, 4, 2), Pool(3, 2), Conv(64, 192, 5, 1, 2), Pool(3, 2),
            Conv(192, 384, 3, 1, 1), Conv(384, 256, 3, 1, 1), Conv(256, 256, 3, 1, 1), Pool(3, 2),
            Pool(kind="avg", output=6),
            Linear(256 * 6 * 6, 4096), Linear(4096, 4096), Linear(4096, num_classes)]


def alexnet_two_gpu_layer_params() -> dict[str, int]:
    """AlexNet's parameters per layer as the 2012 paper splits it over two GPUs (its Section 3.5).

    96, 256, 384, 384, 256 kernels of sizes 11x11x3, 5x5x48, 3x3x256, 3x3x192, 3x3x192: half of
    each layer's maps live on each GPU, and conv2, conv4 and conv5 only see the maps of their own
    GPU (half the input depth); conv3 and the fully-connected layers see both. Biases included.
    """
    convs = {"conv1": (96, 3 * 11 * 11), "conv2": (256, 48 * 5 * 5), "conv3": (384, 256 * 3 * 3),
             "conv4": (384, 192 * 3 * 3), "conv5": (256, 192 * 3 * 3)}
    params = {name: n * (fan_in + 1) for name, (n, fan_in) in convs.items()}
    for name, n_in, n_out in [("fc6", 256 * 6 * 6, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]:
        params[name] = Linear(n_in, n_out).params
    return params


def receptive_field(layers: list[Layer]) -> int:
    """Side of the input window that one output pixel of a stack of ``Conv``/``Pool`` layers sees.

    r = 1 + sum_i (k_i - 1) * (product of the strides before layer i). Two 3x3 convolutions see
    5x5, three see 7x7 (why VGG stacks 3x3 kernels instead of using larger ones).
    """
    r, jump = 1, 1
    for layer in layers:
        if not isinstance(layer, (Conv, Pool)) or getattr(layer, "output", None) is not None:
            raise ValueError(f"receptive_field takes Conv and (non-adaptive) Pool layers, got {layer!r}")
        r += (layer.k - 1) * jump
        jump *= layer.stride
    return r


VGG19_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def vgg19(num_classes: int = 1000) -> list[Layer]:
    """VGG-19 (Simonyan & Zisserman, 2014; configuration E): sixteen 3x3 convolutions
    in five blocks separated by 2x2 max-pooling, then three fully-connected layers."""
    layers: list[Layer] = []
    c = 3
    for entry in VGG19_CONFIG:
        if entry == "M":
            layers.append(Pool(2, 2))
        else:
            layers.append(Conv(c, entry, 3, 1, 1))
            c = entry
    layers.append(Pool(kind="avg", output=7))
    return layers + [Linear(512 * 7 * 7, 4096), Linear(4096, 4096), Linear(4096, num_classes)]


RESNET152_BLOCKS = (3, 8, 36, 3)


def resnet152(num_classes: int = 1000) -> list[Layer]:
    """ResNet-152 (He et al., 2015): a 7x7 stem, 3+8+36+3 bottleneck blocks of widths
    64/128/256/512 (stride 2 at the first block of each stage after the first), global
    average pooling and one fully-connected layer."""
    layers: list[Layer] = [Conv(3, 64, 7, 2, 3, bias=False), BatchNorm(64), Pool(3, 2, 1)]
    c = 64
    for stage, (blocks, width) in enumerate(zip(RESNET152_BLOCKS, (64, 128, 256, 512))):
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            layers.append(Bottleneck(c, width, stride))
            c = 4 * width
    return layers + [Pool(kind="avg", output=1), Linear(c, num_classes)]


ARCHITECTURES = {"LeNet-5": (lenet5, (1, 32, 32)), "AlexNet": (alexnet, (3, 224, 224)),
                 "VGG-19": (vgg19, (3, 224, 224)), "ResNet-152": (resnet152, (3, 224, 224))}


# --------------------------------------------------------------------------- arithmetic


@dataclass(frozen=True)
class Row:
    """One line of :func:`summary`."""

    layer: Layer
    out_shape: Shape
    params: int


def summary(layers: list[Layer], input_shape: Shape) -> list[Row]:
    """Walk ``layers`` from ``input_shape`` (C, H, W): each layer's output shape and parameters."""
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
    rows, shape = [], tuple(input_shape)
    for layer in layers:
        shape = layer.out_shape(shape)
        rows.append(Row(layer, shape, layer.params))
    return rows


def count_params(layers: list[Layer]) -> int:
    """Total trainable parameters of a layer list."""
    return sum(layer.params for layer in layers)


def depth(layers: list[Layer]) -> int:
    """Weight layers on the main path (convolutions + fully-connected)."""
    return sum(layer.depth for layer in layers)


# --------------------------------------------------------------------------- the lecture's ILSVRC figures


@dataclass(frozen=True)
class IlsvrcResult:
    """A top-5 classification error on the ImageNet (ILSVRC) test set, and where it comes from.

    ``place``: the entry's rank in that year's classification task (VGG was second in 2014,
    behind GoogLeNet's 6.67%; it won the localisation task).
    """

    model: str
    year: int
    top5_error: float  # percent
    lecture_depth: int | None
    source: str
    place: int = 1


# The lecture prints AlexNet's 15.3% and the years and depths of the "Typical Architectures"
# slide ("AlexNet, 8 layers (ILSVRC 2012)", "VGG, 19 layers (ILSVRC 2014)", "ResNet, 152
# layers (ILSVRC 2015)"). That slide's error figures are not in the transcribed text, so
# VGG's and ResNet's errors come from their papers, marked as such.
ILSVRC_RESULTS = [
    IlsvrcResult("AlexNet", 2012, 15.3, 8, "lecture slide (Krizhevsky et al. 2012, winning entry, ensemble)"),
    IlsvrcResult("VGG-19", 2014, 7.3, 19, "Simonyan & Zisserman 2015, ILSVRC-2014 submission (ensemble); "
                 "2nd in classification after GoogLeNet (6.67%)", place=2),
    IlsvrcResult("ResNet-152", 2015, 3.57, 152, "He et al. 2016, ensemble, ILSVRC-2015 winner"),
]
