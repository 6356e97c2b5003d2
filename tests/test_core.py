"""lec4's core: device selection, seeding, tracking, offline data, plotting."""
from __future__ import annotations

import gzip
import struct

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import lec4
from lec4 import data, plotting, tracking, utils


def test_get_device_defaults_to_cpu_without_gpu(monkeypatch):
    monkeypatch.delenv("LEC4_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert lec4.get_device().type == expected


def test_get_device_env_override(monkeypatch):
    monkeypatch.setenv("LEC4_DEVICE", "meta")
    assert lec4.get_device() == torch.device("meta")
    monkeypatch.setenv("LEC4_DEVICE", "not-a-device")
    with pytest.raises(ValueError, match="LEC4_DEVICE"):
        lec4.get_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("LEC4_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="no GPU"):
            lec4.get_device()


@pytest.mark.parametrize("weight_decay", [None, 0.01])
def test_adam_takes_the_steps_of_torch_adam(weight_decay):
    """lec4's fused optimizer against PyTorch's reference (for-loop) Adam / AdamW: the same steps."""
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3)]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    opt = utils.adam(ours, 1e-2, weight_decay=weight_decay)
    assert opt.defaults["fused"] is True
    reference = (torch.optim.Adam(theirs, lr=1e-2, foreach=False) if weight_decay is None
                 else torch.optim.AdamW(theirs, lr=1e-2, weight_decay=weight_decay, foreach=False))
    assert type(opt) is type(reference)
    for step in range(20):
        for params, optimizer in ((ours, opt), (theirs, reference)):
            optimizer.zero_grad()
            ((params[0] @ params[1]).sin().sum() + params[1].square().sum()).backward()
            optimizer.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_seed_everything_reproduces_all_generators():
    def draw():
        import random
        return random.random(), np.random.rand(), torch.rand(1).item()

    lec4.seed_everything(7)
    first = draw()
    lec4.seed_everything(7)
    assert draw() == first
    lec4.seed_everything(8)
    assert draw() != first
    with pytest.raises(ValueError):
        lec4.seed_everything(-1)


def test_check_shape_messages():
    with pytest.raises(ValueError, match=r"\(B, H, T, D\).*\(2, 3\)"):
        utils.check_shape("q", torch.zeros(2, 3), "(B, H, T, D)", 4)
    with pytest.raises(TypeError, match="torch.Tensor"):
        utils.check_shape("q", [1, 2], "(B, H, T, D)", 4)
    utils.check_shape("q", torch.zeros(1, 2, 3, 4), "(B, H, T, D)", 4)


def test_tracking_is_disabled_under_pytest_but_keeps_history():
    assert tracking.tracking_mode() == "disabled"
    run = tracking.start_run("t", {"lr": 0.1})
    run.log({"loss": 2.0})
    run.log({"loss": 1.0, "acc": 0.5}, step=5)
    assert run.series("loss") == ([0, 5], [2.0, 1.0])
    assert run.series("acc") == ([5], [0.5])
    with pytest.raises(KeyError, match="never logged"):
        run.series("missing")
    with pytest.raises(ValueError):
        run.log({})
    assert run.offline_dir is None
    run.finish()


def test_tracking_offline_writes_a_syncable_run(monkeypatch, tmp_path):
    """A real wandb offline run, outside pytest's disabled mode; needs no network."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setenv("LEC4_TRACKING", "offline")
    monkeypatch.setenv("LEC4_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tracking.start_run("offline-test", {"lr": 0.1})
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    offline = run.offline_dir
    run.finish()
    assert offline is not None and offline.name.startswith("offline-run-")
    assert list(offline.glob("*.wandb")), "no .wandb file to sync"


def test_tracking_rejects_unknown_mode(monkeypatch):
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setenv("LEC4_TRACKING", "sometimes")
    with pytest.raises(ValueError, match="LEC4_TRACKING"):
        tracking.tracking_mode()


def test_digits_splits_are_stratified_and_scaled():
    train, test = data.load_digits()
    assert train.x.shape[1:] == (1, 8, 8) and train.x.dtype == torch.float32
    assert len(train) + len(test) == 1797
    assert 0.0 <= train.x.min() and train.x.max() <= 1.0
    assert set(train.y.tolist()) == set(range(10)) == set(test.y.tolist())
    small = train.subset(0.1, seed=1)
    counts = torch.bincount(small.y, minlength=10)
    assert (counts >= 1).all() and len(small) < len(train) / 5
    assert torch.equal(train.subset(0.1, seed=1).y, small.y)
    with pytest.raises(ValueError):
        train.subset(0.0)


def test_photo_is_a_real_grayscale_image():
    photo = data.load_photo()
    assert photo.dim() == 2 and photo.shape[0] > 100 and photo.shape[1] > 100
    assert 0 <= photo.min() < 0.2 and 0.8 < photo.max() <= 1
    rgb = data.load_photo(gray=False)
    assert rgb.shape == (3, *photo.shape)
    assert torch.allclose(photo, 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def test_english_text_is_deterministic_prose():
    text = data.load_english_text()
    assert len(text) > 300_000 and text == data.load_english_text()
    words = text.split()
    common = sum(w.lower() in {"the", "a", "of", "is", "and", "to"} for w in words)
    assert common / len(words) > 0.08, "does not look like English prose"


def _write_idx(path, array, gz=False):
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_loader_reads_files_it_is_given(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", 5, True), ("t10k", 3, False)):
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, (n,)), gz)
    train, test = data.load_mnist_idx(tmp_path)
    assert train.x.shape == (5, 1, 28, 28) and test.y.shape == (3,)
    assert train.x.max() <= 1.0


def test_mnist_loader_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_mnist_idx(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist_idx(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 2, 2) + b"\x00")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"junk")
    with pytest.raises(ValueError, match="truncated"):
        data._read_idx(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(ValueError, match="magic"):
        data._read_idx(tmp_path / "train-labels-idx1-ubyte")


def test_show_images_grid_and_errors():
    plotting.use_book_style()
    assert matplotlib.rcParams["axes.grid"] is True
    fig = plotting.show_images(torch.rand(10, 1, 8, 8), titles=[str(i) for i in range(10)], ncols=4)
    assert len(fig.axes) == 12 and fig.axes[0].get_title() == "0"
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        plotting.show_images([torch.rand(2, 3, 4, 5)])
    with pytest.raises(ValueError, match="titles"):
        plotting.show_images(torch.rand(2, 4, 4), titles=["a"])
    with pytest.raises(ValueError):
        plotting.show_images([])


def test_plot_curves_draws_each_series():
    ax = plotting.plot_curves({"a": ([0, 1], [1.0, 0.5]), "b": ([0, 1], [2.0, 1.0])}, "step", "loss", logy=True)
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="series 'a'"):
        plotting.plot_curves({"a": ([0, 1], [1.0])}, "x", "y")
