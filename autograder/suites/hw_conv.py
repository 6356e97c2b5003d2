"""Hidden tests of `hw-conv`: conv2d / max-pool backward, their autograd wiring, a CNN training step.

The public contract (graded cells and points, forbidden names, tolerances, visible cases, the given
layers and ``init_cnn_params``) is :mod:`lec4.homework.hw_conv`, which the notebook imports too; this
module adds the hidden cases and the trusted references.

Every reference is computed here, in the trusted process, by autograd of ``F.conv2d`` /
``F.max_pool2d`` in float64; the submission's functions only ever see the inputs. Besides
values, checks require the inputs' dtype and device (calls on the ``meta`` device catch tensors
created on the CPU even without a GPU), unchanged inputs and a ValueError for bad shapes.

The notebook's visible "train to 90% test accuracy" cell runs in the student's kernel, so its
trusted counterpart is one training step driven from here: a batch of real digits goes through
the notebook's ``cnn_logits`` (built from the student's layers), the runner backpropagates the
loss's gradient, and the six parameter gradients must equal autograd's (and lower the loss).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from autograder.checks import (Call, Check, Outcome, all_of, assert_close, autograd_reference, device_check,
                               expect_device, expect_ok, gradient_check, output_items, raises_check, tensor_of,
                               value_check)
from lec4.homework.hw_conv import (ASSIGNMENT, CONV_VISIBLE, FORBIDDEN, GRADE_CELLS, NOTEBOOK,  # noqa: F401
                                   POOL_VISIBLE, TOLERANCES, conv_expected, conv_inputs, distinct_values,
                                   init_cnn_params, pool_expected, pool_inputs)


# (N, C, H, W, F, KH, KW, stride, padding): strides 1-3, padding 0-2, non-square kernels, C != F,
# N = 1, C = 1, F = 1, and sizes the stride does not divide (rows/columns no window reaches).
CONV_HIDDEN = [(2, 3, 7, 7, 4, 3, 3, 1, 0), (2, 3, 8, 8, 5, 3, 3, 2, 1), (1, 2, 9, 7, 3, 2, 3, 3, 2),
               (3, 4, 10, 9, 2, 5, 3, 2, 2), (2, 1, 6, 11, 6, 1, 4, 1, 1), (2, 5, 7, 8, 1, 4, 2, 3, 0),
               (4, 3, 5, 5, 4, 5, 5, 1, 2), (1, 6, 12, 10, 8, 3, 3, 2, 0), (2, 2, 8, 8, 3, 3, 3, 3, 1),
               (2, 3, 9, 9, 4, 3, 3, 1, 2)]
# (N, C, H, W, kernel_size, stride): overlapping windows (stride < kernel), gaps (stride > kernel),
# sizes the stride does not divide, one window covering the whole image.
POOL_HIDDEN = [(2, 3, 8, 8, 2, 2), (2, 2, 7, 9, 3, 1), (1, 3, 9, 9, 3, 2), (2, 2, 10, 11, 2, 3),
               (3, 1, 5, 7, 2, 1), (2, 4, 6, 6, 3, 3), (1, 1, 4, 4, 4, 1), (2, 2, 9, 8, 4, 2)]


def _describe_conv(cfg) -> str:
    N, C, H, W, n_filters, KH, KW, stride, padding = cfg
    return f"N={N}, C={C}, F={n_filters}, {H}x{W} input, {KH}x{KW} kernel, stride {stride}, padding {padding}"


def _describe_pool(cfg) -> str:
    N, C, H, W, k, s = cfg
    return f"N={N}, C={C}, {H}x{W} input, kernel {k}, stride {s}"


# --- hidden inputs (the visible ones and the references: lec4.homework.hw_conv) -----------------

def peaked(N: int, C: int, rows: int, cols: int, k: int, place: int, gen: torch.Generator) -> torch.Tensor:
    """A tie-free (N, C, rows*k, cols*k) input cut into k x k windows whose maximum sits at the same place
    of every window: ``place`` = row * k + column inside the window."""
    windows = distinct_values((N, C, rows, cols, k * k), gen).sort(dim=-1, descending=True).values
    placed = torch.empty_like(windows)
    placed[..., [place] + [i for i in range(k * k) if i != place]] = windows   # the largest goes to `place`
    return placed.reshape(N, C, rows, cols, k, k).permute(0, 1, 2, 4, 3, 5).reshape(N, C, rows * k, cols * k)


# --- checks -----------------------------------------------------------------------------------

def conv_value_check(grade_id: str, cfg, seed: int, device: str, dtype: torch.dtype) -> Check:
    """(grad_x, grad_weight, grad_bias) equal autograd's at the inputs sent, on their device; inputs unchanged."""
    args = conv_inputs(cfg, seed, dtype)
    stride, padding = cfg[7], cfg[8]
    expected = conv_expected(*args, stride, padding)  # at the inputs actually sent (float32 rounded)
    label = f"{_describe_conv(cfg)}, {str(dtype).removeprefix('torch.')}"
    call = Call("conv2d_backward", args, {"stride": stride, "padding": padding}, device=device)
    return value_check(grade_id, f"conv2d_backward values: {label}", call, expected,
                       TOLERANCES[dtype], what=[f"{name} ({label})" for name in ("grad_x", "grad_weight", "grad_bias")],
                       unchanged=True)


