"""benchmarks/gpu_attention.py (runs on the lent GPU machine, so here only its parts are checked):
it reads the same reference solution as grading does without nbformat, its comparison methods are
right, an out-of-memory error becomes a table row, and without a GPU it refuses to run unless --smoke."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
from autograder.notebook import submission_source  # noqa: E402

_spec = importlib.util.spec_from_file_location("gpu_attention", ROOT / "benchmarks" / "gpu_attention.py")
gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu)


def test_reference_source_is_what_grading_runs():
    assert gpu.reference_source() == submission_source(gpu.SOURCE_NB)
    ns = gpu.reference_functions()
    assert callable(ns["sliding_window_attention"]) and callable(ns["apply_rope"])


def test_the_script_runs_without_nbformat_or_jupyter():
    """The GPU machine has torch only: block nbformat, nbgrader and jupyter and load the reference."""
    code = ("import sys, runpy\n"
            "for m in ('nbformat', 'nbgrader', 'jupyter_client', 'nbclient'): sys.modules[m] = None\n"
            f"ns = runpy.run_path({str(ROOT / 'benchmarks' / 'gpu_attention.py')!r})\n"
            "print(sorted(k for k in ns['reference_functions']() if not k.startswith('_'))[:50])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "'sliding_window_attention'" in out.stdout and "'apply_rope'" in out.stdout


def test_dense_f32_matches_torch_sdpa_and_the_reference():
    torch.manual_seed(0)
    q = torch.randn(1, 4, 40, 8)
    k, v = torch.randn(1, 2, 40, 8), torch.randn(1, 2, 40, 8)
    w = 10
    t, s = torch.arange(40)[:, None], torch.arange(40)
    mask = (s <= t) & (s >= t - w // 2)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask)
    got = gpu.dense_window_attention_f32(q, k, v, w)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gpu.reference_functions()["sliding_window_attention"](q, k, v, w), expected,
                               atol=1e-5, rtol=1e-5)


def test_dense_rope_is_the_rotation_of_each_pair():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 6)
    pos = torch.arange(5)
    got = gpu.dense_rope(x, pos)
    theta = 10000.0 ** (-2.0 * torch.arange(3) / 6)
    a = pos[:, None] * theta                                   # (T, D/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    expected = torch.stack([x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()], -1).flatten(-2)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(gpu.reference_functions()["apply_rope"](x, pos), expected)


def test_out_of_memory_becomes_a_row():
    def boom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
    res = gpu.measure(boom, "cpu", 1)
    assert res == {"oom": "CUDA out of memory. Tried to allocate 80.00 GiB"}
    ok = gpu.measure(lambda: torch.ones(3), "cpu", 2)
    assert ok["ms"] >= 0 and ok["peak_mib"] is None
    rows = [{"T": 8, "chunks": res, "flex": {"ms": 1.0, "peak_mib": 2.0}},
            {"T": 16, "skipped": "not run: the 75 s time budget was spent"}]
    rope = {"elementwise": ok, "dense": ok, "diff": 0.0}
    text = gpu.table(gpu.SMOKE, "cpu", 2, rows, rope, 1e-3, "cmd")
    assert "| 8 | out of memory | 1.00 | out of memory | 2 |" in text
    assert "| 16 | not run: the 75 s time budget was spent |" in text
    assert "smoke run, no GPU" in text and f"torch {torch.__version__}" in text


def test_refuses_without_a_gpu_unless_smoke():
    if torch.cuda.is_available():
        pytest.fail("this test expects the CPU-only test machine")
    with pytest.raises(SystemExit, match="no CUDA device found"):
        gpu.main(["--out", "/dev/null"])
