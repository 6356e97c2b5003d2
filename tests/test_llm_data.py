"""GPT-3 mixture arithmetic (Brown et al. 2020, Table 2.2) and the Pile's Table 1 (Gao et al. 2020)."""
import math

import pytest

from lec4.llm_data import (GPT3_MIXTURE, PILE_CATEGORIES, PILE_CATEGORY, PILE_COMPONENTS, PILE_TOTAL_EFFECTIVE_GIB,
                           PILE_TOTAL_RAW_GIB, epochs_elapsed, epochs_interval, gpt3_epochs_table, implied_weight,
                           pile_by_category)


def test_epochs_is_weight_times_training_tokens_over_source_tokens():
    # Common Crawl: 60% of 300B tokens drawn from a 410B-token source.
    assert epochs_elapsed(410, 0.60, 300) == pytest.approx(180 / 410)
    assert epochs_elapsed(3, 0.03, 300) == pytest.approx(3.0)
    assert implied_weight(19, 2.9, 300) == pytest.approx(2.9 * 19 / 300)
    for s in GPT3_MIXTURE:  # implied_weight inverts epochs_elapsed
        assert implied_weight(s.tokens_b, epochs_elapsed(s.tokens_b, s.weight)) == pytest.approx(s.weight)


def test_recomputed_epochs_match_table_where_rounding_allows():
    rows = {r["source"]: r for r in gpt3_epochs_table()}
    cc = rows["Common Crawl (filtered)"]  # 180/410 = 0.439: agrees to the printed two decimals
    assert round(cc["epochs_recomputed"], 2) == cc["epochs_reported"] and cc["explained_by_rounding"]
    for name, digits in (("Books2", 2), ("Books1", 1), ("Wikipedia", 1)):  # differ, within what rounding allows
        assert rows[name]["explained_by_rounding"], name
        assert round(rows[name]["epochs_recomputed"], digits) != rows[name]["epochs_reported"], name
    # WebText2: 22% of 300B over 19B is ~3.5 epochs, not 2.9, whatever the rounding.
    assert rows["WebText2"]["epochs_low"] > 3.3 and not rows["WebText2"]["explained_by_rounding"]
    assert sum(s.weight for s in GPT3_MIXTURE) == pytest.approx(1.01)  # printed weights sum to 101%


def test_epochs_interval_contains_the_point_estimate():
    for s in GPT3_MIXTURE:
        low, high = epochs_interval(s)
        assert low < epochs_elapsed(s.tokens_b, s.weight) < high


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="tokens_b"):
        epochs_elapsed(0, 0.5)
    with pytest.raises(ValueError, match="weight"):
        epochs_elapsed(10, 1.5)
    with pytest.raises(ValueError, match="effective"):
        pile_by_category("tokens")


def test_pile_table_is_consistent_with_its_own_totals():
    assert len(PILE_COMPONENTS) == 22
    assert sum(c.raw_gib for c in PILE_COMPONENTS) == pytest.approx(PILE_TOTAL_RAW_GIB, abs=0.02)
    assert sum(c.effective_gib for c in PILE_COMPONENTS) == pytest.approx(PILE_TOTAL_EFFECTIVE_GIB, abs=0.02)
    assert sum(c.weight for c in PILE_COMPONENTS) == pytest.approx(1.0, abs=0.001)
    for c in PILE_COMPONENTS:
        assert c.raw_gib * c.epochs == pytest.approx(c.effective_gib, abs=0.011), c.name  # effective = raw x epochs
        assert c.effective_gib / PILE_TOTAL_EFFECTIVE_GIB == pytest.approx(c.weight, abs=1e-4), c.name


def test_every_component_has_one_of_the_five_categories():
    assert set(PILE_CATEGORY) == {c.name for c in PILE_COMPONENTS}
    assert set(PILE_CATEGORY.values()) == set(PILE_CATEGORIES)
    by_cat = pile_by_category()
    assert math.isclose(sum(by_cat.values()), PILE_TOTAL_EFFECTIVE_GIB, abs_tol=0.02)
    assert math.isclose(sum(pile_by_category("raw").values()), PILE_TOTAL_RAW_GIB, abs_tol=0.02)
