"""Data that ships offline: nothing here downloads anything.

- :func:`load_digits` — scikit-learn's bundled 8×8 handwritten digits (1,797 images).
- :func:`load_photo` — a real photograph bundled with matplotlib (Grace Hopper).
- :func:`load_english_text` — real English prose shipped with Python itself: the
  help-topic texts of the Python reference documentation (``pydoc_data.topics``).
- :func:`load_mnist_idx` — MNIST, only when you already have its IDX files on disk.
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Split:
    """Images ``x`` (N, 1, H, W) float32 in [0, 1] and labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, fraction: float, seed: int = 0) -> "Split":
        """A class-stratified random ``fraction`` of the examples (at least one per class)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        gen = torch.Generator().manual_seed(seed)
        keep = []
        for label in self.y.unique():
            idx = (self.y == label).nonzero().flatten()
            n = max(1, round(fraction * len(idx)))
            keep.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
        keep = torch.cat(keep).sort().values
        return Split(self.x[keep], self.y[keep])


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[Split, Split]:
    """scikit-learn's digits as (train, test) splits, stratified by class.

    Pixels (originally 0…16) are scaled to [0, 1]; images are (1, 8, 8).
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=test_fraction,
                                           random_state=seed, stratify=digits.target)
    return Split(x[idx_train], y[idx_train]), Split(x[idx_test], y[idx_test])


def load_photo(gray: bool = True) -> torch.Tensor:
    """Matplotlib's bundled photo of Grace Hopper, float32 in [0, 1].

    Returns (H, W) when ``gray`` (ITU-R BT.601 luma) else (3, H, W).
    """
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = torch.tensor(np.array(mpimg.imread(f, format="jpg")), dtype=torch.float32) / 255.0
    rgb = rgb.permute(2, 0, 1)
    if not gray:
        return rgb
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def load_english_text() -> str:
    """About 465k characters of English prose from Python's own reference documentation.

    ``pydoc_data.topics`` ships with every CPython install (it backs ``help()``), so
    this corpus is available offline everywhere the book runs. Topics are joined in
    sorted order, so the text is identical on every machine with the same Python.
    """
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name].strip() for name in sorted(topics))


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        header = f.read(4)
        if len(header) != 4 or header[:2] != b"\x00\x00" or header[2] != 0x08:
            raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic {header!r})")
        ndim = header[3]
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} ({int(np.prod(shape))} bytes) "
                         f"but the file holds {data.size} bytes; is it truncated?")
    return data.reshape(shape)


def load_mnist_idx(folder: str | Path) -> tuple[Split, Split]:
    """MNIST from the four IDX files you already have in ``folder`` (``.gz`` or not).

    Expects ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``. Nothing is downloaded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {folder} does not exist")

    def find(stem: str) -> Path:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.exists():
                return candidate
        raise FileNotFoundError(f"{stem}[.gz] not found in {folder}; MNIST needs the four IDX files "
                                "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte")

    def split(prefix: str) -> Split:
        images = _read_idx(find(f"{prefix}-images-idx3-ubyte"))
        labels = _read_idx(find(f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{prefix}: images {images.shape} and labels {labels.shape} do not match")
        x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0
        return Split(x, torch.tensor(labels, dtype=torch.int64))

    return split("train"), split("t10k")
