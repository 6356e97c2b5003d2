"""lec4.conv against PyTorch's own operators and the lecture's worked examples."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from lec4 import conv, display
from lec4.conv import (LECTURE_EXAMPLES, compare_with_slide, conv2d_naive, conv2d_unfold,
                       conv_output_shape, conv_output_size)


# (B, C_in, C_out, H, W, K_h, K_w, stride, padding): odd/even/non-square kernels, strides
# that do not divide the input, padding larger than half the kernel, 1x1 kernels.
CASES = [
    (1, 1, 1, 7, 7, 3, 3, 1, 0),
    (2, 3, 4, 8, 6, 3, 3, 1, 1),
    (2, 3, 2, 9, 9, 2, 2, 2, 0),
    (1, 2, 5, 7, 10, 3, 2, (2, 1), (1, 0)),
    (3, 4, 3, 6, 6, 1, 1, 1, 0),
    (1, 1, 3, 5, 5, 5, 5, 1, 2),
    (2, 2, 2, 10, 7, 4, 3, 3, (2, 1)),
    (1, 3, 1, 5, 5, 3, 3, 2, 3),
    (2, 1, 6, 12, 12, 5, 5, 1, 0),
]


@pytest.mark.parametrize("conv_fn", [conv2d_naive, conv2d_unfold])
@pytest.mark.parametrize("case", CASES)
def test_conv_matches_torch(conv_fn, case):
    b, c_in, c_out, h, w, kh, kw, stride, padding = case
    gen = torch.Generator().manual_seed(hash(case) % 2**31)
    x = torch.randn(b, c_in, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, kh, kw, generator=gen, dtype=torch.float64)
    bias = torch.randn(c_out, generator=gen, dtype=torch.float64)
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    got = conv_fn(x, weight, bias, stride=stride, padding=padding)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(conv_fn(x, weight, None, stride, padding),
                               F.conv2d(x, weight, None, stride=stride, padding=padding))


def test_random_sweep_unfold_matches_torch():
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        b, c_in, c_out = (int(torch.randint(1, 4, (1,), generator=gen)) for _ in range(3))
        kh, kw = (int(torch.randint(1, 6, (1,), generator=gen)) for _ in range(2))
        stride = tuple(int(torch.randint(1, 4, (1,), generator=gen)) for _ in range(2))
        padding = tuple(int(torch.randint(0, 3, (1,), generator=gen)) for _ in range(2))
        h, w = kh + int(torch.randint(0, 9, (1,), generator=gen)), kw + int(torch.randint(0, 9, (1,), generator=gen))
        x = torch.randn(b, c_in, h, w, generator=gen)
        weight = torch.randn(c_out, c_in, kh, kw, generator=gen)
        torch.testing.assert_close(conv2d_unfold(x, weight, None, stride, padding),
                                   F.conv2d(x, weight, stride=stride, padding=padding),
                                   atol=1e-5, rtol=1e-5)


def test_convolve2d_flip_is_true_convolution():
    image = torch.randn(6, 7, dtype=torch.float64)
    kernel = torch.randn(3, 3, dtype=torch.float64)
    flipped = conv.convolve2d(image, kernel, padding=1, flip=True)
    # true convolution: y[i, j] = sum_{m, n} x[i - m, j - n] k[m, n], centred kernel
    padded = F.pad(image, (1, 1, 1, 1))
    expected = torch.zeros(6, 7, dtype=torch.float64)
    for i, j in itertools.product(range(6), range(7)):
        for m, n in itertools.product(range(3), range(3)):
            expected[i, j] += padded[i + 2 - m, j + 2 - n] * kernel[m, n]
    torch.testing.assert_close(flipped, expected)


@pytest.mark.parametrize("size,k,s,p,expected", [(7, 3, 1, 0, 5), (7, 3, 1, 1, 7), (6, 2, 2, 0, 3),
                                                 (32, 5, 1, 0, 28), (224, 11, 4, 2, 55), (7, 2, 2, 0, 3),
                                                 (224, 7, 2, 3, 112), (1, 1, 1, 0, 1), (5, 7, 1, 1, 1)])
def test_output_size(size, k, s, p, expected):
    assert conv_output_size(size, k, s, p) == expected
    # independent check: the size PyTorch's own convolution produces
    out = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=s, padding=p)
    assert out.shape[-1] == expected


def test_output_shape_matches_pooling():
    for (h, w), k, s in [((9, 7), (3, 2), (2, 1)), ((8, 8), 2, 2), ((13, 10), 3, 3)]:
        expected = F.max_pool2d(torch.zeros(1, 1, h, w), k, s).shape[-2:]
        assert conv_output_shape((h, w), k, s) == tuple(expected)


@pytest.mark.parametrize("bad,error", [
    (dict(size=3, kernel_size=5), ValueError), (dict(size=4, kernel_size=3, stride=0), ValueError),
    (dict(size=4, kernel_size=3, padding=-1), ValueError), (dict(size=4.0, kernel_size=3), TypeError)])
def test_output_size_rejects_bad_arguments(bad, error):
    with pytest.raises(error):
        conv_output_size(**bad)


def test_conv_bad_inputs_have_clear_errors():
    x, w = torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3)
    with pytest.raises(ValueError, match=r"\(B, C_in, H, W\)"):
        conv2d_unfold(x[0], w)
    with pytest.raises(ValueError, match="C_in=3"):
        conv2d_naive(torch.randn(1, 2, 5, 5), w)
    with pytest.raises(TypeError, match="dtype"):
        conv2d_unfold(x.double(), w)
    with pytest.raises(TypeError, match="floating"):
        conv2d_unfold(x.long(), w.long())
    with pytest.raises(ValueError, match="C_out=2"):
        conv2d_unfold(x, w, torch.zeros(3))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d_unfold(torch.randn(1, 3, 2, 2), w)
    with pytest.raises(ValueError, match="stride"):
        conv2d_naive(x, w, stride=0)


@pytest.mark.parametrize("k,s", [(2, None), (3, 2), ((2, 3), (1, 2)), (3, 1)])
def test_pooling_matches_torch(k, s):
    x = torch.randn(2, 3, 9, 8)
    torch.testing.assert_close(conv.max_pool2d(x, k, s), F.max_pool2d(x, k, s))
    torch.testing.assert_close(conv.avg_pool2d(x, k, s), F.avg_pool2d(x, k, s))


def test_average_pooling_is_a_convolution_with_uniform_weights():
    x = torch.randn(1, 1, 8, 8)
    torch.testing.assert_close(conv.avg_pool2d(x, 2), conv2d_unfold(x, torch.full((1, 1, 2, 2), 0.25), stride=2))


def test_kernels():
    image = torch.rand(12, 10)
    torch.testing.assert_close(conv.convolve2d(image, conv.identity_kernel(3), padding=1), image)
    assert conv.box_blur_kernel(3).sum().item() == pytest.approx(1.0)
    g = conv.gaussian_kernel(5, 1.0)
    assert g.sum().item() == pytest.approx(1.0) and torch.equal(g, g.T) and g.argmax() == 12
    # sharpen = identity + (identity - 4-neighbour average) * 4: leaves constant images unchanged
    flat = torch.ones(6, 6)
    torch.testing.assert_close(conv.convolve2d(flat, conv.sharpen_kernel()), torch.ones(4, 4))
    torch.testing.assert_close(conv.convolve2d(flat, conv.laplacian_edge_kernel()), torch.zeros(4, 4))
    # a vertical step edge lights up the vertical detectors only
    step = torch.zeros(8, 8)
    step[:, 4:] = 1.0
    for vertical, horizontal in (conv.prewitt_kernels(), conv.sobel_kernels()):
        assert conv.convolve2d(step, vertical).abs().sum() > 0
        assert conv.convolve2d(step, horizontal).abs().sum() == 0


def test_harris_finds_the_corners_of_a_square():
    image = torch.zeros(40, 40)
    image[10:30, 10:30] = 1.0
    peaks = conv.local_maxima(conv.harris_response(image), count=4, min_distance=5)
    corners = {(10, 10), (10, 29), (29, 10), (29, 29)}
    for r, c in peaks.tolist():
        assert min(abs(r - cr) + abs(c - cc) for cr, cc in corners) <= 3
    # along an edge (not a corner) the response is negative
    assert conv.harris_response(image)[20, 10] < 0


# ------------------------------------------------------------------ the lecture's worked examples

EXACT = ["3x3 kernel", "identity, no padding", "identity, zero padding", "stride-2 downsampling",
         "downsampling by averaging", "max-pooling"]


@pytest.mark.parametrize("name", EXACT)
def test_worked_examples_match_slides_exactly(name):
    assert compare_with_slide(LECTURE_EXAMPLES[name]).n_mismatches == 0


@pytest.mark.parametrize("name", ["vertical edge detector", "horizontal edge detector"])
def test_edge_detector_slides_use_a_flipped_kernel(name):
    example = LECTURE_EXAMPLES[name]
    assert compare_with_slide(example, flip=True).n_mismatches == 0
    assert compare_with_slide(example, flip=False).n_mismatches > 0
    # flipping a [-1 0 1] kernel is the same as negating it
    torch.testing.assert_close(example.compute(flip=True), -example.compute(flip=False))


def test_blurring_slide_has_four_arithmetic_slips():
    comparison = compare_with_slide(LECTURE_EXAMPLES["blurring"])
    assert comparison.mismatch.nonzero().tolist() == [[2, 1], [2, 2], [2, 3], [3, 2]]
    # e.g. cell (2, 2): six 1-neighbours times 0.1 (centre 0) is 0.6, the slide prints .2
    assert comparison.computed[2, 2].item() == pytest.approx(0.6)
    # the "learned convolution" slide prints exactly the blurring slide's interior
    learned = LECTURE_EXAMPLES["learned 3x3 kernel"]
    torch.testing.assert_close(learned.slide_output, LECTURE_EXAMPLES["blurring"].slide_output[1:-1, 1:-1])


@pytest.mark.parametrize("name", list(LECTURE_EXAMPLES))
def test_worked_examples_agree_with_torch(name):
    example = LECTURE_EXAMPLES[name]
    x = F.pad(example.image, (example.padding,) * 4)[None, None]
    if example.operation == "conv":
        expected = F.conv2d(x, example.kernel[None, None], stride=example.stride)[0, 0]
    else:
        pool = F.max_pool2d if example.operation == "max" else F.avg_pool2d
        expected = pool(x, tuple(example.kernel.shape), example.stride)[0, 0]
    torch.testing.assert_close(example.compute(method="naive"), expected)
    torch.testing.assert_close(example.compute(method="unfold"), expected)
    shown = compare_with_slide(example)
    assert shown.to_html().count("lec4-diff") == 2 * shown.n_mismatches + display.STYLE.count("lec4-diff")


# --------------------------------------------------------------------------- SIFT's scale space (H24C)
def test_gaussian_blur_matches_a_direct_gaussian_convolution_inside():
    image = torch.rand(40, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    blurred = conv.gaussian_blur(image, 1.5)
    k = conv.gaussian_kernel(11, 1.5).double()                      # radius ceil(4.5) = 5
    direct = F.conv2d(image[None, None], k[None, None])[0, 0]
    torch.testing.assert_close(blurred[5:-5, 5:-5], direct)
    assert blurred.shape == image.shape


def test_scale_space_sigmas_and_differences():
    image = torch.rand(32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    space = conv.scale_space(image, sigma=1.6, scales=3)
    assert len(space.sigmas) == 6 and space.sigmas[3] == pytest.approx(3.2)   # 2 sigma after `scales` steps
    torch.testing.assert_close(space.dogs[2], conv.gaussian_blur(image, space.sigmas[3])
                               - conv.gaussian_blur(image, space.sigmas[2]))


@pytest.mark.parametrize("radius", [4.0, 6.0, 10.0])
def test_dog_keypoints_find_a_disk_at_its_centre_and_scale(radius):
    # the Laplacian of Gaussian responds most to a disk of radius r at sigma = r / sqrt(2)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    image = (((yy - 30) ** 2 + (xx - 36) ** 2) <= radius**2).double()
    row, col, sigma, d = conv.dog_keypoints(image)[0].tolist()
    assert (row, col) == (30.0, 36.0)
    assert 1 / 1.3 < sigma / (radius / 2**0.5) < 1.3
    assert d < 0                                                     # a bright blob: a minimum of the DoG
    assert len(conv.dog_keypoints(torch.zeros(32, 32))) == 0
