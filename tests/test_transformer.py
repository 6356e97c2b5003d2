"""The tiny modern decoder against PyTorch's own RMSNorm, SiLU and attention, and its caches."""
import pytest
import torch
import torch.nn.functional as F

from lec4.attention import sliding_window_mask
from lec4.model_zoo import ModelSpec, llama_style_parameters
from lec4.rope import rotation_matrix
from lec4.transformer import (Attention, DecoderConfig, KVCache, RMSNorm, RollingBufferCache, SwiGLU, TinyDecoder,
                              count_parameters, decode_logits, generate)


def test_rmsnorm_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16)
    ours, ref = RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), ref(x))
    with pytest.raises(ValueError, match="last dimension"):
        ours(torch.randn(2, 8))


def test_swiglu_matches_formula():
    torch.manual_seed(0)
    mlp, x = SwiGLU(8, 12), torch.randn(4, 8)
    a, b = x @ mlp.w1.weight.T, x @ mlp.w3.weight.T
    torch.testing.assert_close(mlp(x), (a * torch.sigmoid(a) * b) @ mlp.w2.weight.T)


@pytest.mark.parametrize("n_heads,n_kv_heads,window", [(4, 4, None), (4, 2, None), (4, 1, 4), (8, 2, 6)])
def test_attention_layer_matches_sdpa_enable_gqa(n_heads, n_kv_heads, window):
    torch.manual_seed(0)
    cfg = DecoderConfig(d_model=32, n_heads=n_heads, n_kv_heads=n_kv_heads, window=window)
    layer, T = Attention(cfg).double(), 9
    x = torch.randn(2, T, 32, dtype=torch.float64)
    D = cfg.head_dim
    # Reference: projections by hand, RoPE by rotating each position with R_{Θ,t}, PyTorch's GQA attention.
    R = rotation_matrix(torch.arange(T), D)                                # (T, D, D)
    heads = lambda W, h: (x @ W.weight.T).view(2, T, h, D).transpose(1, 2)  # noqa: E731
    q = torch.einsum("tij,bhtj->bhti", R, heads(layer.wq, n_heads))
    k = torch.einsum("tij,bhtj->bhti", R, heads(layer.wk, n_kv_heads))
    v = heads(layer.wv, n_kv_heads)
    mask = sliding_window_mask(T, window) if window else torch.ones(T, T, dtype=torch.bool).tril()
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    expected = out.transpose(1, 2).reshape(2, T, -1) @ layer.wo.weight.T
    torch.testing.assert_close(layer(x, torch.arange(T)), expected)


@pytest.mark.parametrize("window", [None, 4])
@pytest.mark.parametrize("prefill", [1, 5])
def test_kv_cache_decoding_equals_full_recomputation(window, prefill):
    torch.manual_seed(0)
    model = TinyDecoder(DecoderConfig(window=window)).eval()
    tokens = torch.randint(0, 64, (2, 14))
    with torch.no_grad():
        full = model(tokens)
    torch.testing.assert_close(decode_logits(model, tokens, cache="full", prefill=prefill), full)
    torch.testing.assert_close(decode_logits(model, tokens, cache=None, prefill=prefill), full)


@pytest.mark.parametrize("window", [2, 4, 6])
@pytest.mark.parametrize("prefill", [1, 3, 9])
def test_rolling_buffer_equals_full_cache_with_window(window, prefill):
    torch.manual_seed(1)
    model = TinyDecoder(DecoderConfig(window=window)).eval()
    tokens = torch.randint(0, 64, (1, 16))
    full = decode_logits(model, tokens, cache="full", prefill=prefill)
    torch.testing.assert_close(decode_logits(model, tokens, cache="rolling", prefill=prefill), full)


def test_window_changes_the_output():
    # Guards against a rolling buffer that accidentally ignores the window (then both tests above are vacuous).
    torch.manual_seed(2)
    model = TinyDecoder(DecoderConfig(window=2)).eval()
    tokens = torch.randint(0, 64, (1, 10))
    with torch.no_grad():
        windowed = model(tokens)
        model.cfg.window = None
        causal = model(tokens)
    assert torch.allclose(windowed[:, :2], causal[:, :2]) and not torch.allclose(windowed, causal)


