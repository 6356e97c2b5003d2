"""Architecture arithmetic against published counts and independent nn.Modules on the meta device."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lec4 import architectures as arch


# Published parameter counts (torchvision's alexnet / vgg19 / resnet152 model cards;
# LeNet-5 with full C3 connectivity and a linear 10-way output).
PUBLISHED = {"LeNet-5": 61_706, "AlexNet": 61_100_840, "VGG-19": 143_667_240, "ResNet-152": 60_192_808}
NAMED_DEPTH = {"LeNet-5": 5, "AlexNet": 8, "VGG-19": 19, "ResNet-152": 152}


@pytest.mark.parametrize("name", list(arch.ARCHITECTURES))
def test_parameter_counts_match_published(name):
    build, input_shape = arch.ARCHITECTURES[name]
    layers = build()
    assert arch.count_params(layers) == PUBLISHED[name]
    assert sum(row.params for row in arch.summary(layers, input_shape)) == PUBLISHED[name]


@pytest.mark.parametrize("name", list(arch.ARCHITECTURES))
def test_depth_matches_the_name_and_the_lecture(name):
    build, input_shape = arch.ARCHITECTURES[name]
    assert arch.depth(build()) == NAMED_DEPTH[name]
    assert arch.summary(build(), input_shape)[-1].out_shape[0] == (10 if name == "LeNet-5" else 1000)
    lecture = {r.model: r.lecture_depth for r in arch.ILSVRC_RESULTS}
    if name in lecture:
        assert lecture[name] == NAMED_DEPTH[name]


# The trainable parameters LeCun et al. (1998), Section II-B, print for each layer of LeNet-5.
LENET5_PAPER = {"C1": 156, "S2": 12, "C3": 1_516, "S4": 32, "C5": 48_120, "F6": 10_164}


def test_lenet5_paper_counts_match_the_paper_layer_by_layer():
    counts = arch.lenet5_paper_layer_params()
    assert {k: v for k, v in counts.items() if v} == LENET5_PAPER
    assert counts["output (RBF, fixed)"] == 0                     # the RBF centres were fixed by hand
    assert arch.lenet5_paper_params() == sum(LENET5_PAPER.values()) == 60_000


def _alexnet_two_gpu_module():
    """The 2012 paper's layout: groups=2 is "each GPU sees only its own half of the maps"."""
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, 4), nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.Conv2d(256, 384, 3, padding=1),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.Conv2d(384, 256, 3, padding=1, groups=2),
        nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000))


def test_alexnet_two_gpu_counts_match_grouped_modules_and_the_paper():
    with torch.device("meta"):
        module = _alexnet_two_gpu_module()
    ours = arch.alexnet_two_gpu_layer_params()
    assert list(ours.values()) == [sum(p.numel() for p in layer.parameters()) for layer in module]
    assert 60e6 < sum(ours.values()) < 61e6                       # the paper: "60 million parameters"
    assert sum(ours.values()) < arch.count_params(arch.alexnet())  # fewer than the single-GPU layout


@pytest.mark.parametrize("kernels,strides", [([3, 3], [1, 1]), ([3, 3, 3], [1, 1, 1]), ([7], [1]),
                                             ([3, 2, 3], [1, 2, 1]), ([5, 2, 5, 2], [1, 2, 1, 2])])
def test_receptive_field_matches_autograd(kernels, strides):
    """Independent reference: which input pixels get a gradient from one output pixel."""
    layers = [arch.Conv(1, 1, k, s) if i % 2 == 0 or s == 1 else arch.Pool(k, s)
              for i, (k, s) in enumerate(zip(kernels, strides))]
    x = torch.zeros(1, 1, 40, 40, requires_grad=True)
    y = x
    for layer in layers:
        if isinstance(layer, arch.Conv):
            y = nn.functional.conv2d(y, torch.ones(1, 1, layer.k, layer.k), stride=layer.stride)
        else:
            y = nn.functional.avg_pool2d(y, layer.k, layer.stride)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    assert arch.receptive_field(layers) == rows.max().item() - rows.min().item() + 1
    with pytest.raises(ValueError, match="Conv and"):
        arch.receptive_field([arch.Linear(3, 4)])


# ---- independent reference: the same networks written as nn.Modules, instantiated on "meta"

def _alexnet_module():
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.AdaptiveAvgPool2d(6),
        nn.Flatten(), nn.Linear(9216, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))


def _vgg19_module():
    layers, c = [], 3
    for v in [64] * 2 + ["M"] + [128] * 2 + ["M"] + ([256] * 4 + ["M"]) + ([512] * 4 + ["M"]) * 2:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                         nn.Linear(25088, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))


class _Bottleneck(nn.Module):
    def __init__(self, c_in, width, stride):
        super().__init__()
        c_out = 4 * width
        self.main = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.main(x) + self.shortcut(x))


def _resnet152_module():
    blocks, c = [], 64
    for stage, (n, width) in enumerate(zip((3, 8, 36, 3), (64, 128, 256, 512))):
        for b in range(n):
            blocks.append(_Bottleneck(c, width, 2 if stage and not b else 1))
            c = 4 * width
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))


@pytest.mark.parametrize("name,module", [("AlexNet", _alexnet_module), ("VGG-19", _vgg19_module),
                                         ("ResNet-152", _resnet152_module)])
def test_arithmetic_matches_meta_device_modules(name, module):
    with torch.device("meta"):
        net = module()
        out = net(torch.empty(2, 3, 224, 224))
    assert sum(p.numel() for p in net.parameters()) == arch.count_params(arch.ARCHITECTURES[name][0]())
    assert out.shape == (2, 1000)
    # the shape after the last convolution stage agrees too
    features = net[:-4] if name == "ResNet-152" else net[:13] if name == "AlexNet" else net[:-7]
    with torch.device("meta"):
        feat = features(torch.empty(1, 3, 224, 224))
    rows = arch.summary(arch.ARCHITECTURES[name][0](), (3, 224, 224))
    last_pool = max(i for i, r in enumerate(rows) if isinstance(r.layer, (arch.Pool, arch.Bottleneck))
                    and getattr(r.layer, "output", None) is None)
    assert tuple(feat.shape[1:]) == rows[last_pool].out_shape


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="expects 3 input channels"):
        arch.summary(arch.alexnet(), (1, 224, 224))
    with pytest.raises(ValueError, match="expects 400 inputs"):
        arch.summary(arch.lenet5(), (1, 28, 28))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        arch.summary(arch.lenet5(), (32, 32))


def test_ilsvrc_error_falls_with_depth():
    results = sorted(arch.ILSVRC_RESULTS, key=lambda r: r.year)
    assert [r.lecture_depth for r in results] == [8, 19, 152]
    assert all(a.top5_error > b.top5_error for a, b in zip(results, results[1:]))
    assert results[0].top5_error == 15.3 and "lecture" in results[0].source
    # VGG was second in ILSVRC-2014 classification (GoogLeNet won); AlexNet and ResNet won theirs
    assert {r.model: r.place for r in results} == {"AlexNet": 1, "VGG-19": 2, "ResNet-152": 1}
