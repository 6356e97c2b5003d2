"""Masks, windows and naive attention against PyTorch's own attention."""
import itertools
from pathlib import Path

import pytest

import torch
import torch.nn.functional as F

from lec4.attention import (causal_mask, flex_sliding_window_mask_mod, gqa_attention_loop, lecture_w_from_mistral,
                            masked_attention, peak_cpu_memory, sliding_window_attention_loop,
                            sliding_window_attention_naive, sliding_window_mask, time_call, window_conventions,
                            window_mask)


def rand_qkv(B=2, Hq=4, Hkv=4, T=7, S=None, D=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    S = T if S is None else S
    return (torch.randn(B, Hq, T, D, generator=g, dtype=dtype), torch.randn(B, Hkv, S, D, generator=g, dtype=dtype),
            torch.randn(B, Hkv, S, D, generator=g, dtype=dtype))


@pytest.mark.parametrize("T", range(1, 10))
@pytest.mark.parametrize("w", [2, 4, 6, 8, 20])
def test_sliding_window_mask_exhaustive(T, w):
    mask = sliding_window_mask(T, w)
    for t, j in itertools.product(range(T), range(T)):
        assert bool(mask[t, j]) == (max(0, t - w // 2) <= j <= t), (t, j)
    # the lecture: a window of w/2 + 1 tokens ending on the diagonal (fewer at the start)
    assert mask.sum(1).tolist() == [min(t + 1, w // 2 + 1) for t in range(T)]


def test_lecture_pictures_w4_w6():
    assert sliding_window_mask(6, 4).int().tolist() == [
        [1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]]
    assert sliding_window_mask(6, 6)[5].int().tolist() == [0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("T", range(1, 9))
def test_causal_mask_is_tril(T):
    assert torch.equal(causal_mask(T), torch.ones(T, T, dtype=torch.bool).tril())


def test_window_larger_than_sequence_is_causal():
    assert torch.equal(sliding_window_mask(5, 10), causal_mask(5))


@pytest.mark.parametrize("w", [1, 3, 0, -2, 5, 2.0, True, "4"])
def test_odd_or_bad_window_is_a_clear_error(w):
    with pytest.raises(ValueError, match="even integer"):
        sliding_window_mask(5, w)


@pytest.mark.parametrize("w", [2, 4, 6, 10])
def test_conventions_agree_with_each_other(w):
    conv = window_conventions(w)
    T = 12
    qi, ki = torch.arange(T)[:, None], torch.arange(T)[None, :]
    mask = sliding_window_mask(T, w)
    # FlexAttention's example mask_mod
    assert torch.equal(flex_sliding_window_mask_mod(w)(0, 0, qi, ki), mask)
    # FlashAttention: keys i − left … i + right
    left, right = conv["flash_attn_window_size"]
    assert torch.equal((ki >= qi - left) & (ki <= qi + right), mask)
    # Mistral: a query sees W keys, itself included
    assert mask.sum(1).max() == conv["mistral_W"] == conv["visible_tokens"]
    assert lecture_w_from_mistral(conv["mistral_W"]) == w


def test_masked_attention_matches_sdpa():
    q, k, v = rand_qkv(T=6, S=9)
    mask = torch.rand(6, 9, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[:, 0] = True
    torch.testing.assert_close(masked_attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.testing.assert_close(masked_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_causal_masked_attention_matches_is_causal_and_weights_sum_to_one():
    q, k, v = rand_qkv()
    out, weights = masked_attention(q, k, v, causal_mask(7), return_weights=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 7, dtype=torch.float64))
    assert (weights.triu(1) == 0).all()


@pytest.mark.parametrize("Hq,Hkv", [(4, 4), (4, 2), (4, 1), (6, 3), (8, 2)])
def test_gqa_loop_matches_sdpa_enable_gqa(Hq, Hkv):
    q, k, v = rand_qkv(Hq=Hq, Hkv=Hkv)
    mask = sliding_window_mask(7, 4)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    torch.testing.assert_close(gqa_attention_loop(q, k, v, mask), expected)


def test_gqa_head_h_reads_kv_head_h_div_g():
    q, k, v = rand_qkv(Hq=6, Hkv=2)
    out = gqa_attention_loop(q, k, v)
    for h in range(6):
        torch.testing.assert_close(out[:, h], F.scaled_dot_product_attention(q[:, h], k[:, h // 3], v[:, h // 3]))


def test_gqa_bad_heads_is_a_clear_error():
    q, k, v = rand_qkv(Hq=6, Hkv=4)
    with pytest.raises(ValueError, match="divisible"):
        gqa_attention_loop(q, k, v)


@pytest.mark.parametrize("T", [1, 2, 5, 11])
@pytest.mark.parametrize("w", [2, 4, 6, 30])
def test_sliding_window_implementations_match_sdpa(T, w):
    q, k, v = rand_qkv(T=T, seed=T * 100 + w)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(T, w))
    torch.testing.assert_close(sliding_window_attention_naive(q, k, v, w), expected)
    torch.testing.assert_close(sliding_window_attention_loop(q, k, v, w), expected)


def test_shape_dtype_device_errors():
    q, k, v = rand_qkv()
    with pytest.raises(ValueError, match=r"\(B, H_q, T, D\)"):
        masked_attention(q[0], k, v)
    with pytest.raises(ValueError, match="same shape"):
        masked_attention(q, k, v[:, :, :3])
    with pytest.raises(TypeError, match="dtype"):
        masked_attention(q, k.float(), v)
    with pytest.raises(TypeError, match="boolean"):
        masked_attention(q, k, v, causal_mask(7).float())
    with pytest.raises(ValueError, match="broadcast"):
        masked_attention(q, k, v, causal_mask(5))
    with pytest.raises(ValueError, match="no key"):
        masked_attention(q, k, v, torch.zeros(7, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="H_kv < H_q"):
        masked_attention(*rand_qkv(Hq=4, Hkv=2))


def test_measuring_helpers_measure():
    x = torch.randn(256, 256)
    assert time_call(lambda: x @ x, repeats=2) > 0
    peak = peak_cpu_memory(lambda: x @ x)
    assert peak >= 256 * 256 * 4       # the product's output was allocated


def test_window_mask_with_cached_keys_in_any_order():
    # keys from a rolling buffer arrive in slot order; the mask depends only on positions
    k_positions = torch.tensor([8, 5, 6, 7])
    mask = window_mask(torch.tensor([8]), k_positions, w=4)
    assert mask.tolist() == [[True, False, True, True]]


# ----------------------------------------------------------------------------- chunked scores, results tables
@pytest.mark.parametrize("T,w,Hq,Hkv", [(64, 16, 4, 2), (50, 8, 2, 2), (12, 64, 2, 1)])
def test_chunked_score_count_is_the_reference_solutions_largest_tensor(T, w, Hq, Hkv):
    """Independent reference: run hw-attention's reference solution and record its matrix products."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from lec4.attention import chunked_score_count
    from autograder.notebook import submission_source
    namespace = {}
    exec(submission_source(Path(__file__).resolve().parents[1] / "solutions" / "hw-attention" / "hw-attention.ipynb"), namespace)

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in (torch.ops.aten.bmm.default, torch.ops.aten.mm.default):   # the matrix products
                Largest.numel = max(Largest.numel, out.numel())
            return out

    q, k, v = torch.randn(2, Hq, T, 8), torch.randn(2, Hkv, T, 8), torch.randn(2, Hkv, T, 8)
    with Largest():
        namespace["sliding_window_attention"](q, k, v, w)
    assert Largest.numel == chunked_score_count(2, Hq, T, w)


def test_benchmark_results(tmp_path):
    from lec4.attention import RESULTS_DIR, benchmark_results
    assert "sliding_window_attention" in benchmark_results("hw_attention.md")       # committed CPU table
    import lec4
    assert RESULTS_DIR == Path(lec4.__file__).parent / "results"                     # package data, not the checkout
    assert benchmark_results("gpu_attention.md", tmp_path) is None                   # not measured yet
    (tmp_path / "gpu_attention.md").write_text("| T |\n")
    assert benchmark_results("gpu_attention.md", tmp_path) == "| T |\n"
    with pytest.raises(ValueError, match="ending in .md"):
        benchmark_results("../../etc/passwd")


def test_results_tables_reads_the_committed_cpu_table_and_the_gpu_scripts_output():
    import importlib.util
    from pathlib import Path

    from lec4.attention import benchmark_results, results_tables
    cpu = results_tables(benchmark_results("hw_attention.md"))
    assert [t[0] for t in cpu] == ["sliding_window_attention", "apply_rope (T = 4096, D = 128, B = 1, H = 8)"]
    heading, header, rows = cpu[0]
    assert header[:3] == ["T", "w", "sliding chunks ms"] and [r[:2] for r in rows][-1] == ["8192", "512"]
    # the GPU script's table format, rendered by the script itself (with an out-of-memory row)
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("gpu_attention", root / "benchmarks" / "gpu_attention.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    ok = {"ms": 1.5, "peak_mib": 66.0}
    rows = [{"T": 8192, "chunks": {"ms": 15.7, "peak_mib": 9900.0}, "flex": ok, "diff": 0.01},
            {"T": 65536, "chunks": {"oom": "CUDA out of memory"}, "flex": ok}]
    text = gpu.table(gpu.FULL, "cpu", 5, rows, {"elementwise": ok, "dense": ok, "diff": 0.0}, 1e-3, "cmd")
    tables = results_tables(text)
    assert tables[0][0] == "sliding_window_attention" and tables[0][2][1][:2] == ["65536", "out of memory"]
    assert tables[0][2][0][5] == "10.5x"
    with pytest.raises(ValueError, match="a row has 2 cells"):
        results_tables("| a | b | c |\n|---|---|---|\n| 1 | 2 |\n")
