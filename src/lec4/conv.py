"""2D convolution and pooling, from the lecture's formula to a vectorized form.

The lecture's convolutional layer (slide "3D Convolutional Layer") is

    y[c', h', w'] = beta[c'] + sum_c sum_m sum_n x[c, h' s + m, w' s + n] * alpha[c', c, m, n]

(0-based here). Like every deep-learning library, and like the lecture, this slides the
kernel *without flipping it*: mathematically it is a cross-correlation. ``flip=True`` in
:func:`convolve2d` gives the textbook convolution (kernel rotated by 180 degrees).

- :func:`conv2d_naive` — loops over output positions and kernel offsets, straight from the formula.
- :func:`conv2d_unfold` — the same result as one matrix multiply (im2col via ``F.unfold``).
- :func:`conv_output_size` — how padding, stride and kernel size set the output size.
- :func:`max_pool2d`, :func:`avg_pool2d` — pooling forward passes.
- The classic hand-designed kernels of the lecture, plus Sobel edges and Harris corners.
- ``LECTURE_EXAMPLES`` — the worked examples, with the numbers printed on the slides.

Shapes: inputs are (B, C_in, H, W), weights (C_out, C_in, K_h, K_w), bias (C_out,).
Only forward passes live here; gradients come from autograd.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lec4 import display
from lec4.utils import check_shape

# --------------------------------------------------------------------------- arguments


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    """``value`` as an (int, int) pair, each at least ``minimum``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Output length along one axis: ``floor((size + 2 padding - kernel_size) / stride) + 1``.

    Positions are ``0, stride, 2 stride, ...`` as long as the kernel still fits in the
    zero-padded input; a remainder that cannot hold a whole kernel is dropped.
    """
    for name, value, minimum in (("size", size, 1), ("kernel_size", kernel_size, 1),
                                 ("stride", stride, 1), ("padding", padding, 0)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if kernel_size > size + 2 * padding:
        raise ValueError(f"kernel_size {kernel_size} is larger than the padded input "
                         f"({size} + 2*{padding} = {size + 2 * padding})")
    return (size + 2 * padding - kernel_size) // stride + 1


def conv_output_shape(input_hw: tuple[int, int], kernel_size, stride=1, padding=0) -> tuple[int, int]:
    """(H_out, W_out) of a convolution or pooling window over an (H, W) input."""
    if len(input_hw) != 2:
        raise ValueError(f"input_hw must be (H, W), got {input_hw!r}")
    kh, kw = _pair("kernel_size", kernel_size, 1)
    sh, sw = _pair("stride", stride, 1)
    ph, pw = _pair("padding", padding, 0)
    return conv_output_size(input_hw[0], kh, sh, ph), conv_output_size(input_hw[1], kw, sw, pw)


def _check_conv_args(x, weight, bias):
    check_shape("x", x, "(B, C_in, H, W)", 4)
    check_shape("weight", weight, "(C_out, C_in, K_h, K_w)", 4)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if weight.dtype != x.dtype or weight.device != x.device:
        raise TypeError(f"weight dtype/device ({weight.dtype}, {weight.device}) must match x ({x.dtype}, {x.device})")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight expects C_in={weight.shape[1]} input channels but x has "
                         f"{x.shape[1]} (x is (B, C_in, H, W) = {tuple(x.shape)})")
    if bias is not None:
        check_shape("bias", bias, "(C_out,)", 1)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"bias has {bias.shape[0]} entries, expected C_out={weight.shape[0]}")
        if bias.dtype != x.dtype or bias.device != x.device:
            raise TypeError(f"bias dtype/device ({bias.dtype}, {bias.device}) must match x ({x.dtype}, {x.device})")


# --------------------------------------------------------------------------- convolution


def conv2d_naive(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride=1, padding=0) -> torch.Tensor:
    """2D convolution (cross-correlation) with explicit loops, straight from the lecture.

    x (B, C_in, H, W), weight (C_out, C_in, K_h, K_w), bias (C_out,) or None
    -> (B, C_out, H_out, W_out). For each output pixel (h', w') and kernel offset (m, n)
    it adds ``x[:, :, h' s + m, w' s + n] @ alpha[:, :, m, n]^T``: the sums over h', w',
    m, n are Python loops; only the sum over input channels c is a matrix product (it is
    the same sum, written once for all batch items and output channels).
    """
    _check_conv_args(x, weight, bias)
    sh, sw = _pair("stride", stride, 1)
    ph, pw = _pair("padding", padding, 0)
    c_out, _, kh, kw = weight.shape
    h_out, w_out = conv_output_shape(tuple(x.shape[2:]), (kh, kw), (sh, sw), (ph, pw))
    x = F.pad(x, (pw, pw, ph, ph))  # zeros around the image
    y = x.new_zeros(x.shape[0], c_out, h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            for m in range(kh):
                for n in range(kw):
                    y[:, :, i, j] += x[:, :, i * sh + m, j * sw + n] @ weight[:, :, m, n].T
    if bias is not None:
        y = y + bias.view(1, c_out, 1, 1)
    return y


def im2col(x: torch.Tensor, kernel_size, stride=1, padding=0) -> torch.Tensor:
    """Every receptive field as a column: (B, C, H, W) -> (B, C * K_h * K_w, H_out * W_out).

    Column ``i * W_out + j`` holds the (zero-padded) patch under output pixel (i, j),
    flattened in (c, m, n) order, the order of ``weight.view(C_out, -1)``.
    """
    check_shape("x", x, "(B, C, H, W)", 4)
    conv_output_shape(tuple(x.shape[2:]), kernel_size, stride, padding)  # validates arguments
    return F.unfold(x, kernel_size, padding=padding, stride=stride)


def conv2d_unfold(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride=1, padding=0) -> torch.Tensor:
    """The same convolution as :func:`conv2d_naive`, as one matrix multiply (im2col).

    x (B, C_in, H, W), weight (C_out, C_in, K_h, K_w), bias (C_out,) or None
    -> (B, C_out, H_out, W_out). Memory: the column matrix is K_h K_w times the input.
    """
    _check_conv_args(x, weight, bias)
    c_out, _, kh, kw = weight.shape
    h_out, w_out = conv_output_shape(tuple(x.shape[2:]), (kh, kw), stride, padding)
    cols = im2col(x, (kh, kw), stride, padding)                   # (B, C_in*kh*kw, L)
    y = weight.reshape(c_out, -1) @ cols                          # (B, C_out, L)
    if bias is not None:
        y = y + bias.view(1, c_out, 1)
    return y.view(x.shape[0], c_out, h_out, w_out)


def convolve2d(image: torch.Tensor, kernel: torch.Tensor, stride=1, padding=0,
               flip: bool = False, method: str = "unfold") -> torch.Tensor:
    """One (H, W) image with one (K_h, K_w) kernel -> (H_out, W_out).

    ``flip=True`` rotates the kernel by 180 degrees first: the signal-processing
    convolution instead of the cross-correlation deep learning calls convolution.
    ``method`` is ``"unfold"`` (fast) or ``"naive"`` (the loops).
    """
    check_shape("image", image, "(H, W)", 2)
    check_shape("kernel", kernel, "(K_h, K_w)", 2)
    if method not in ("unfold", "naive"):
        raise ValueError(f"method must be 'unfold' or 'naive', got {method!r}")
    kernel = kernel.to(image.dtype)
    if flip:
        kernel = kernel.flip(0, 1)
    conv = conv2d_unfold if method == "unfold" else conv2d_naive
    return conv(image[None, None], kernel[None, None], None, stride, padding)[0, 0]


# --------------------------------------------------------------------------- pooling


def _windows(x: torch.Tensor, kernel_size, stride) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H_out, W_out, K_h * K_w): the pooling windows, no copy until flatten."""
    check_shape("x", x, "(B, C, H, W)", 4)
    kh, kw = _pair("kernel_size", kernel_size, 1)
    sh, sw = _pair("stride", kernel_size if stride is None else stride, 1)
    conv_output_shape(tuple(x.shape[2:]), (kh, kw), (sh, sw))  # validates sizes
    return x.unfold(2, kh, sh).unfold(3, kw, sw).flatten(-2)


