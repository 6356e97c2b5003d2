"""The three training recipes of lec4.pretraining: freezing, auto-encoder losses, fine-tuning."""
import pytest
import torch
import torch.nn.functional as F

from lec4.data import load_digits
from lec4.pretraining import (MLP, RECIPES, RecipeConfig, RecipeResult, error_rate, minibatch_indices,
                              pretrain_autoencoder_layer, pretrain_autoencoders_layerwise, pretrain_supervised_layer,
                              reconstruct_through_stack, reconstruction_loss, run_recipe, summarize,
                              summary_markdown, train_classifier)



@pytest.fixture(scope="module")
def digits():
    return load_digits()


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before, model, prefix):
    return any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n.startswith(prefix))


@pytest.mark.parametrize("stage", ["supervised", "autoencoder"])
def test_greedy_stage_trains_only_its_layer(digits, stage):
    train, _ = digits
    torch.manual_seed(0)
    model = MLP(64, (16, 12, 8))
    data = train.subset(0.2)

    def pretrain(k):
        if stage == "supervised":
            pretrain_supervised_layer(model, k, data, steps=15, lr=1e-2)
        else:
            pretrain_autoencoder_layer(model, k, data.x, steps=15, lr=1e-2)

    pretrain(0)
    before = snapshot(model)
    pretrain(1)
    assert not changed(before, model, "hidden.0."), "layer 1 (frozen) changed while training layer 2"
    assert changed(before, model, "hidden.1."), "the layer being trained did not change"
    assert not changed(before, model, "hidden.2."), "a layer above the one being trained changed"
    assert not any(p.requires_grad for p in model.hidden[0].parameters())


def test_autoencoder_reconstruction_loss_decreases_on_held_out_digits(digits):
    train, test = digits
    torch.manual_seed(0)
    model = MLP(64, (32, 16))
    ae, losses = pretrain_autoencoder_layer(model, 0, train.x, steps=150, lr=1e-2)
    assert len(losses) == 150
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    held_out = test.x.flatten(1)
    untrained = reconstruction_loss(held_out, type(ae)(torch.nn.Linear(64, 32))(held_out))
    with torch.no_grad():
        assert reconstruction_loss(held_out, ae(held_out)) < 0.5 * untrained


def test_reconstruction_loss_is_squared_error_per_example():
    x, y = torch.rand(5, 7), torch.rand(5, 7)
    assert torch.allclose(reconstruction_loss(x, y), F.mse_loss(y, x, reduction="sum") / 5)
    with pytest.raises(ValueError, match="same"):
        reconstruction_loss(x, y[:, :6])


def test_stack_reconstruction_has_input_shape(digits):
    train, _ = digits
    model = MLP(64, (16, 8))
    aes, losses = pretrain_autoencoders_layerwise(model, train.x[:100], steps_per_layer=3)
    assert len(aes) == 2 and [len(l) for l in losses] == [3, 3]
    assert reconstruct_through_stack(aes, train.x[:4]).shape == (4, 64)


def test_fine_tuning_updates_every_layer_after_pretraining(digits):
    train, _ = digits
    torch.manual_seed(0)
    model = MLP(64, (16, 8))
    pretrain_autoencoders_layerwise(model, train.x, steps_per_layer=5)
    before = snapshot(model)
    train_classifier(model, train.subset(0.1), steps=5, lr=1e-2)
    assert all(changed(before, model, f"hidden.{k}.") for k in range(2)) and changed(before, model, "head.")


def test_minibatches_cover_each_epoch_once():
    batches = list(minibatch_indices(10, 3, steps=6, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 6 and all(len(b) == 3 for b in batches)
    epoch = torch.cat(batches[:3])  # 3 full batches per epoch of 10 (the last example waits)
    assert len(set(epoch.tolist())) == 9


def test_recipes_learn_something_and_summary(digits):
    train, test = digits
    config = RecipeConfig(hidden_sizes=(32, 16), pretrain_steps_per_layer=30, finetune_steps=80)
    results = [run_recipe(r, train, test, 0.2, seed, config) for r in RECIPES for seed in (0, 1)]
    for r in results:
        assert r.test_error < 0.5, f"{r.recipe} seed {r.seed}: {r.test_error:.2f} (chance is 0.9)"
        assert r.test_error == pytest.approx(error_rate(r.model, test))
    summary = summarize(results)
    errs = torch.tensor([r.test_error for r in results if r.recipe == "supervised"], dtype=torch.float64)
    s = summary["supervised", 0.2]
    assert s["mean"] == pytest.approx(errs.mean().item()) and s["std"] == pytest.approx(errs.std().item())
    table = summary_markdown(summary)
    assert table.count("\n") == 1 + len(RECIPES) and "20% labels" in table


def test_bad_inputs_raise_clear_errors(digits):
    train, test = digits
    model = MLP(64, (8,))
    with pytest.raises(ValueError, match="expected 64"):
        model(torch.zeros(2, 1, 5, 5))
    with pytest.raises(ValueError, match="layer index"):
        pretrain_supervised_layer(model, 3, train, steps=1)
    with pytest.raises(ValueError, match="unknown recipe"):
        run_recipe("magic", train, test)
    with pytest.raises(ValueError, match="hidden"):
        MLP(64, ())


def test_gradient_scale_by_layer_matches_autograd_and_shrinks_downwards(digits):
    from lec4 import seed_everything
    from lec4.pretraining import gradient_scale_by_layer

    train, _ = digits
    seed_everything(0)
    model = MLP(64, (128, 64, 32))
    x, y = train.x[:128], train.y[:128]
    scales = gradient_scale_by_layer(model, x, y)
    assert [n for n, _ in scales] == ["hidden layer 1", "hidden layer 2", "hidden layer 3", "output layer"]
    torch.nn.functional.cross_entropy(model(x), y).backward()  # the reference: plain .backward()
    expected = [layer.weight.grad.abs().mean().item() for layer in [*model.hidden, model.head]]
    assert [g for _, g in scales] == pytest.approx(expected, rel=1e-5)
    # a deep sigmoid network at a random start: the gradient shrinks layer by layer towards the input
    values = [g for _, g in scales]
    assert all(lower < upper for lower, upper in zip(values, values[1:]))
    with pytest.raises(ValueError, match="same examples"):
        gradient_scale_by_layer(model, x, y[:3])
