"""Device selection, seeding and small input checks shared by the library."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICE_ENV = "LEC4_DEVICE"


def get_device() -> torch.device:
    """The device pages and experiments run on.

    ``cuda`` when a GPU is visible, else ``cpu``; the environment variable
    ``LEC4_DEVICE`` (e.g. ``cpu``, ``cuda:1``) overrides the choice.
    """
    requested = os.environ.get(DEVICE_ENV, "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:
            raise ValueError(f"{DEVICE_ENV}={requested!r} is not a torch device name "
                             "(expected e.g. 'cpu', 'cuda', 'cuda:1')") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={requested!r} asks for CUDA, but no GPU is visible")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch so a page gives the same numbers on every build.

    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def adam(parameters, lr: float, weight_decay: float | None = None) -> torch.optim.Optimizer:
    """Adam, or AdamW with decoupled ``weight_decay``, fused: the optimizer of
    :mod:`lec4.pretraining` and :mod:`lec4.lm`.

    The fused implementation updates every parameter tensor in one kernel per step instead of
    a handful of small operations per tensor, which is most of a step's time for the small
    networks of the pre-training chapter on a CPU. The update rule is the same; the rounding
    is not, so the results differ from ``torch.optim.Adam``'s in the last bits.
    (:func:`lec4.cnn.train_classifier` keeps ``torch.optim.Adam``: its steps are dominated by
    the convolutions.)
    """
    parameters = list(parameters)
    if weight_decay is None:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)


def check_shape(name: str, tensor: torch.Tensor, expected: str, ndim: int) -> None:
    """Raise a ValueError naming ``tensor`` when it is not a tensor of ``ndim`` dims.

    ``expected`` is the documented layout, e.g. ``"(B, H, T, D)"``.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(tensor).__name__}")
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must have shape {expected} ({ndim} dims), got {tuple(tensor.shape)}")


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable scalars of ``module`` (the parameters with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
