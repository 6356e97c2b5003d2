"""The model table: internal consistency, paper figures, and the KV-cache / GQA arithmetic."""
import pytest

from lec4.model_zoo import (MODELS, attention_parameters, attention_variant, get_model, gqa_savings,
                            kv_cache_bytes, kv_cache_bytes_per_token, llama_style_parameters, table_rows)


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.name)
def test_each_entry_is_consistent(spec):
    assert spec.attention == attention_variant(spec.n_heads, spec.n_kv_heads)
    assert spec.n_heads % spec.n_kv_heads == 0
    if spec.family != "PaLM":                              # PaLM: d_head = 256 regardless of d_model
        assert spec.n_heads * spec.d_head == spec.d_model
    assert spec.position == "RoPE"


def test_lecture_families_present():
    families = {s.family for s in MODELS}
    assert families == {"PaLM", "Llama-1", "Falcon", "Llama-2", "Mistral"}
    assert get_model("Mistral 7B").window == 4096 and get_model("Llama-2 70B").context == 4096


def test_kv_cache_per_token_by_hand():
    # 2 · layers · h_kv · d_head · 2 bytes
    assert kv_cache_bytes_per_token(get_model("Llama-2 70B")) == 2 * 80 * 8 * 128 * 2 == 327_680
    assert kv_cache_bytes_per_token(get_model("Llama-1 65B")) == 2 * 80 * 64 * 128 * 2
    assert kv_cache_bytes_per_token(get_model("Falcon 7B"), bytes_per_element=4) == 2 * 32 * 1 * 64 * 4


def test_rolling_buffer_caps_mistral_cache():
    mistral = get_model("Mistral 7B")
    per_token = kv_cache_bytes_per_token(mistral)
    assert kv_cache_bytes(mistral, 1000) == 1000 * per_token
    assert kv_cache_bytes(mistral, 32_000) == 4096 * per_token
    assert kv_cache_bytes(mistral, 32_000, rolling_buffer=False) == 32_000 * per_token
    assert kv_cache_bytes(get_model("Llama-2 7B"), 32_000, batch=2) == 2 * 32_000 * kv_cache_bytes_per_token(get_model("Llama-2 7B"))


def test_gqa_savings():
    s = gqa_savings(get_model("Llama-2 70B"))
    assert s["g"] == 8 and s["kv_reduction"] == 8
    assert s["kv_bytes_per_token_mha"] == 8 * s["kv_bytes_per_token"]
    assert s["attn_params_saved"] == 80 * 2 * 8192 * 128 * (64 - 8)
    assert gqa_savings(get_model("Llama-2 7B"))["attn_params_saved"] == 0
    # Llama-2 70B attention = 80 · 8192 · 128 · (2·64 + 2·8) ≈ 12.1B of 70B
    assert attention_parameters(get_model("Llama-2 70B")) == 80 * 8192 * 128 * 144


def test_parameter_formula_reproduces_the_papers_totals():
    # Mistral 7B ("7B"), Mixtral: 47B total, 13B active per token (Jiang et al. 2024)
    assert llama_style_parameters(get_model("Mistral 7B")) / 1e9 == pytest.approx(7.24, abs=0.01)
    mixtral = get_model("Mixtral 8x7B")
    assert llama_style_parameters(mixtral) / 1e9 == pytest.approx(47, rel=0.02)
    assert llama_style_parameters(mixtral, active_only=True) / 1e9 == pytest.approx(13, rel=0.02)
    with pytest.raises(ValueError, match="d_ff"):
        llama_style_parameters(get_model("Llama-1 7B"))


def test_errors_and_rows():
    with pytest.raises(ValueError, match="unknown model"):
        get_model("GPT-5")
    with pytest.raises(ValueError):
        kv_cache_bytes_per_token(get_model("Falcon 7B"), 0)
    rows = table_rows()
    assert len(rows) == len(MODELS) and rows[0]["kv_cache_KiB_per_token_fp16"] == 118.0