CONV_PARTS = ("grad_x", "grad_weight", "grad_bias")  # what conv2d_backward returns, in order


def conv_part_check(grade_id: str, cfg, seed: int, device: str, part: str) -> Check:
    """One of the three gradients alone equals autograd's (float64), inputs unchecked: says which of them
    is wrong (a mistake in grad_x leaves grad_weight and grad_bias right) and credits each right one."""
    args = conv_inputs(cfg, seed)
    index = CONV_PARTS.index(part)
    expected = conv_expected(*args, cfg[7], cfg[8])[index]
    label = f"{part} alone ({_describe_conv(cfg)}, float64)"
    call = Call("conv2d_backward", args, {"stride": cfg[7], "padding": cfg[8]}, device=device)

    def verify(outcomes: list[Outcome]) -> str | None:
        (outcome,) = outcomes
        expect_ok(outcome)
        item = output_items(outcome.output, len(CONV_PARTS), "conv2d_backward")[index]
        expect_device(item, device, part)
        assert_close(item, expected, *TOLERANCES[torch.float64], what=label)
        return None
    return Check(grade_id, f"conv2d_backward {label}", [call], verify, kind="value")


def meta_check(grade_id: str, function: str, args: list, kwargs: dict, shapes: list[tuple], label: str) -> Check:
    """Run on the meta device: every (float32) output must stay there (no tensor created on the CPU)."""
    return device_check(grade_id, f"{function} keeps outputs on the inputs' device: {label}",
                        Call(function, args, kwargs, device="meta"), shapes, torch.float32)


def error_check(grade_id: str, function: str, args: list, kwargs: dict, what: str, device: str) -> Check:
    """Bad input ``what`` raises ValueError."""
    return raises_check(grade_id, f"{function}: {what} raises ValueError", Call(function, args, kwargs, device=device),
                        what)


def pool_value_check(grade_id: str, cfg, seed: int, device: str, dtype: torch.dtype) -> Check:
    """grad_x equals autograd's (tie-free input: one maximum per window), on the inputs' device; inputs unchanged."""
    args = pool_inputs(cfg, seed, dtype)
    expected = pool_expected(*args, cfg[4], cfg[5])  # at the inputs actually sent (float32 rounded)
    # in float32 the argmax is the same (values exact); sums of one-or-few terms
    label = f"{_describe_pool(cfg)}, {str(dtype).removeprefix('torch.')}"
    call = Call("maxpool2d_backward", args + [cfg[4], cfg[5]], device=device)
    return value_check(grade_id, f"maxpool2d_backward values: {label}", call, expected, TOLERANCES[dtype],
                       what=f"grad_x ({label})", unchanged=True)


