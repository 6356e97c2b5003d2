"""lec4.cnn: explicit backward passes vs autograd and finite differences; LeNet-5; training."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from lec4 import cnn
from lec4.data import load_digits
from lec4.utils import seed_everything



def _grads(fn, *inputs):
    """Output and input gradients of sum(out * fixed random weights)."""
    inputs = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = fn(*inputs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * weights).sum().backward()
    return out.detach(), [t.grad for t in inputs if t.requires_grad]


def _assert_same(fn_a, fn_b, *inputs):
    out_a, grads_a = _grads(fn_a, *inputs)
    out_b, grads_b = _grads(fn_b, *inputs)
    torch.testing.assert_close(out_a, out_b)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb)


X = torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_relu_backward_matches_autograd():
    _assert_same(cnn.ReLU(), torch.relu, X)
    assert torch.autograd.gradcheck(cnn.ReLUFunction.apply, (X[:1, :2].clone().requires_grad_(),))


def test_softmax_backward_is_the_lecture_jacobian():
    logits = torch.randn(5, 7, dtype=torch.float64)
    _assert_same(cnn.Softmax(), lambda x: torch.softmax(x, dim=-1), logits)
    assert torch.autograd.gradcheck(cnn.SoftmaxFunction.apply, (logits.clone().requires_grad_(),))
    # the Jacobian written element by element as on the slide: y_i (1[i=j] - y_j)
    x = logits[0].clone().requires_grad_()
    y = cnn.SoftmaxFunction.apply(x).detach()
    jacobian = torch.autograd.functional.jacobian(cnn.SoftmaxFunction.apply, x)
    torch.testing.assert_close(jacobian, torch.diag(y) - torch.outer(y, y))


def test_softmax_is_stable_for_large_logits():
    y = cnn.Softmax()(torch.tensor([[1000.0, 0.0, -1000.0]]))
    assert torch.isfinite(y).all() and y[0, 0] == pytest.approx(1.0)


def test_softmax_cross_entropy_matches_torch():
    logits = torch.randn(6, 10, dtype=torch.float64)
    targets = torch.tensor([0, 3, 9, 3, 1, 7])
    _assert_same(lambda z: cnn.SoftmaxCrossEntropy()(z, targets).reshape(1),
                 lambda z: F.cross_entropy(z, targets).reshape(1), logits)
    assert torch.autograd.gradcheck(lambda z: cnn.SoftmaxCrossEntropyFunction.apply(z, targets),
                                    (logits.clone().requires_grad_(),))


def test_softmax_cross_entropy_rejects_bad_targets():
    loss = cnn.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        loss(torch.randn(2, 10), torch.tensor([0, 10]))
    with pytest.raises(TypeError, match="int64"):
        loss(torch.randn(2, 10), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        loss(torch.randn(10), torch.tensor([1]))


def test_fully_connected_on_3d_input_matches_autograd():
    fc = cnn.FullyConnected(3 * 5 * 5, 4).double()
    _assert_same(lambda x, a, a0: cnn.FullyConnectedFunction.apply(x, a, a0),
                 lambda x, a, a0: x.flatten(1) @ a + a0, X, fc.alpha.detach(), fc.alpha0.detach())
    small = (X[:2, :2, :2, :3].clone(), torch.randn(12, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64))
    assert torch.autograd.gradcheck(cnn.FullyConnectedFunction.apply, [t.requires_grad_() for t in small])
    assert fc(X).shape == (4, 4)
    with pytest.raises(ValueError, match=r"flatten to \(B, 75\)"):
        fc(X[:, :2])


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_conv_layer_matches_torch_including_gradients(stride, padding):
    layer = cnn.Conv2d(3, 4, 3, stride, padding).double()
    _assert_same(lambda x, a, b: cnn.conv2d_unfold(x, a, b, stride, padding),
                 lambda x, a, b: F.conv2d(x, a, b, stride=stride, padding=padding),
                 X, layer.alpha.detach(), layer.beta.detach())
    torch.testing.assert_close(layer(X), F.conv2d(X, layer.alpha, layer.beta, stride, padding))


def test_max_pool_layer_matches_torch_including_gradients():
    # random values: no ties, so the (sub)gradient is unique
    _assert_same(cnn.MaxPool2d(2), lambda x: F.max_pool2d(x, 2), torch.randn(2, 3, 8, 6, dtype=torch.float64))
    _assert_same(cnn.MaxPool2d(3, 2), lambda x: F.max_pool2d(x, 3, 2), torch.randn(2, 3, 9, 7, dtype=torch.float64))


def _lenet_reference(model, x):
    """The same network written with torch.nn.functional only."""
    p = dict(model.named_parameters())
    h = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    h = F.max_pool2d(F.relu(F.conv2d(h, p["layers.C1 conv.alpha"], p["layers.C1 conv.beta"])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, p["layers.C3 conv.alpha"], p["layers.C3 conv.beta"])), 2)
    for name in ("F5 fully-connected", "F6 fully-connected"):
        h = F.relu(h.flatten(1) @ p[f"layers.{name}.alpha"] + p[f"layers.{name}.alpha0"])
    return h @ p["layers.output.alpha"] + p["layers.output.alpha0"]


def test_lenet5_matches_functional_reference_and_counts():
    torch.manual_seed(0)
    model = cnn.LeNet5().double()
    assert cnn.count_parameters(model) == 61_706
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    targets = torch.tensor([1, 2, 3])
    ours = F.cross_entropy(model(x), targets)
    ours_grads = torch.autograd.grad(ours, list(model.parameters()))
    ref = F.cross_entropy(_lenet_reference(model, x), targets)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    torch.testing.assert_close(ours, ref)
    for a, b in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)
    shapes = {name: tuple(t.shape[1:]) for name, t in model.feature_maps(x).items()}
    assert shapes["input"] == (1, 32, 32) and shapes["C1 conv"] == (6, 28, 28)
    assert shapes["S2 max-pool"] == (6, 14, 14) and shapes["C3 conv"] == (16, 10, 10)
    assert shapes["S4 max-pool"] == (16, 5, 5) and shapes["output"] == (10,)


@pytest.mark.parametrize("k,c3", [(2, 14), (3, 13), (5, 10)])
def test_lenet5_other_kernel_sizes(k, c3):
    model = cnn.LeNet5(kernel_size=k)
    maps = model.feature_maps(torch.rand(2, 1, 8, 8))
    assert maps["C3 conv"].shape[-1] == c3 and maps["output"].shape == (2, 10)


def test_confusion_matrix_matches_sklearn():
    gen = torch.Generator().manual_seed(0)
    y_true, y_pred = torch.randint(0, 10, (200,), generator=gen), torch.randint(0, 10, (200,), generator=gen)
    cm = cnn.confusion_matrix(y_true, y_pred, 10)
    assert cm.tolist() == sk_confusion_matrix(y_true, y_pred, labels=list(range(10))).tolist()
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        cnn.confusion_matrix(y_true, y_pred, 5)


def test_training_learns_the_digits():
    # a small LeNet (16x16 input, 3x3 kernels) on a quarter of the data keeps this fast
    train, test = load_digits()
    train, test = train.subset(0.25, seed=0), test.subset(0.5, seed=0)
    seed_everything(0)  # the initial weights
    model = cnn.LeNet5(kernel_size=3, input_size=16)
    result = cnn.train_classifier(model, train, test, epochs=6, batch_size=32, lr=1e-2, seed=0)
    _, losses = result.series("train/loss")
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert result.test_accuracy > 0.5  # chance is 0.1
    assert result.parameters == cnn.count_parameters(model) and result.seconds > 0
    with pytest.raises(ValueError, match="epochs"):
        cnn.train_classifier(model, train, test, epochs=0)


# --------------------------------------------------------------------------- index maps, statistics, residuals
def _conv_by_index_map(x, w, stride, index):
    """The lecture's 3D convolution with 1-based loops, input row/column given by ``index``."""
    C_out, C_in, K, _ = w.shape
    H = x.shape[0 if x.dim() == 2 else 1]
    H_out = (H - K) // stride + 1
    y = torch.zeros(C_out, H_out, H_out, dtype=x.dtype)
    for c2 in range(C_out):
        for h in range(1, H_out + 1):
            for v in range(1, H_out + 1):
                y[c2, h - 1, v - 1] = sum(x[c, index(h, m, stride) - 1, index(v, n, stride) - 1] * w[c2, c, m - 1, n - 1]
                                          for c in range(C_in) for m in range(1, K + 1) for n in range(1, K + 1))
    return y


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_window_index_map_gives_pytorchs_conv_and_max_pool(stride):
    gen = torch.Generator().manual_seed(stride)
    x, w = torch.randn(2, 9, 9, generator=gen, dtype=torch.float64), torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    ours = _conv_by_index_map(x, w, stride, cnn.window_input_index)
    torch.testing.assert_close(ours, F.conv2d(x[None], w, stride=stride)[0])
    K, H_out = 2, (9 - 2) // stride + 1
    pooled = torch.tensor([[max(x[0, cnn.window_input_index(i, q, stride) - 1, cnn.window_input_index(j, r, stride) - 1].item()
                                for q in range(1, K + 1) for r in range(1, K + 1))
                            for j in range(1, H_out + 1)] for i in range(1, H_out + 1)], dtype=torch.float64)
    torch.testing.assert_close(pooled, F.max_pool2d(x[None, :1], K, stride)[0, 0])
    with pytest.raises(ValueError, match="1-based"):
        cnn.window_input_index(0, 1, stride)


