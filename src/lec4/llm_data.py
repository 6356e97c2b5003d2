"""Training data of large language models: the GPT-3 mixture and the Pile, with their arithmetic.

Sources (figures copied from the papers, nothing else):

- Brown et al. (2020), *Language Models are Few-Shot Learners*, Table 2.2: the GPT-3 training
  mixture. "Weight in training mix" is, in the paper's words, the fraction of examples during
  training drawn from a dataset; training runs for 300B tokens.
- Gao et al. (2020), *The Pile: An 800GB Dataset of Diverse Text for Language Modeling*,
  Table 1: the 22 components (raw size, weight, epochs, effective size). The paper groups
  them into five categories only in its Figure 1 (a treemap, by colour); :data:`PILE_CATEGORY`
  is our reading of that figure, not a table of the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

GPT3_TRAINING_TOKENS_B = 300.0  # billions of tokens GPT-3 was trained on


@dataclass(frozen=True)
class MixtureSource:
    """One row of GPT-3's Table 2.2, as printed: tokens in billions, weight as a fraction."""

    name: str
    tokens_b: float
    weight: float
    epochs_reported: float


GPT3_MIXTURE = (
    MixtureSource("Common Crawl (filtered)", 410, 0.60, 0.44),
    MixtureSource("WebText2", 19, 0.22, 2.9),
    MixtureSource("Books1", 12, 0.08, 1.9),
    MixtureSource("Books2", 55, 0.08, 0.43),
    MixtureSource("Wikipedia", 3, 0.03, 3.4),
)


def epochs_elapsed(tokens_b: float, weight: float, training_tokens_b: float = GPT3_TRAINING_TOKENS_B) -> float:
    """Passes over a source of ``tokens_b`` billion tokens that supplies ``weight`` of ``training_tokens_b``.

    epochs = weight * training tokens / source tokens.
    """
    if tokens_b <= 0 or training_tokens_b <= 0 or not 0 <= weight <= 1:
        raise ValueError(f"need tokens_b > 0, training_tokens_b > 0 and weight in [0, 1]; got "
                         f"{tokens_b}, {training_tokens_b}, {weight}")
    return weight * training_tokens_b / tokens_b


def implied_weight(tokens_b: float, epochs: float, training_tokens_b: float = GPT3_TRAINING_TOKENS_B) -> float:
    """The inverse of :func:`epochs_elapsed`: the weight a source must have to be seen ``epochs`` times."""
    if tokens_b <= 0 or training_tokens_b <= 0 or epochs < 0:
        raise ValueError(f"need tokens_b > 0, training_tokens_b > 0, epochs >= 0; got {tokens_b}, {training_tokens_b}, {epochs}")
    return epochs * tokens_b / training_tokens_b


def _half_unit(printed: float) -> float:
    """Half a unit of the last printed digit: 0.44 -> 0.005, 2.9 -> 0.05, 410 -> 0.5."""
    if float(printed).is_integer():
        return 0.5
    decimals = -Decimal(repr(float(printed))).as_tuple().exponent
    return 0.5 * 10.0 ** -decimals


def epochs_interval(source: MixtureSource, training_tokens_b: float = GPT3_TRAINING_TOKENS_B) -> tuple[float, float]:
    """Every epoch count that the *printed* tokens (to the billion) and weight (to the percent) allow."""
    t_half = _half_unit(source.tokens_b)
    w_half = 0.005  # weights are printed as whole percents
    low = epochs_elapsed(source.tokens_b + t_half, source.weight - w_half, training_tokens_b)
    high = epochs_elapsed(source.tokens_b - t_half, source.weight + w_half, training_tokens_b)
    return low, high


def gpt3_epochs_table(training_tokens_b: float = GPT3_TRAINING_TOKENS_B) -> list[dict]:
    """Table 2.2 with the epochs recomputed, the interval rounding allows, and whether the printed value fits.

    ``explained_by_rounding`` is True when the printed epochs (± half its last digit) overlap the
    interval allowed by the printed tokens and weight.
    """
    rows = []
    for s in GPT3_MIXTURE:
        low, high = epochs_interval(s, training_tokens_b)
        e_half = _half_unit(s.epochs_reported)
        rows.append({
            "source": s.name, "tokens_b": s.tokens_b, "weight": s.weight,
            "epochs_reported": s.epochs_reported,
            "epochs_recomputed": epochs_elapsed(s.tokens_b, s.weight, training_tokens_b),
            "epochs_low": low, "epochs_high": high,
            "weight_implied": implied_weight(s.tokens_b, s.epochs_reported, training_tokens_b),
            "explained_by_rounding": s.epochs_reported + e_half >= low and s.epochs_reported - e_half <= high,
        })
    return rows