def max_pool2d(x: torch.Tensor, kernel_size, stride=None) -> torch.Tensor:
    """Max over each K_h x K_w window: (B, C, H, W) -> (B, C, H_out, W_out).

    ``stride`` defaults to ``kernel_size`` (non-overlapping windows). Forward only; when
    differentiated by autograd the gradient goes to one maximum of each window.
    """
    return _windows(x, kernel_size, stride).max(dim=-1).values


def avg_pool2d(x: torch.Tensor, kernel_size, stride=None) -> torch.Tensor:
    """Mean over each window: a convolution with fixed uniform weights 1/(K_h K_w)."""
    return _windows(x, kernel_size, stride).mean(dim=-1)


# --------------------------------------------------------------------------- kernels


def identity_kernel(size: int = 3) -> torch.Tensor:
    """1 in the centre, 0 elsewhere: returns the image unchanged (odd ``size``)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int, got {size}")
    k = torch.zeros(size, size)
    k[size // 2, size // 2] = 1.0
    return k


def box_blur_kernel(size: int = 3) -> torch.Tensor:
    """The lecture's smoothing kernel: every weight 1/size^2 (a local average)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return torch.full((size, size), 1.0 / size**2)


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """Normalized 2D Gaussian ``exp(-(u^2 + v^2) / (2 sigma^2))`` on a size x size grid."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int, got {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    u = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(u**2) / (2 * sigma**2))
    k = torch.outer(g, g)  # separable: a product of two 1D Gaussians
    return k / k.sum()


def sharpen_kernel() -> torch.Tensor:
    """The lecture's sharpening kernel: the image plus its negated Laplacian."""
    return torch.tensor([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian_edge_kernel() -> torch.Tensor:
    """The lecture's (all-direction) edge detector: 8 times the centre minus its 8 neighbours."""
    k = -torch.ones(3, 3)
    k[1, 1] = 8.0
    return k


def prewitt_kernels() -> tuple[torch.Tensor, torch.Tensor]:
    """(vertical-edge, horizontal-edge) detectors as on the lecture's slides.

    The vertical-edge kernel has columns -1, 0, 1 (it measures the left-to-right change);
    the horizontal-edge kernel is its transpose (top-to-bottom change).
    """
    vertical = torch.tensor([[-1.0, 0.0, 1.0]] * 3)
    return vertical, vertical.T.contiguous()


def sobel_kernels() -> tuple[torch.Tensor, torch.Tensor]:
    """(vertical-edge, horizontal-edge) Sobel kernels: Prewitt with the centre row weighted 2."""
    vertical = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return vertical, vertical.T.contiguous()


def lecture_blur_kernel() -> torch.Tensor:
    """The blurring kernel of the lecture's worked example (weights sum to 1)."""
    k = torch.full((3, 3), 0.1)
    k[1, 1] = 0.2
    return k


# Printed on the "Gaussian Blur" slide. These are *not* normalized (they sum to 2.73),
# so :func:`gaussian_kernel` is what the book applies; this is kept for comparison.
LECTURE_GAUSSIAN_5x5 = torch.tensor([
    [.01, .04, .06, .04, .01],
    [.04, .19, .25, .19, .04],
    [.06, .25, .37, .25, .06],
    [.04, .19, .25, .19, .04],
    [.01, .04, .06, .04, .01],
])


# --------------------------------------------------------------------------- hand-engineered features


def _same(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve an (H, W) image keeping its size (zero padding, odd kernel)."""
    return convolve2d(image, kernel, padding=kernel.shape[0] // 2)


def sobel_gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(I_x, I_y): left-to-right and top-to-bottom intensity change of an (H, W) image."""
    vertical, horizontal = sobel_kernels()
    return _same(image, vertical), _same(image, horizontal)


def edge_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude sqrt(I_x^2 + I_y^2): the first stage of the Canny edge detector."""
    ix, iy = sobel_gradients(image)
    return torch.sqrt(ix**2 + iy**2)


def harris_response(image: torch.Tensor, sigma: float = 1.5, k: float = 0.05) -> torch.Tensor:
    """Harris corner response det(M) - k trace(M)^2 of an (H, W) image.

    M is the structure tensor: Gaussian-weighted sums of I_x^2, I_x I_y, I_y^2 around each
    pixel. Large positive at corners (change in two directions), negative along edges.
    """
    ix, iy = sobel_gradients(image)
    window = gaussian_kernel(2 * math.ceil(3 * sigma) + 1, sigma).to(image.dtype)
    sxx, syy, sxy = _same(ix * ix, window), _same(iy * iy, window), _same(ix * iy, window)
    return sxx * syy - sxy**2 - k * (sxx + syy) ** 2


def local_maxima(score: torch.Tensor, count: int, min_distance: int = 5) -> torch.Tensor:
    """Row/column (count, 2) of the ``count`` highest local maxima of an (H, W) score map."""
    check_shape("score", score, "(H, W)", 2)
    size = 2 * min_distance + 1
    neighbourhood_max = F.max_pool2d(score[None, None], size, stride=1, padding=min_distance)[0, 0]
    peaks = (score == neighbourhood_max) & (score > 0)
    rows, cols = peaks.nonzero(as_tuple=True)
    order = score[rows, cols].argsort(descending=True)[:count]
    return torch.stack([rows[order], cols[order]], dim=1)


# --------------------------------------------------------------------------- SIFT's scale space (Lowe, 2004)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(H, W) image convolved with a normalized Gaussian of std ``sigma`` (border pixels repeated, same size)."""
    check_shape("image", image, "(H, W)", 2)
    radius = max(1, math.ceil(3 * sigma))
    kernel = gaussian_kernel(2 * radius + 1, sigma).to(image.dtype)
    padded = F.pad(image[None, None], (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel[None, None])[0, 0]


@dataclass(frozen=True)
class ScaleSpace:
    """One octave of SIFT's scale space: ``gaussians[i]`` is the image blurred with ``sigmas[i]``,
    ``dogs[i] = gaussians[i + 1] - gaussians[i]`` (difference of Gaussians)."""

    sigmas: list[float]
    gaussians: torch.Tensor   # (S + 3, H, W)
    dogs: torch.Tensor        # (S + 2, H, W)


def scale_space(image: torch.Tensor, sigma: float = 1.6, scales: int = 3) -> ScaleSpace:
    """One octave as in Lowe (2004), Section 3: ``scales + 3`` blurs with sigma * 2^(i/scales)."""
    if scales < 1 or sigma <= 0:
        raise ValueError(f"need scales >= 1 and sigma > 0, got {scales} and {sigma}")
    sigmas = [sigma * 2 ** (i / scales) for i in range(scales + 3)]
    gaussians = torch.stack([gaussian_blur(image, s) for s in sigmas])
    return ScaleSpace(sigmas, gaussians, gaussians[1:] - gaussians[:-1])


def dog_keypoints(image: torch.Tensor, sigma: float = 1.6, scales: int = 3, octaves: int = 3,
                  threshold: float = 0.02, edge_ratio: float = 10.0, border: int = 5) -> torch.Tensor:
    """SIFT's keypoint detector: extrema of the difference of Gaussians over space *and* scale.

    A sample is kept if it is the largest or the smallest of its 3x3x3 neighbourhood (8 neighbours
    in its own DoG image, 9 in the one above, 9 below) and ``|D| > threshold``. After each octave
    the image blurred with 2 sigma is downsampled by 2 and the search repeats (Lowe's Figure 1).
    As in Lowe's Section 4.1, extrema along an edge are rejected: the 2x2 Hessian H of D must have
    tr(H)^2 / det(H) < (r + 1)^2 / r with r = ``edge_ratio``. Samples within ``border`` pixels of
    the (octave's) image edge are skipped. Lowe's sub-pixel refinement, orientations and
    descriptors are left out.

    Returns (N, 4): row, column (in ``image``'s pixels), sigma (in ``image``'s pixels) and D,
    strongest |D| first.
    """
    check_shape("image", image, "(H, W)", 2)
    found = []
    base = image
    for octave in range(octaves):
        if min(base.shape) < 8:
            break
        space = scale_space(base, sigma, scales)
        d = space.dogs[None]                                        # (1, S + 2, H, W)
        is_max = d == F.max_pool3d(d, 3, stride=1, padding=1)
        is_min = d == -F.max_pool3d(-d, 3, stride=1, padding=1)
        keep = (is_max | is_min) & (d.abs() > threshold)
        keep[:, [0, -1]] = False                                    # need a scale above and below
        keep[..., :border, :] = False
        keep[..., -border:, :] = False
        keep[..., :, :border] = False
        keep[..., :, -border:] = False
        # edge rejection from the Hessian of D (central differences)
        dd = space.dogs
        dxx = torch.zeros_like(dd); dyy = torch.zeros_like(dd); dxy = torch.zeros_like(dd)
        dxx[:, :, 1:-1] = dd[:, :, 2:] + dd[:, :, :-2] - 2 * dd[:, :, 1:-1]
        dyy[:, 1:-1, :] = dd[:, 2:, :] + dd[:, :-2, :] - 2 * dd[:, 1:-1, :]
        dxy[:, 1:-1, 1:-1] = (dd[:, 2:, 2:] - dd[:, 2:, :-2] - dd[:, :-2, 2:] + dd[:, :-2, :-2]) / 4
        trace, det = dxx + dyy, dxx * dyy - dxy**2
        keep &= ((det > 0) & (trace**2 * edge_ratio < (edge_ratio + 1) ** 2 * det))[None]
        _, level, rows, cols = keep.nonzero(as_tuple=True)
        step = 2 ** octave
        found.append(torch.stack([rows.double() * step, cols.double() * step,
                                  torch.tensor(space.sigmas, dtype=torch.float64)[level] * step,
                                  d[0, level, rows, cols].double()], dim=1))
        base = space.gaussians[scales][::2, ::2]                    # sigma doubled, downsample by 2
    points = torch.cat(found) if found else torch.zeros(0, 4, dtype=torch.float64)
    return points[points[:, 3].abs().argsort(descending=True)]


# --------------------------------------------------------------------------- the lecture's worked examples


def _grid(text: str) -> torch.Tensor:
    """A matrix transcribed from the lecture text (rows on lines, entries split by spaces)."""
    rows = [[float(eval(v, {})) for v in line.split()] for line in text.strip().splitlines()]
    return torch.tensor(rows, dtype=torch.float64)


# The 7x7 input of the "2D Convolution" slides (a drawn '4'-like shape with a zero border)
LECTURE_IMAGE_7x7 = _grid("""
0 0 0 0 0 0 0
0 1 1 1 1 1 0
0 1 0 0 1 0 0
0 1 0 1 0 0 0
0 1 1 0 0 0 0
0 1 0 0 0 0 0
0 0 0 0 0 0 0
""")

# The 6x6 input of the "Downsampling" slides
LECTURE_IMAGE_6x6 = _grid("""
1 1 1 1 1 0
1 0 0 1 0 0
1 0 1 0 0 0
1 1 0 0 0 0
1 0 0 0 0 0
0 0 0 0 0 0
""")


@dataclass(frozen=True)
class WorkedExample:
    """One worked example of the lecture: input, operation and the result printed on the slide.

    ``operation`` is ``"conv"`` (kernel given), ``"avg"`` or ``"max"`` (pooling window
    ``kernel.shape``). ``padding`` zeros are added around ``image``; the slides draw them.
    """

    name: str
    slide: str
    image: torch.Tensor
    kernel: torch.Tensor
    slide_output: torch.Tensor
    operation: str = "conv"
    stride: int = 1
    padding: int = 0

    def compute(self, flip: bool = False, method: str = "naive") -> torch.Tensor:
        """The example's output computed with this library (``flip`` only affects convolution)."""
        if self.operation == "conv":
            return convolve2d(self.image, self.kernel, self.stride, self.padding, flip=flip, method=method)
        padded = F.pad(self.image, (self.padding,) * 4)[None, None]
        pool = max_pool2d if self.operation == "max" else avg_pool2d
        return pool(padded, tuple(self.kernel.shape), self.stride)[0, 0]


LECTURE_EXAMPLES: dict[str, WorkedExample] = {ex.name: ex for ex in [
    WorkedExample(
        "3x3 kernel", "2D Convolution", LECTURE_IMAGE_7x7, _grid("0 0 0\n0 1 1\n0 1 0"),
        _grid("3 2 2 3 1\n2 0 2 1 0\n2 2 1 0 0\n3 1 0 0 0\n1 0 0 0 0")),
    WorkedExample(
        "identity, no padding", "Padding (1)", LECTURE_IMAGE_7x7, _grid("0 0 0\n0 1 0\n0 0 0"),
        _grid("1 1 1 1 1\n1 0 0 1 0\n1 0 1 0 0\n1 1 0 0 0\n1 0 0 0 0")),
    WorkedExample(
        "identity, zero padding", "Padding (2)", LECTURE_IMAGE_7x7, _grid("0 0 0\n0 1 0\n0 0 0"),
        LECTURE_IMAGE_7x7, padding=1),
    WorkedExample(
        "blurring", "Kernels for Image Processing", LECTURE_IMAGE_7x7, _grid(".1 .1 .1\n.1 .2 .1\n.1 .1 .1"),
        _grid("""
.1 .2 .3 .3 .3 .2 .1
.2 .4 .5 .5 .5 .4 .1
.3 .4 .2 .3 .6 .3 .1
.3 .5 .4 .4 .2 .1 0
.3 .5 .6 .2 .1 0 0
.2 .4 .3 .1 0 0 0
.1 .1 .1 0 0 0 0"""), padding=1),
    WorkedExample(
        "vertical edge detector", "Kernels for Image Processing", LECTURE_IMAGE_7x7,
        _grid("-1 0 1\n-1 0 1\n-1 0 1"),
        _grid("""
-1 -1 0 0 0 1 1
-2 -1 1 -1 0 2 1
-3 -1 1 -1 1 2 1
-3 -1 2 0 1 1 0
-3 -1 2 1 1 0 0
-2 -1 2 1 0 0 0
-1 0 1 0 0 0 0"""), padding=1),
    WorkedExample(
        "horizontal edge detector", "Kernels for Image Processing", LECTURE_IMAGE_7x7,
        _grid("-1 -1 -1\n0 0 0\n1 1 1"),
        _grid("""
-1 -2 -3 -3 -3 -2 -1
-1 -1 -1 -1 -1 -1 0
0 1 1 2 2 2 1
0 -1 -1 0 1 1 0
0 0 1 1 1 0 0
1 2 2 1 0 0 0
1 1 1 0 0 0 0"""), padding=1),
    WorkedExample(
        "learned 3x3 kernel", "Convolutional Layer", LECTURE_IMAGE_7x7,
        # The slide prints theta symbolically; its output is the blurring example's interior,
        # so theta = the blurring kernel reproduces it (see the book).
        _grid(".1 .1 .1\n.1 .2 .1\n.1 .1 .1"),
        _grid(".4 .5 .5 .5 .4\n.4 .2 .3 .6 .3\n.5 .4 .4 .2 .1\n.5 .6 .2 .1 0\n.4 .3 .1 0 0")),
    WorkedExample(
        "stride-2 downsampling", "Downsampling", LECTURE_IMAGE_6x6, _grid("1 1\n1 1"),
        _grid("3 3 1\n3 1 0\n1 0 0"), stride=2),
    WorkedExample(
        "downsampling by averaging", "Downsampling by Averaging", LECTURE_IMAGE_6x6,
        _grid("1/4 1/4\n1/4 1/4"), _grid("3/4 3/4 1/4\n3/4 1/4 0\n1/4 0 0"), stride=2),
    WorkedExample(
        "max-pooling", "Max-Pooling", LECTURE_IMAGE_6x6, torch.ones(2, 2, dtype=torch.float64),
        _grid("1 1 1\n1 1 0\n1 0 0"), operation="max", stride=2),
]}


@dataclass(frozen=True)
class SlideComparison:
    """A computed result next to the slide's, cell by cell."""

    example: WorkedExample
    computed: torch.Tensor
    flip: bool
    tolerance: float = 1e-6

    @property
    def mismatch(self) -> torch.Tensor:
        """Boolean (H_out, W_out): where the computed value differs from the slide's."""
        if self.computed.shape != self.example.slide_output.shape:
            return torch.ones_like(self.example.slide_output, dtype=torch.bool)
        return (self.computed - self.example.slide_output).abs() > self.tolerance

    @property
    def n_mismatches(self) -> int:
        return int(self.mismatch.sum())

    def to_html(self) -> str:
        """The slide's grid and the computed one side by side, differing cells highlighted."""
        return self._repr_html_()

    def _repr_html_(self) -> str:
        convention = "convolution, kernel flipped" if self.flip else "cross-correlation, kernel not flipped"
        caption = f"Slide \u201c{self.example.name}\u201d vs. our computation ({convention})"
        return display.compare_grids(self.example.slide_output, self.computed, caption,
                                     labels=("slide", "computed"), atol=self.tolerance)._repr_html_()


def compare_with_slide(example: WorkedExample, flip: bool = False) -> SlideComparison:
    """Recompute ``example`` (naive loops) and compare it with the slide's printed numbers.

    The slides print one decimal, so values are rounded to 10 decimals before comparing
    (this removes float noise such as 0.30000000000000004, not real differences).
    """
    computed = example.compute(flip=flip, method="naive").round(decimals=10)
    return SlideComparison(example, computed, flip)
