"""The lecture's family of modern Transformer LMs as data, and what their shapes imply.

Every figure comes from the lecture or from the model's own paper (named in ``source``);
``None`` means the paper does not say. Derived quantities (KV-cache bytes per token,
attention parameters, GQA savings) are computed from these figures, never typed in.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

PALM = "Chowdhery et al. 2022, PaLM, Table 1 and §2"
LLAMA1 = "Touvron et al. 2023a, LLaMA, Table 2 and §2"
FALCON = "Almazrouei et al. 2023, The Falcon Series of Open Language Models, architecture table and §4"
LLAMA2 = "Touvron et al. 2023b, Llama 2, Table 1 and §2.2 (70B widths: Meta's released model parameters)"
MISTRAL = "Jiang et al. 2023, Mistral 7B, Table 1"
MIXTRAL = "Jiang et al. 2024, Mixtral of Experts, Table 1 and §2"


@dataclass(frozen=True)
class ModelSpec:
    """One model of the table. Sizes in units the papers use (parameters in billions)."""
    name: str
    family: str
    released: str
    params_b: float                  # reported total parameters, billions
    n_layers: int
    d_model: int
    n_heads: int                     # h_q
    n_kv_heads: int                  # h_kv
    d_head: int
    context: int                     # training context length, tokens
    attention: str                   # "MHA" | "MQA" | "GQA" (derived check: see attention_variant)
    position: str
    norm: str
    activation: str
    tokens_t: float | None           # training tokens, trillions (None: not disclosed)
    optimizer: str | None
    d_ff: int | None = None          # MLP hidden size where the paper gives it
    vocab_size: int | None = None
    window: int | None = None        # Mistral's sliding window W (keys seen per query)
    n_experts: int = 1               # Mixtral: experts per layer
    experts_per_token: int = 1
    source: str = ""


def attention_variant(n_heads: int, n_kv_heads: int) -> str:
    """MHA if every query head has its own key/value head, MQA if all share one, else GQA."""
    if n_kv_heads == n_heads:
        return "MHA"
    if n_kv_heads == 1:
        return "MQA"
    return "GQA"


_RN, _LN = "RMSNorm (pre-norm)", "LayerNorm"
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("PaLM 540B", "PaLM", "2022-04 (lecture: Oct 2022)", 540.35, 118, 18432, 48, 1, 256, 2048, "MQA",
              "RoPE", _LN + " (no biases)", "SwiGLU", 0.78, "Adafactor", d_ff=4 * 18432, vocab_size=256_000, source=PALM),
    ModelSpec("Llama-1 7B", "Llama-1", "2023-02", 6.7, 32, 4096, 32, 32, 128, 2048, "MHA",
              "RoPE", _RN, "SwiGLU", 1.0, "AdamW", vocab_size=32_000, source=LLAMA1),
    ModelSpec("Llama-1 13B", "Llama-1", "2023-02", 13.0, 40, 5120, 40, 40, 128, 2048, "MHA",
              "RoPE", _RN, "SwiGLU", 1.0, "AdamW", vocab_size=32_000, source=LLAMA1),
    ModelSpec("Llama-1 33B", "Llama-1", "2023-02", 32.5, 60, 6656, 52, 52, 128, 2048, "MHA",
              "RoPE", _RN, "SwiGLU", 1.4, "AdamW", vocab_size=32_000, source=LLAMA1),
    ModelSpec("Llama-1 65B", "Llama-1", "2023-02", 65.2, 80, 8192, 64, 64, 128, 2048, "MHA",
              "RoPE", _RN, "SwiGLU", 1.4, "AdamW", vocab_size=32_000, source=LLAMA1),
    ModelSpec("Falcon 7B", "Falcon", "2023-06", 7.0, 32, 4544, 71, 1, 64, 2048, "MQA",
              "RoPE", _LN, "GeLU", 1.5, "AdamW (z-loss, weight decay)", vocab_size=65_024, source=FALCON),
    ModelSpec("Falcon 40B", "Falcon", "2023-06", 40.0, 60, 8192, 128, 8, 64, 2048, "GQA",
              "RoPE", _LN, "GeLU", 1.0, "AdamW (z-loss, weight decay)", vocab_size=65_024, source=FALCON),
    ModelSpec("Falcon 180B", "Falcon", "2023-09", 180.0, 80, 14848, 232, 8, 64, 2048, "GQA",
              "RoPE", _LN, "GeLU", 3.5, "AdamW (z-loss, weight decay)", vocab_size=65_024, source=FALCON),
    ModelSpec("Llama-2 7B", "Llama-2", "2023-07", 7.0, 32, 4096, 32, 32, 128, 4096, "MHA",
              "RoPE", _RN, "SwiGLU", 2.0, "AdamW", vocab_size=32_000, source=LLAMA2),
    ModelSpec("Llama-2 13B", "Llama-2", "2023-07", 13.0, 40, 5120, 40, 40, 128, 4096, "MHA",
              "RoPE", _RN, "SwiGLU", 2.0, "AdamW", vocab_size=32_000, source=LLAMA2),
    ModelSpec("Llama-2 70B", "Llama-2", "2023-07", 70.0, 80, 8192, 64, 8, 128, 4096, "GQA",
              "RoPE", _RN, "SwiGLU", 2.0, "AdamW", vocab_size=32_000, source=LLAMA2),
    ModelSpec("Mistral 7B", "Mistral", "2023-10", 7.0, 32, 4096, 32, 8, 128, 8192, "GQA",
              "RoPE", _RN, "SwiGLU", None, None, d_ff=14336, vocab_size=32_000, window=4096, source=MISTRAL),
    ModelSpec("Mixtral 8x7B", "Mistral", "2023-12", 47.0, 32, 4096, 32, 8, 128, 32768, "GQA",
              "RoPE", _RN, "SwiGLU (8 experts, top-2)", None, None, d_ff=14336, vocab_size=32_000,
              n_experts=8, experts_per_token=2, source=MIXTRAL),
)


def get_model(name: str) -> ModelSpec:
    """The table's entry called ``name`` (e.g. "Llama-2 70B")."""
    for spec in MODELS:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown model {name!r}; known: {[m.name for m in MODELS]}")