def pool_known_max_check(grade_id: str, name: str, x: torch.Tensor, k: int, s: int, seed: int, device: str) -> Check:
    """grad_x equals autograd's (float64) on an input whose window maxima sit where ``name`` says."""
    leaf = x.clone().requires_grad_()
    out = F.max_pool2d(leaf, k, s)
    grad_out = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    out.backward(grad_out)
    label = f"{name}: {_describe_pool((*x.shape, k, s))}"
    return value_check(grade_id, f"maxpool2d_backward values, {label}",
                       Call("maxpool2d_backward", [grad_out, x, k, s], device=device), leaf.grad,
                       TOLERANCES[torch.float64], what=f"grad_x ({label})")


def conv_checks(device: str) -> list[Check]:
    checks = [conv_value_check("test_conv2d_backward_visible", cfg, seed, device, dtype)
              for cfg, seed, dtype in CONV_VISIBLE]  # exactly the notebook's visible value checks
    checks.append(error_check("test_conv2d_backward_visible", "conv2d_backward",
                              [torch.randn(1, 3, 3, 3), torch.randn(1, 2, 5, 5), torch.randn(3, 4, 3, 3)], {},
                              "weight with 4 input channels for x with 2", device))
    hidden = "test_conv2d_backward_hidden"
    checks += [conv_value_check(hidden, cfg, 200 + i, device, torch.float64) for i, cfg in enumerate(CONV_HIDDEN)]
    checks += [conv_value_check(hidden, CONV_HIDDEN[i], 300 + i, device, torch.float32) for i in (1, 2, 3, 5)]
    for i in (1, 2):
        cfg = CONV_HIDDEN[i]
        grad_out, x, weight = conv_inputs(cfg, 400 + i)
        shapes = [tuple(x.shape), tuple(weight.shape), (weight.shape[0],)]
        checks.append(meta_check(hidden, "conv2d_backward", [grad_out.float(), x.float(), weight.float()],
                                 {"stride": cfg[7], "padding": cfg[8]}, shapes, _describe_conv(cfg)))
    # each gradient alone (C != F, stride 2, padding 1): a wrong one is told apart from the others
    checks += [conv_part_check(hidden, CONV_HIDDEN[1], 450, device, part) for part in CONV_PARTS]
    grad_out, x, weight = conv_inputs(CONV_HIDDEN[1], 500)
    checks.append(error_check(hidden, "conv2d_backward", [grad_out[:, :, :-1], x, weight],
                              {"stride": 2, "padding": 1}, "grad_out with one row too few", device))
    checks.append(error_check(hidden, "conv2d_backward", [grad_out, x[:, :2], weight],
                              {"stride": 2, "padding": 1}, "x with fewer channels than weight", device))
    return checks


def pool_checks(device: str) -> list[Check]:
    checks = [pool_value_check("test_maxpool2d_backward_visible", cfg, seed, device, dtype)
              for cfg, seed, dtype in POOL_VISIBLE]  # exactly the notebook's visible value checks
    checks.append(error_check("test_maxpool2d_backward_visible", "maxpool2d_backward",
                              [torch.randn(1, 1, 3, 3), torch.randn(1, 1, 8, 8), 2, 2], {},
                              "grad_out of shape (1, 1, 3, 3) for an 8x8 input, kernel 2, stride 2", device))
    hidden = "test_maxpool2d_backward_hidden"
    checks += [pool_value_check(hidden, cfg, 700 + i, device, torch.float64) for i, cfg in enumerate(POOL_HIDDEN)]
    checks += [pool_value_check(hidden, POOL_HIDDEN[i], 800 + i, device, torch.float32) for i in (1, 2, 7)]
    for i in (1, 3):
        cfg = POOL_HIDDEN[i]
        grad_out, x = pool_inputs(cfg, 900 + i)
        checks.append(meta_check(hidden, "maxpool2d_backward", [grad_out.float(), x.float(), cfg[4], cfg[5]], {},
                                 [tuple(x.shape)], _describe_pool(cfg)))
    # inputs whose window maxima sit at a known place (non-overlapping windows), and windows of one
    # element: the wrong element (first, transposed) or the wrong rule (an average) fail differently
    gen = torch.Generator().manual_seed(960)
    checks.append(pool_known_max_check(hidden, "each maximum at its window's top-left corner",
                                       peaked(2, 3, 3, 3, 2, 0, gen), 2, 2, 961, device))
    checks.append(pool_known_max_check(hidden, "each maximum at its window's bottom-right corner",
                                       peaked(2, 2, 3, 2, 3, 8, gen), 3, 3, 962, device))
    checks.append(pool_known_max_check(hidden, "windows of one element", distinct_values((2, 2, 5, 7), gen), 1, 2, 963,
                                       device))
    grad_out, x = pool_inputs(POOL_HIDDEN[2], 950)
    checks.append(error_check(hidden, "maxpool2d_backward", [grad_out[:, :, :, :-1], x, 3, 2], {},
                              "grad_out with one column too few", device))
    return checks