@dataclass(frozen=True)
class PileComponent:
    """One row of the Pile's Table 1: sizes in GiB, weight as a fraction of the Pile's bytes."""

    name: str
    raw_gib: float
    weight: float
    epochs: float
    effective_gib: float


PILE_COMPONENTS = (
    PileComponent("Pile-CC", 227.12, 0.1811, 1.0, 227.12),
    PileComponent("PubMed Central", 90.27, 0.1440, 2.0, 180.55),
    PileComponent("Books3", 100.96, 0.1207, 1.5, 151.44),
    PileComponent("OpenWebText2", 62.77, 0.1001, 2.0, 125.54),
    PileComponent("ArXiv", 56.21, 0.0896, 2.0, 112.42),
    PileComponent("Github", 95.16, 0.0759, 1.0, 95.16),
    PileComponent("FreeLaw", 51.15, 0.0612, 1.5, 76.73),
    PileComponent("Stack Exchange", 32.20, 0.0513, 2.0, 64.39),
    PileComponent("USPTO Backgrounds", 22.90, 0.0365, 2.0, 45.81),
    PileComponent("PubMed Abstracts", 19.26, 0.0307, 2.0, 38.53),
    PileComponent("Gutenberg (PG-19)", 10.88, 0.0217, 2.5, 27.19),
    PileComponent("OpenSubtitles", 12.98, 0.0155, 1.5, 19.47),
    PileComponent("Wikipedia (en)", 6.38, 0.0153, 3.0, 19.13),
    PileComponent("DM Mathematics", 7.75, 0.0124, 2.0, 15.49),
    PileComponent("Ubuntu IRC", 5.52, 0.0088, 2.0, 11.03),
    PileComponent("BookCorpus2", 6.30, 0.0075, 1.5, 9.45),
    PileComponent("EuroParl", 4.59, 0.0073, 2.0, 9.17),
    PileComponent("HackerNews", 3.90, 0.0062, 2.0, 7.80),
    PileComponent("YoutubeSubtitles", 3.73, 0.0060, 2.0, 7.47),
    PileComponent("PhilPapers", 2.38, 0.0038, 2.0, 4.76),
    PileComponent("NIH ExPorter", 1.89, 0.0030, 2.0, 3.79),
    PileComponent("Enron Emails", 0.88, 0.0014, 2.0, 1.76),
)
PILE_TOTAL_RAW_GIB = 825.18        # Table 1, last row
PILE_TOTAL_EFFECTIVE_GIB = 1254.20  # Table 1, last row

# Our reading of the colours of Figure 1 ("Composition of the Pile by Category") in Gao et al. (2020).
PILE_CATEGORY = {
    "Pile-CC": "Internet", "OpenWebText2": "Internet", "Stack Exchange": "Internet", "Wikipedia (en)": "Internet",
    "PubMed Central": "Academic", "ArXiv": "Academic", "FreeLaw": "Academic", "USPTO Backgrounds": "Academic",
    "PubMed Abstracts": "Academic", "PhilPapers": "Academic", "NIH ExPorter": "Academic",
    "Books3": "Prose", "Gutenberg (PG-19)": "Prose", "BookCorpus2": "Prose",
    "OpenSubtitles": "Dialogue", "Ubuntu IRC": "Dialogue", "EuroParl": "Dialogue", "HackerNews": "Dialogue",
    "YoutubeSubtitles": "Dialogue",
    "Github": "Misc", "DM Mathematics": "Misc", "Enron Emails": "Misc",
}
PILE_CATEGORIES = ("Academic", "Internet", "Prose", "Dialogue", "Misc")


def pile_by_category(size: str = "effective") -> dict[str, float]:
    """GiB of the Pile per category (``size`` = ``"effective"``, after up-sampling, or ``"raw"``)."""
    if size not in ("effective", "raw"):
        raise ValueError(f"size must be 'effective' or 'raw', got {size!r}")
    totals = dict.fromkeys(PILE_CATEGORIES, 0.0)
    for c in PILE_COMPONENTS:
        totals[PILE_CATEGORY[c.name]] += c.effective_gib if size == "effective" else c.raw_gib
    return totals


def gib_to_tib(gib: float) -> float:
    return gib / 1024.0