def test_rolling_buffer_slots_and_memory():
    cache = RollingBufferCache(W=3)
    for i in range(7):
        k = torch.full((1, 1, 1, 2), float(i))
        cache.update(k, k, torch.tensor([i]))
    assert cache.positions.tolist() == [6, 4, 5]          # position i lives in slot i mod W
    assert cache.k[0, 0, :, 0].tolist() == [6.0, 4.0, 5.0]
    full = KVCache()
    for i in range(7):
        full.update(torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2), torch.tensor([i]))
    assert cache.nbytes() * 7 == full.nbytes() * 3


def test_generate_same_tokens_with_and_without_caches():
    torch.manual_seed(3)
    model = TinyDecoder(DecoderConfig(window=4)).eval()
    prompt = torch.randint(0, 64, (2, 4))
    reference, _ = generate(model, prompt, 8, cache=None)
    for kind in ["full", "rolling"]:
        tokens, caches = generate(model, prompt, 8, cache=kind)
        assert torch.equal(tokens, reference)
    assert caches[0].k.shape[2] == 3                      # W = w/2 + 1 slots


def test_param_count_formula_matches_the_module():
    cfg = DecoderConfig(vocab_size=50, d_model=48, n_layers=3, n_heads=6, n_kv_heads=2, d_ff=80)
    spec = ModelSpec("tiny", "test", "", 0.0, cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                     64, "GQA", "RoPE", "RMSNorm", "SwiGLU", None, None, d_ff=cfg.d_ff, vocab_size=cfg.vocab_size)
    assert llama_style_parameters(spec) == count_parameters(TinyDecoder(cfg))


def test_config_errors():
    with pytest.raises(ValueError, match="divisible"):
        DecoderConfig(n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="even integer"):
        DecoderConfig(window=3)
    with pytest.raises(ValueError, match="even head dimension"):
        DecoderConfig(d_model=12, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="sliding window"):
        TinyDecoder(DecoderConfig()).new_caches("rolling")


# ----------------------------------------------------------------------------- the KV cache's cost model
@pytest.mark.parametrize("cache", [None, "full"])
@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_generation_macs_equal_torch_flop_counter(cache, n_kv_heads):
    """The cost model counts exactly the multiply-adds PyTorch's FLOP counter sees in generate()."""
    from torch.utils.flop_counter import FlopCounterMode

    from lec4.transformer import generate, generation_macs
    cfg = DecoderConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, d_ff=48)
    model = TinyDecoder(cfg).eval()
    prompt = torch.randint(0, 50, (3, 5))
    with FlopCounterMode(display=False) as counter:
        generate(model, prompt, 9, cache=cache)
    assert 2 * sum(generation_macs(cfg, 5, 9, cache, batch=3).values()) == counter.get_total_flops()


def test_generation_macs_growth_and_errors():
    from lec4.transformer import forward_macs, generation_macs
    cfg = DecoderConfig(d_model=32, n_heads=4, n_kv_heads=2, d_ff=64)
    short, long = (generation_macs(cfg, 1, n, "full") for n in (255, 511))
    assert 1.9 < long["weights"] / short["weights"] < 2.1          # linear in T with the cache ...
    assert 3.8 < long["attention"] / short["attention"] < 4.1      # ... attention over the cache still quadratic
    no_short, no_long = (generation_macs(cfg, 1, n, None) for n in (255, 511))
    assert 3.8 < no_long["weights"] / no_short["weights"] < 4.1    # without: quadratic
    with pytest.raises(ValueError, match="cache must be None or 'full'"):
        generation_macs(cfg, 4, 4, "rolling")
    with pytest.raises(ValueError, match="n_queries <= n_keys"):
        forward_macs(cfg, 5, 4)
