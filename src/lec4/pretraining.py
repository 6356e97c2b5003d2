"""Three ways to train a deep network, as in the lecture (after Bengio et al., 2006).

- Idea 1, ``"supervised"``: supervised training of the whole network from a random start.
- Idea 2, ``"supervised-layerwise"``: greedy *supervised* layer-wise pre-training (train
  hidden layer k together with a temporary softmax head, earlier layers frozen), then
  supervised fine-tuning of all parameters.
- Idea 3, ``"autoencoder-layerwise"``: greedy *unsupervised* layer-wise pre-training with
  auto-encoders (encoder z = h(Wx), decoder x' = h(W'z), loss ||x - x'||^2; train layer 1,
  freeze it; train layer 2 on its codes; ...), then supervised fine-tuning of all parameters.

The network is a deep MLP with sigmoid units ``h``, the unit of the 2006 papers. All
recipes share one optimiser loop (:func:`optimize`) and one fine-tuning budget, so a
comparison differs only in where fine-tuning starts from.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lec4.data import Split
from lec4.utils import adam, seed_everything

RECIPES = ("supervised", "supervised-layerwise", "autoencoder-layerwise")
RECIPE_TITLES = {
    "supervised": "Idea 1: supervised only",
    "supervised-layerwise": "Idea 2: supervised layer-wise + fine-tune",
    "autoencoder-layerwise": "Idea 3: auto-encoder layer-wise + fine-tune",
}


class MLP(nn.Module):
    """A deep sigmoid MLP: images (B, C, H, W) or vectors (B, D) -> logits (B, n_classes).

    ``hidden[k]`` is a ``nn.Linear``; hidden layer k computes z_k = sigmoid(hidden[k](z_{k-1})).
    """

    def __init__(self, in_features: int, hidden_sizes: Sequence[int] = (128, 64, 32), n_classes: int = 10):
        super().__init__()
        if in_features < 1 or n_classes < 2 or not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError(f"need in_features >= 1, n_classes >= 2 and positive hidden sizes; got "
                             f"in_features={in_features}, hidden_sizes={tuple(hidden_sizes)}, n_classes={n_classes}")
        sizes = [in_features, *hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(sizes[-1], n_classes)

    @property
    def depth(self) -> int:
        return len(self.hidden)

    def features(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Codes after the first ``depth`` hidden layers (all by default): (B, hidden_sizes[depth-1]).

        ``depth=0`` returns the flattened input (B, in_features).
        """
        depth = self.depth if depth is None else depth
        if not 0 <= depth <= self.depth:
            raise ValueError(f"depth must be in [0, {self.depth}], got {depth}")
        z = x.flatten(1)
        if z.shape[1] != self.hidden[0].in_features:
            raise ValueError(f"x has {z.shape[1]} features per example after flattening, "
                             f"expected {self.hidden[0].in_features} (shape (B, C, H, W) or (B, D))")
        for layer in self.hidden[:depth]:
            z = torch.sigmoid(layer(z))
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def gradient_scale_by_layer(model: MLP, x: torch.Tensor, y: torch.Tensor) -> list[tuple[str, float]]:
    """Mean absolute gradient of the cross-entropy w.r.t. each layer's weights, bottom layer first.

    One backward pass on the batch ``(x, y)``: x (B, ...) images or vectors, y (B,) class indices.
    Returns ``[("hidden layer 1", g1), ..., ("output layer", g_out)]``; the model's own ``.grad``
    fields are left as they were. Shows why a deep sigmoid network trained from a random start
    learns slowly at the bottom: each sigmoid multiplies the backward signal by at most 1/4.
    """
    if x.shape[0] != y.shape[0] or y.dim() != 1:
        raise ValueError(f"x (B, ...) and y (B,) must hold the same examples; got {tuple(x.shape)} and {tuple(y.shape)}")
    layers = [*model.hidden, model.head]
    weights = [layer.weight for layer in layers]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, weights)
    names = [f"hidden layer {k + 1}" for k in range(model.depth)] + ["output layer"]
    return [(name, g.abs().mean().item()) for name, g in zip(names, grads)]