@pytest.mark.parametrize("stride", [1, 2])
def test_the_slides_conv_index_runs_past_the_input(stride):
    H, K = 9, 3
    H_out = (H - K) // stride + 1
    assert max(cnn.window_input_index(H_out, m, stride) for m in range(1, K + 1)) == stride * (H_out - 1) + K <= H
    assert cnn.slide_conv_input_index(H_out, K, stride) > H


def test_accuracy_interval_and_mcnemar_match_scipy():
    from scipy import stats
    for correct, n in [(428, 450), (450, 450), (0, 10), (7, 13)]:
        ci = stats.binomtest(correct, n).proportion_ci(method="wilson")
        assert cnn.accuracy_interval(correct, n, z=stats.norm.ppf(0.975)) == pytest.approx((ci.low, ci.high), abs=1e-9)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 3)
    a = y.clone(); a[:2] = 9                                    # A wrong on items 0, 1
    b = y.clone(); b[5:12] = 0                                   # B wrong on items 5 ... 11 except 10 (a 0)
    only_a, only_b, p = cnn.mcnemar_p(y, a, b)
    assert (only_a, only_b) == (6, 2)
    assert p == pytest.approx(stats.binomtest(6, 8, 0.5).pvalue)
    assert cnn.mcnemar_p(y, a, a) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="correct <= n"):
        cnn.accuracy_interval(5, 4)
    with pytest.raises(ValueError, match="one length"):
        cnn.mcnemar_p(y, a[:5], b)


