"""One figure style for the whole book, and the few plot types it repeats."""
from __future__ import annotations

from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import torch

BOOK_STYLE = {
    "figure.figsize": (6.0, 3.6),
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "image.cmap": "viridis",
    "savefig.bbox": "tight",
}


def use_book_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a page)."""
    matplotlib.rcParams.update(BOOK_STYLE)


def show_images(images: torch.Tensor | Sequence[torch.Tensor], titles: Sequence[str] | None = None,
                ncols: int = 8, cmap: str = "gray", scale: float = 1.2, symmetric: bool = False):
    """Show a grid of 2-D images (each (H, W), or (1, H, W)); returns the figure.

    ``symmetric`` centres the colour map on 0 (for filters and signed feature maps).
    """
    images = [torch.as_tensor(im).detach().cpu().squeeze() for im in images]
    if not images:
        raise ValueError("show_images needs at least one image")
    bad = [tuple(im.shape) for im in images if im.dim() != 2]
    if bad:
        raise ValueError(f"each image must be (H, W) or (1, H, W); got shapes {bad[:3]}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, im) in enumerate(zip(axes.flat, images)):
        if symmetric:
            vmax = float(im.abs().max()) or 1.0
            ax.imshow(im, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        else:
            ax.imshow(im, cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
                title: str | None = None, logy: bool = False, ax=None):
    """Line plot of named (x, y) series; returns the axes."""
    if not curves:
        raise ValueError("plot_curves needs at least one series")
    if ax is None:
        _, ax = plt.subplots()
    for label, (xs, ys) in curves.items():
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r}: {len(xs)} x values but {len(ys)} y values")
        ax.plot(xs, ys, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax
