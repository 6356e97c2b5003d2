"""The character-level Transformer LM: causality, likelihood, training, sampling."""
import math

import pytest
import torch
import torch.nn.functional as F

from lec4.data import load_english_text
from lec4.lm import (CharTokenizer, bigram_nll, LMConfig, TransformerLM, evaluate, generate, get_batch, load_zen_of_python,
                     split_ids, train_lm)



@pytest.fixture(scope="module")
def corpus():
    text = load_english_text()[:60_000]
    tok = CharTokenizer(text)
    return tok, tok.encode(text)


def tiny(vocab_size, **kw):
    torch.manual_seed(0)
    return TransformerLM(LMConfig(vocab_size, **{"block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32, **kw}))


def test_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer("hello world")
    assert tok.vocab_size == 8 and tok.decode(tok.encode("low droll")) == "low droll"
    with pytest.raises(ValueError, match="not in the"):
        tok.encode("hello!")


def test_model_is_causal():
    model = tiny(20)
    idx = torch.randint(0, 20, (2, 24), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % 20  # alter every token from position 12 on
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6), "outputs before t=12 depend on later tokens"
    assert not torch.allclose(a[:, 12:], b[:, 12:]), "outputs ignore the tokens they should see"


def test_initial_loss_is_uniform_and_matches_cross_entropy():
    model = tiny(50)
    x, y = torch.randint(0, 50, (2, 4, 32)).unbind(0)
    logits, loss = model(x, y)
    assert logits.shape == (4, 32, 50)
    assert loss.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, 50), y.reshape(-1)).item())
    assert abs(loss.item() - math.log(50)) < 0.1  # small init: nearly uniform next-token distribution


def test_batches_are_windows_with_next_token_targets():
    ids = torch.arange(1000)  # a stream whose every window is unique: token i sits at position i
    x, y = get_batch(ids, 16, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(x, x[:, :1] + torch.arange(16))  # contiguous windows
    assert torch.equal(y, x + 1)  # each target is the next token
    assert int(x.max()) < 999


def test_training_lowers_held_out_loss(corpus):
    tok, ids = corpus
    train, val = split_ids(ids, 0.1)
    model = tiny(tok.vocab_size)
    history = train_lm(model, train, steps=80, batch_size=16, lr=3e-3, val_ids=val[:2048], eval_every=40)
    assert history["val_step"] == [0, 40, 80]
    assert history["val_loss"][-1] < history["val_loss"][0] - 1.0
    assert history["val_loss"][-1] == pytest.approx(evaluate(model, val[:2048]))


def test_generate_greedy_matches_argmax_and_is_reproducible():
    model = tiny(30)
    prompt = torch.tensor([1, 2, 3])
    out = generate(model, prompt, 5, top_k=1)
    seq = prompt.clone()
    with torch.no_grad():
        for _ in range(5):
            seq = torch.cat([seq, model(seq[None])[0][0, -1].argmax().view(1)])
    assert torch.equal(out, seq)
    a = generate(model, prompt, 40, generator=torch.Generator().manual_seed(1))
    b = generate(model, prompt, 40, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and len(a) == 43  # longer than block_size: the context is cropped


def test_bad_inputs_raise_clear_errors():
    model = tiny(10)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.int64))
    with pytest.raises(TypeError, match="int64"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="divisible"):
        LMConfig(10, n_embd=30, n_head=4)


def test_zen_of_python_is_decoded_quietly(capsys):
    zen = load_zen_of_python()
    assert zen.startswith("The Zen of Python, by Tim Peters") and "Beautiful is better than ugly." in zen
    assert capsys.readouterr().out == ""
    CharTokenizer(load_english_text()).encode(zen)  # the fine-tuning text fits the pre-training vocabulary


def test_bigram_baseline_counts():
    tok = CharTokenizer("abc")
    train, ev = tok.encode("abababc"), tok.encode("abca")
    # counts: a->b 3, b->a 2, b->c 1; add-one smoothing over V=3
    expected = -(math.log(4 / 6) + math.log(2 / 6) + math.log(1 / 3)) / 3
    assert bigram_nll(train, ev, 3) == pytest.approx(expected)