def test_residual_connections_keep_the_gradient_of_the_first_layer():
    plain, res = cnn.layer_gradient_norms(30, residual=False), cnn.layer_gradient_norms(30, residual=True)
    assert len(plain) == len(res) == 30
    assert plain[0] / plain[-1] < 1e-6 and res[0] / res[-1] > 1e-2
    # one layer: the identity path does not depend on the kernel, so the gradients are the same
    assert cnn.layer_gradient_norms(1, False) == pytest.approx(cnn.layer_gradient_norms(1, True))


# --------------------------------------------------------------------------- SGD and visualization helpers (H24C)
def test_sgd_step_is_torch_sgd_without_momentum():
    seed_everything(0)
    a = cnn.LeNet5(kernel_size=3, input_size=16)
    b = cnn.LeNet5(kernel_size=3, input_size=16)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    for model in (a, b):
        cnn.SoftmaxCrossEntropy()(model(x), y).backward()
    cnn.sgd_step(a.parameters(), 0.1)
    torch.optim.SGD(b.parameters(), lr=0.1).step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_training_with_the_lectures_sgd_learns_and_rejects_unknown_optimizers():
    train, test = load_digits()
    train, test = train.subset(0.25, seed=0), test.subset(0.5, seed=0)
    seed_everything(0)
    model = cnn.LeNet5(kernel_size=3, input_size=16)
    result = cnn.train_classifier(model, train, test, epochs=8, batch_size=8, lr=0.2, seed=0, optimizer="sgd")
    _, losses = result.series("train/loss")
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert result.test_accuracy > 0.3  # chance is 0.1
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        cnn.train_classifier(model, train, test, optimizer="rmsprop")


def test_top_activating_matches_a_brute_force_ranking():
    seed_everything(0)
    model = cnn.LeNet5(kernel_size=5)
    x = torch.randn(12, 1, 8, 8)
    indices, values = cnn.top_activating(model, x, "C3 relu", count=3)
    assert indices.shape == values.shape == (16, 3)
    with torch.no_grad():
        for c in range(16):
            scores = [float(model.feature_maps(x[i:i + 1])["C3 relu"][0, c].mean()) for i in range(12)]
            order = sorted(range(12), key=lambda i: -scores[i])[:3]
            assert [scores[i] for i in indices[c].tolist()] == pytest.approx([scores[i] for i in order], abs=1e-6)
            assert values[c].tolist() == pytest.approx([scores[i] for i in order], abs=1e-6)
    with pytest.raises(KeyError, match="unknown layer"):
        cnn.top_activating(model, x, "C9")
    with pytest.raises(ValueError, match="no channel maps"):
        cnn.top_activating(model, x, "output")