# --- wiring and the CNN training step -----------------------------------------------------------

def layer_grad_check(function: str, args: list, grad_of: tuple, reference, label: str, device: str) -> Check:
    """Backpropagate a fixed gradient through the student's layer in the sandbox; compare with autograd (float64)."""
    out = reference(*args).detach()
    grad_output = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(len(label)))
    _, expected = autograd_reference(reference, args, grad_of, grad_output)
    call = Call(function, args, device=device, grad_of=grad_of, grad_output=grad_output)
    return gradient_check("test_wiring", f"{function} gradients: {label}", call, list(expected), TOLERANCES[torch.float64],
                          expected_output=out,
                          no_gradient_hint="does backward return one gradient per forward input?")


def wiring_checks(device: str) -> list[Check]:
    gen = torch.Generator().manual_seed(1000)
    checks = []
    for stride, padding, shape, wshape in [(2, 1, (2, 2, 6, 5), (3, 2, 3, 2)), (1, 2, (1, 3, 5, 5), (2, 3, 3, 3))]:
        x = torch.randn(shape, dtype=torch.float64, generator=gen)
        w = torch.randn(wshape, dtype=torch.float64, generator=gen)
        b = torch.randn(wshape[0], dtype=torch.float64, generator=gen)
        checks.append(layer_grad_check(
            "conv2d_layer", [x, w, b, stride, padding], (0, 1, 2),
            lambda x, w, b, s, p: F.conv2d(x, w, b, stride=s, padding=p),
            f"stride {stride}, padding {padding}", device))
    for k, s in [(3, 2), (2, 2)]:
        x = distinct_values((2, 2, 7, 7), gen)
        checks.append(layer_grad_check("maxpool2d_layer", [x, k, s], (0,), lambda x, k, s: F.max_pool2d(x, k, s),
                                       f"kernel {k}, stride {s}", device))
    # The wiring is one piece of work: each check pairs a conv layer with a pool layer, so the
    # cell is worth nothing while either backward function is missing.
    conv, pool = checks[:2], checks[2:]
    paired = [all_of(f"{c.name} and {p.name}", c, p) for c, p in zip(conv, pool)]
    # Each layer's wiring alone, paired with the other backward function called directly (so still
    # nothing while either is missing): a mistake in one autograd.Function is told from a blank cell.
    conv_direct = conv_value_check("test_wiring", CONV_HIDDEN[0], 1010, device, torch.float64)
    pool_direct = pool_value_check("test_wiring", POOL_HIDDEN[0], 1011, device, torch.float64)
    return paired + [all_of(f"{conv[1].name}, with maxpool2d_backward's values", conv[1], pool_direct),
                     all_of(f"{pool[1].name}, with conv2d_backward's values", pool[1], conv_direct)]


def reference_cnn_logits(x, conv1_w, conv1_b, conv2_w, conv2_b, fc_w, fc_b):
    """The notebook's CNN with PyTorch's own layers (the trusted twin of its cnn_logits)."""
    h = F.max_pool2d(torch.relu(F.conv2d(x, conv1_w, conv1_b, padding=1)), 2, 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, conv2_w, conv2_b, padding=1)), 2, 2)
    return h.flatten(1) @ fc_w.t() + fc_b


