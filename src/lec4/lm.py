"""A small character-level Transformer language model, nanoGPT-style.

Generative pre-training maximises the likelihood of the observed text,
log p(x_1..x_T) = sum_t log p(x_t | x_<t), i.e. minimises the mean next-character
cross-entropy; many windows of text are batched together. The model is the standard
decoder-only Transformer (learned absolute positions, multi-head causal self-attention,
pre-LayerNorm blocks); the modern variants (RoPE, GQA, sliding windows) are in the
"Modern Transformers" chapter.

Corpora (both ship with Python, nothing is downloaded): :func:`lec4.data.load_english_text`
for pre-training and :func:`load_zen_of_python` (PEP 20) as the small fine-tuning text.
"""
from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lec4.utils import adam, check_shape


class CharTokenizer:
    """Characters <-> integer ids; the vocabulary is the sorted set of characters of ``text``."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer needs a non-empty str to build its vocabulary")
        self.itos = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> torch.Tensor:
        """str -> int64 ids (N,). Characters outside the vocabulary are an error, not silently dropped."""
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters not in the {self.vocab_size}-character vocabulary: {unknown[:10]}")
        return torch.tensor([self.stoi[ch] for ch in text], dtype=torch.int64)

    def decode(self, ids: torch.Tensor) -> str:
        """int ids (N,) -> str."""
        return "".join(self.itos[i] for i in torch.as_tensor(ids).flatten().tolist())


def load_zen_of_python() -> str:
    """The Zen of Python (PEP 20, ~850 characters), from the standard library's ``this`` module.

    ``this`` stores it ROT13-encoded in ``this.s`` and prints it on import; we decode it
    with the module's own table ``this.d`` and keep the import quiet.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return "".join(this.d.get(ch, ch) for ch in this.s)


def bigram_nll(train_ids: torch.Tensor, eval_ids: torch.Tensor, vocab_size: int, alpha: float = 1.0) -> float:
    """The counting baseline: a bigram LM p(b | a) = (count(a b) + alpha) / (count(a) + alpha V).

    Counts come from ``train_ids`` (N,); returns the mean negative log-likelihood (nats per
    token) of each token of ``eval_ids`` (M,) given the one before it.
    """
    check_shape("train_ids", train_ids, "(N,)", 1)
    check_shape("eval_ids", eval_ids, "(M,)", 1)
    if alpha <= 0 or len(eval_ids) < 2:
        raise ValueError(f"need alpha > 0 and at least 2 evaluation tokens; got alpha={alpha}, {len(eval_ids)} tokens")
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    counts.index_put_((train_ids[:-1], train_ids[1:]), torch.ones(len(train_ids) - 1, dtype=torch.float64),
                      accumulate=True)
    log_probs = (counts + alpha).log() - (counts.sum(dim=1, keepdim=True) + alpha * vocab_size).log()
    return -log_probs[eval_ids[:-1], eval_ids[1:]].mean().item()


@dataclass
class LMConfig:
    vocab_size: int
    block_size: int = 64   # longest context T the model sees
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if min(self.vocab_size, self.block_size, self.n_layer, self.n_head) < 1:
            raise ValueError(f"vocab_size, block_size, n_layer, n_head must be positive: {self}")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t attends only to positions <= t; (B, T, C) -> (B, T, C)."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, H, T, D) tensors
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd), nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TransformerLM(nn.Module):
    """Decoder-only Transformer LM: token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) int64 -> (logits (B, T, V), mean cross-entropy vs ``targets`` (B, T) or None)."""
        check_shape("idx", idx, "(B, T)", 2)
        if idx.dtype != torch.int64:
            raise TypeError(f"idx must hold int64 token ids, got dtype {idx.dtype}")
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"sequence length T={T} exceeds block_size={self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        if targets.shape != idx.shape:
            raise ValueError(f"targets {tuple(targets.shape)} must have the shape of idx {tuple(idx.shape)} (B, T)")
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def split_ids(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous (train, val) split of a token stream (N,): the last ``val_fraction`` is held out."""
    check_shape("ids", ids, "(N,)", 1)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:]


def get_batch(ids: torch.Tensor, block_size: int, batch_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of a token stream (N,): inputs x (B, T) and next tokens y (B, T)."""
    check_shape("ids", ids, "(N,)", 1)
    if len(ids) < block_size + 1:
        raise ValueError(f"a stream of {len(ids)} tokens is too short for windows of block_size={block_size} (+1 target)")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = ids[starts[:, None] + offsets]
    y = ids[starts[:, None] + offsets + 1]
    return x, y


@torch.no_grad()
def evaluate(model: TransformerLM, ids: torch.Tensor) -> float:
    """Mean negative log-likelihood (nats per token) of a whole stream (N,), deterministic.

    The stream is cut into consecutive windows of ``block_size``; token t of a window is
    predicted from the tokens before it in that window.
    """
    check_shape("ids", ids, "(N,)", 1)
    T = model.config.block_size
    n_windows = (len(ids) - 1) // T
    if n_windows < 1:
        raise ValueError(f"need at least block_size + 1 = {T + 1} tokens to evaluate, got {len(ids)}")
    x = ids[: n_windows * T].view(n_windows, T)
    y = ids[1: n_windows * T + 1].view(n_windows, T)
    was_training = model.training
    model.eval()
    _, loss = model(x, y)
    model.train(was_training)
    return loss.item()


def train_lm(model: TransformerLM, train_ids: torch.Tensor, steps: int, *, batch_size: int = 32, lr: float = 3e-3,
             val_ids: torch.Tensor | None = None, eval_every: int = 50, seed: int = 0, run=None,
             prefix: str = "", progress: bool | None = False) -> dict[str, list[float]]:
    """AdamW on random windows of ``train_ids`` for ``steps`` steps (cosine learning-rate decay).

    Returns the history ``{"step", "train_loss", "val_step", "val_loss"}``; the validation
    loss (:func:`evaluate` on ``val_ids``) is measured before the first step and every
    ``eval_every`` steps. Metrics also go to ``run`` (a :class:`lec4.tracking.Run`) under ``prefix``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = adam(model.parameters(), lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    history: dict[str, list[float]] = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}

    def validate(step: int) -> None:
        if val_ids is None:
            return
        history["val_step"].append(step)
        history["val_loss"].append(evaluate(model, val_ids))
        if run is not None:
            run.log({f"{prefix}val_loss": history["val_loss"][-1]}, step=step)

    model.train()
    validate(0)
    for step in tqdm(range(1, steps + 1), desc=prefix or "train", disable=None if progress is None else not progress):
        x, y = get_batch(train_ids, model.config.block_size, batch_size, generator)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if run is not None and (step % 10 == 0 or step == steps):
            run.log({f"{prefix}train_loss": loss.item()}, step=step)
        if step % eval_every == 0 or step == steps:
            validate(step)
    return history


@torch.no_grad()
def generate(model: TransformerLM, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ``max_new_tokens`` tokens after ``prompt`` (T,) one at a time; returns (T + max_new_tokens,).

    Each step conditions on the last ``block_size`` tokens, as the model was trained.
    """
    check_shape("prompt", prompt, "(T,)", 1)
    if len(prompt) < 1 or temperature <= 0:
        raise ValueError(f"need a non-empty prompt and temperature > 0 (got {len(prompt)} tokens, {temperature})")
    was_training = model.training
    model.eval()
    idx = prompt[None, :]
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])
        logits = logits[:, -1, :] / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        next_id = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
        idx = torch.cat([idx, next_id], dim=1)
    model.train(was_training)
    return idx[0]