def kv_cache_bytes_per_token(spec: ModelSpec, bytes_per_element: int = 2) -> int:
    """2 (K and V) · layers · h_kv · d_head · bytes per element (2 for fp16/bf16)."""
    if bytes_per_element <= 0:
        raise ValueError(f"bytes_per_element must be positive, got {bytes_per_element}")
    return 2 * spec.n_layers * spec.n_kv_heads * spec.d_head * bytes_per_element


def kv_cache_bytes(spec: ModelSpec, context: int, batch: int = 1, bytes_per_element: int = 2,
                   rolling_buffer: bool = True) -> int:
    """KV-cache bytes for ``batch`` sequences of ``context`` tokens.

    A model with a sliding window W and ``rolling_buffer`` keeps only min(context, W) positions.
    """
    if context < 0 or batch < 1:
        raise ValueError(f"context must be >= 0 and batch >= 1, got context={context}, batch={batch}")
    kept = min(context, spec.window) if (rolling_buffer and spec.window) else context
    return batch * kept * kv_cache_bytes_per_token(spec, bytes_per_element)


def as_multi_head(spec: ModelSpec) -> ModelSpec:
    """The same model with one key/value head per query head (MHA): the baseline for savings."""
    return replace(spec, n_kv_heads=spec.n_heads, attention="MHA", name=spec.name + " (as MHA)")


def attention_parameters(spec: ModelSpec) -> int:
    """Parameters of all attention projections: per layer d_model·d_head·(h_q [W_q] + 2·h_kv [W_k, W_v] + h_q [W_o])."""
    per_layer = spec.d_model * spec.d_head * (2 * spec.n_heads + 2 * spec.n_kv_heads)
    return spec.n_layers * per_layer


def gqa_savings(spec: ModelSpec, bytes_per_element: int = 2) -> dict[str, float]:
    """What sharing key/value heads saves against the same model with MHA.

    Returns the group size g, the attention parameters saved (absolute and as a fraction of the
    reported total) and the KV-cache bytes per token with and without sharing.
    """
    mha = as_multi_head(spec)
    saved = attention_parameters(mha) - attention_parameters(spec)
    return {
        "g": spec.n_heads // spec.n_kv_heads,
        "attn_params_saved": saved,
        "fraction_of_model": saved / (spec.params_b * 1e9),
        "kv_bytes_per_token": kv_cache_bytes_per_token(spec, bytes_per_element),
        "kv_bytes_per_token_mha": kv_cache_bytes_per_token(mha, bytes_per_element),
        "kv_reduction": spec.n_heads / spec.n_kv_heads,
    }


def llama_style_parameters(spec: ModelSpec, active_only: bool = False) -> int:
    """Parameter count of a pre-norm RMSNorm / SwiGLU / untied-embedding decoder (Llama, Mistral).

    embeddings V·d + output d·V + per layer (attention + experts · 3·d·d_ff + router d·experts
    + 2 norms d) + final norm d. ``active_only`` counts only the experts a token uses.
    Needs ``d_ff`` and ``vocab_size``; matches :class:`lec4.transformer.TinyDecoder`'s layout.
    """
    if spec.d_ff is None or spec.vocab_size is None:
        raise ValueError(f"{spec.name}: the paper gives no d_ff/vocabulary, cannot count parameters")
    experts = spec.experts_per_token if active_only else spec.n_experts
    router = spec.d_model * spec.n_experts if spec.n_experts > 1 else 0
    per_layer = (attention_parameters(spec) // spec.n_layers + experts * 3 * spec.d_model * spec.d_ff
                 + router + 2 * spec.d_model)
    return 2 * spec.vocab_size * spec.d_model + spec.n_layers * per_layer + spec.d_model


def table_rows(specs=MODELS) -> list[dict]:
    """The table as a list of dicts (one per model) with the derived KV-cache column added."""
    rows = []
    for spec in specs:
        row = asdict(spec)
        row["kv_cache_KiB_per_token_fp16"] = kv_cache_bytes_per_token(spec) / 1024
        rows.append(row)
    return rows