@lru_cache(maxsize=1)
def _digits_batches() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y) for the graded step and (x, y) for pre-training; real digits plus tiny noise (no max-pool ties)."""
    from lec4.data import load_digits

    train, _ = load_digits()
    gen = torch.Generator().manual_seed(1100)
    x = train.x.double() + 1e-3 * torch.randn(train.x.shape, dtype=torch.float64, generator=gen)
    return x[:48], train.y[:48], x[48:], train.y[48:]


def _pretrained_params(seed: int, steps: int = 60) -> list[torch.Tensor]:
    """Parameters after some trusted SGD on other digits, so the graded step is mid-training."""
    _, _, x_train, y_train = _digits_batches()
    params = init_cnn_params(seed, torch.float64)
    velocity = [torch.zeros_like(p) for p in params]
    lr, momentum = 0.05, 0.9
    for step in range(steps):  # SGD with momentum, as torch.optim.SGD (whose import costs seconds: torch._dynamo)
        batch = slice((step * 32) % (len(y_train) - 32), (step * 32) % (len(y_train) - 32) + 32)
        leaves = [p.requires_grad_() for p in params]
        loss = F.cross_entropy(reference_cnn_logits(x_train[batch], *leaves), y_train[batch])
        grads = torch.autograd.grad(loss, leaves)
        with torch.no_grad():
            velocity = [g if step == 0 else momentum * v + g for v, g in zip(velocity, grads)]
            params = [p.detach() - lr * v for p, v in zip(params, velocity)]
    return params


def training_step_check(params: list[torch.Tensor], dtype: torch.dtype, label: str, device: str) -> Check:
    x, y, _, _ = _digits_batches()
    x, params = x.to(dtype), [p.to(dtype) for p in params]
    leaves = [p.double().requires_grad_() for p in params]
    logits = reference_cnn_logits(x.double(), *leaves)
    loss = F.cross_entropy(logits, y)
    grad_logits = torch.autograd.grad(loss, logits, retain_graph=True)[0]
    expected = torch.autograd.grad(loss, leaves)
    atol, rtol = (1e-9, 1e-7) if dtype == torch.float64 else (1e-5, 1e-3)
    names = ["conv1_w", "conv1_b", "conv2_w", "conv2_b", "fc_w", "fc_b"]

    def verify(outcomes: list[Outcome]) -> str | None:
        (outcome,) = outcomes
        expect_ok(outcome)
        grads = outcome.grads or []
        if len(grads) != 6 or any(g is None or g.get("kind") != "tensor" for g in grads):
            raise AssertionError(f"not every CNN parameter got a gradient ({label})")
        for name, description, exp in zip(names, grads, expected):
            assert_close(description, exp.to(dtype), atol, rtol, f"gradient of {name} ({label})")
        lr = 0.1
        with torch.no_grad():
            stepped = [p.double() - lr * tensor_of(g).double() for p, g in zip(params, grads)]
            if F.cross_entropy(reference_cnn_logits(x.double(), *stepped), y) >= loss:
                raise AssertionError(f"an SGD step with these gradients does not lower the loss ({label})")
        return None

    call = Call("cnn_logits", [x] + params, device=device, grad_of=tuple(range(1, 7)),
                grad_output=grad_logits.to(dtype))
    return Check("test_train_cnn", f"CNN training step on digits: {label}", [call], verify, kind="gradient")


def training_checks(device: str) -> list[Check]:
    at_init, trained = init_cnn_params(1200, torch.float64), _pretrained_params(1201)
    return [training_step_check(at_init, torch.float64, "at initialization, float64", device),
            training_step_check(trained, torch.float64, "mid-training, float64", device),
            training_step_check(trained, torch.float32, "mid-training, float32", device)]


def build_checks(device: str) -> list[Check]:
    """All checks on ``device`` ("cuda" when the grader has a GPU), unanchored (the engine anchors them)."""
    return conv_checks(device) + pool_checks(device) + wiring_checks(device) + training_checks(device)