def set_trainable(modules: Iterable[nn.Module], trainable: bool) -> None:
    """Freeze (``False``) or unfreeze (``True``) every parameter of ``modules``."""
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(trainable)


def minibatch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` index batches over ``range(n)``, reshuffled every epoch (a batch never spans two)."""
    if n < 1 or batch_size < 1 or steps < 0:
        raise ValueError(f"need n >= 1, batch_size >= 1, steps >= 0; got n={n}, batch_size={batch_size}, steps={steps}")
    batch_size = min(batch_size, n)
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            if done == steps:
                return
            yield order[start:start + batch_size]
            done += 1


def optimize(parameters: Sequence[nn.Parameter], batch_loss: Callable[[torch.Tensor], torch.Tensor], n: int,
             steps: int, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
             progress: bool | None = False, desc: str = "") -> list[float]:
    """Adam on ``batch_loss(indices)`` for ``steps`` mini-batches of ``range(n)``; returns the loss per step.

    Only ``parameters`` are updated: everything else the loss touches stays exactly as it is.
    ``progress=None`` shows a bar only on an interactive terminal.
    """
    parameters = list(parameters)
    if not parameters:
        raise ValueError("optimize() got no parameters to train")
    optimizer = adam(parameters, lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    batches = minibatch_indices(n, batch_size, steps, generator)
    for idx in tqdm(batches, total=steps, desc=desc, disable=None if progress is None else not progress, leave=False):
        loss = batch_loss(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_classifier(model: MLP, data: Split, steps: int, *, batch_size: int = 32, lr: float = 1e-3,
                     seed: int = 0, progress: bool | None = False) -> list[float]:
    """Supervised training (cross-entropy) of *all* parameters of ``model``: Idea 1, and the fine-tuning step."""
    set_trainable([model], True)
    return optimize(list(model.parameters()), lambda idx: F.cross_entropy(model(data.x[idx]), data.y[idx]),
                    len(data), steps, batch_size, lr, seed, progress, desc="fine-tune")


def pretrain_supervised_layer(model: MLP, k: int, data: Split, steps: int, *, batch_size: int = 32,
                              lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Idea 2, one stage: train hidden layer ``k`` plus a softmax head on its codes; layers < k stay frozen.

    The head is temporary, except for the last layer where it is the model's own head.
    """
    _check_layer(model, k)
    n_classes = model.head.out_features
    head = model.head if k == model.depth - 1 else nn.Linear(model.hidden[k].out_features, n_classes)
    set_trainable(model.hidden[:k], False)
    with torch.no_grad():  # frozen layers: their codes are fixed inputs, computed once
        codes = model.features(data.x, depth=k)
    layer = model.hidden[k]
    trainable = [*layer.parameters(), *head.parameters()]
    set_trainable([layer, head], True)
    return optimize(trainable, lambda idx: F.cross_entropy(head(torch.sigmoid(layer(codes[idx]))), data.y[idx]),
                    len(data), steps, batch_size, lr, seed)


class AutoEncoderLayer(nn.Module):
    """The lecture's one-layer auto-encoder around an existing encoder layer.

    encoder z = h(W x), decoder x' = h(W' z) with h = sigmoid; x (B, D_in) -> x' (B, D_in).
    """

    def __init__(self, encoder: nn.Linear):
        super().__init__()
        self.encoder = encoder
        self.decoder = nn.Linear(encoder.out_features, encoder.in_features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def reconstruction_loss(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """||x - x'||^2 summed over features, averaged over the batch; x, x_rec (B, D)."""
    if x.shape != x_rec.shape:
        raise ValueError(f"x {tuple(x.shape)} and its reconstruction {tuple(x_rec.shape)} must have the same (B, D) shape")
    return (x - x_rec).pow(2).sum(dim=1).mean()


def pretrain_autoencoder_layer(model: MLP, k: int, x: torch.Tensor, steps: int, *, batch_size: int = 32,
                               lr: float = 1e-3, seed: int = 0) -> tuple[AutoEncoderLayer, list[float]]:
    """Idea 3, one stage: train hidden layer ``k`` as the encoder of an auto-encoder on the codes of
    the (frozen) layers below it. Needs no labels. Returns the auto-encoder and its loss per step."""
    _check_layer(model, k)
    set_trainable(model.hidden[:k], False)
    with torch.no_grad():
        codes = model.features(x, depth=k)
    autoencoder = AutoEncoderLayer(model.hidden[k])
    set_trainable([autoencoder], True)
    losses = optimize(list(autoencoder.parameters()),
                      lambda idx: reconstruction_loss(codes[idx], autoencoder(codes[idx])),
                      len(codes), steps, batch_size, lr, seed)
    return autoencoder, losses


def _check_layer(model: MLP, k: int) -> None:
    if not isinstance(k, int) or not 0 <= k < model.depth:
        raise ValueError(f"layer index k must be an int in [0, {model.depth - 1}], got {k!r}")


def pretrain_supervised_layerwise(model: MLP, data: Split, steps_per_layer: int, **kwargs) -> list[list[float]]:
    """Idea 2, step 1: :func:`pretrain_supervised_layer` for layers 0, 1, ... in turn (bottom-up)."""
    return [pretrain_supervised_layer(model, k, data, steps_per_layer, **kwargs) for k in range(model.depth)]


def pretrain_autoencoders_layerwise(model: MLP, x: torch.Tensor, steps_per_layer: int,
                                    **kwargs) -> tuple[list[AutoEncoderLayer], list[list[float]]]:
    """Idea 3, step 1: :func:`pretrain_autoencoder_layer` for layers 0, 1, ... in turn (bottom-up)."""
    stages = [pretrain_autoencoder_layer(model, k, x, steps_per_layer, **kwargs) for k in range(model.depth)]
    return [ae for ae, _ in stages], [losses for _, losses in stages]


def reconstruct_through_stack(autoencoders: Sequence[AutoEncoderLayer], x: torch.Tensor) -> torch.Tensor:
    """Encode x (B, D) up through every auto-encoder, then decode back down: (B, D)."""
    with torch.no_grad():
        z = x.flatten(1)
        for ae in autoencoders:
            z = ae.encode(z)
        for ae in reversed(autoencoders):
            z = ae.decode(z)
    return z


@dataclass
class RecipeConfig:
    """Hyper-parameters shared by all recipes (so that only the starting point differs)."""

    hidden_sizes: tuple[int, ...] = (128, 64, 32)
    pretrain_steps_per_layer: int = 200
    finetune_steps: int = 400
    batch_size: int = 32
    lr: float = 1e-2


@dataclass
class RecipeResult:
    recipe: str
    label_fraction: float
    seed: int
    n_labelled: int
    test_error: float
    model: MLP = field(repr=False)
    pretrain_losses: list[list[float]] = field(repr=False, default_factory=list)
    finetune_losses: list[float] = field(repr=False, default_factory=list)
    autoencoders: list[AutoEncoderLayer] = field(repr=False, default_factory=list)


@torch.no_grad()
def error_rate(model: nn.Module, data: Split) -> float:
    """Fraction of ``data`` that ``model`` misclassifies."""
    model.eval()
    return (model(data.x).argmax(dim=1) != data.y).float().mean().item()


def run_recipe(recipe: str, train: Split, test: Split, label_fraction: float = 1.0, seed: int = 0,
               config: RecipeConfig | None = None, progress: bool | None = False) -> RecipeResult:
    """Train one network with ``recipe`` and report its test error.

    Labels are available for a class-stratified ``label_fraction`` of ``train`` only; the
    auto-encoders of Idea 3 also see the images of the rest of ``train`` (without labels),
    which is exactly the situation where unsupervised pre-training is meant to help.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {RECIPES}")
    config = config or RecipeConfig()
    labelled = train.subset(label_fraction, seed=seed)
    seed_everything(seed)  # same initial weights for every recipe at a given seed
    model = MLP(train.x[0].numel(), config.hidden_sizes, n_classes=int(train.y.max()) + 1)
    opts = dict(batch_size=config.batch_size, lr=config.lr, seed=seed)
    pretrain_losses, autoencoders = [], []
    if recipe == "supervised-layerwise":
        pretrain_losses = pretrain_supervised_layerwise(model, labelled, config.pretrain_steps_per_layer, **opts)
    elif recipe == "autoencoder-layerwise":
        autoencoders, pretrain_losses = pretrain_autoencoders_layerwise(model, train.x, config.pretrain_steps_per_layer, **opts)
    model.train()
    finetune_losses = train_classifier(model, labelled, config.finetune_steps, progress=progress, **opts)
    return RecipeResult(recipe, label_fraction, seed, len(labelled), error_rate(model, test), model,
                        pretrain_losses, finetune_losses, autoencoders)


def compare_recipes(train: Split, test: Split, recipes: Sequence[str] = RECIPES,
                    label_fractions: Sequence[float] = (0.01, 0.1, 1.0), seeds: Sequence[int] = (0, 1, 2),
                    config: RecipeConfig | None = None, run=None, progress: bool | None = False) -> list[RecipeResult]:
    """Every recipe x label fraction x seed; logs each test error to ``run`` (a :class:`lec4.tracking.Run`)."""
    config = config or RecipeConfig()
    grid = [(f, r, s) for f in label_fractions for r in recipes for s in seeds]
    results = []
    for i, (fraction, recipe, seed) in enumerate(tqdm(grid, desc="recipes", disable=None if progress is None else not progress)):
        result = run_recipe(recipe, train, test, fraction, seed, config)
        results.append(result)
        if run is not None:
            run.log({f"test_error/{recipe}/{fraction:g}": result.test_error}, step=i)
    return results


def summarize(results: Sequence[RecipeResult]) -> dict[tuple[str, float], dict[str, float]]:
    """(recipe, label_fraction) -> mean and sample std of the test error over seeds, n labelled, n seeds."""
    groups: dict[tuple[str, float], list[RecipeResult]] = {}
    for r in results:
        groups.setdefault((r.recipe, r.label_fraction), []).append(r)
    summary = {}
    for key, rs in groups.items():
        errors = torch.tensor([r.test_error for r in rs], dtype=torch.float64)
        summary[key] = {"mean": errors.mean().item(),
                        "std": errors.std().item() if len(rs) > 1 else math.nan,
                        "n_labelled": rs[0].n_labelled, "n_seeds": len(rs)}
    return summary


def summary_markdown(summary: dict[tuple[str, float], dict[str, float]]) -> str:
    """A Markdown table: one row per recipe, one column per label fraction, test error % as mean ± std."""
    recipes = [r for r in RECIPES if any(k[0] == r for k in summary)]
    fractions = sorted({f for _, f in summary})
    n_lab = {f: next(v["n_labelled"] for (_, g), v in summary.items() if g == f) for f in fractions}
    header = "| recipe | " + " | ".join(f"{f:.0%} labels ({n_lab[f]})" for f in fractions) + " |"
    lines = [header, "|---" * (len(fractions) + 1) + "|"]
    for r in recipes:
        cells = [f"{100 * summary[r, f]['mean']:.1f} ± {100 * summary[r, f]['std']:.1f}" for f in fractions]
        lines.append(f"| {RECIPE_TITLES[r]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def config_dict(config: RecipeConfig) -> dict:
    """The config as a plain dict (for experiment tracking)."""
    return asdict(config)
