"""The promotion gate cannot be fooled: feed, feature version, windows, bootstrap, cost."""

import datetime as dt

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraud_assets.lib.decision import DecisionRule
from fraud_assets.lib.promotion import (
    GateConfig,
    Scores,
    _sorted,
    choose,
    decide,
    paired_bootstrap_ap,
    weighted_ap,
)

SERVING = ("arrival", "arrival-v1")
RULE = DecisionRule(5.0, 5.0)
WINDOW = [(dt.datetime(2020, 4, 1), dt.datetime(2020, 6, 20))]
OLD_FIT = [(dt.datetime(2019, 1, 1), dt.datetime(2020, 3, 31))]
CONFIG = GateConfig(bootstrap_samples=300)


def _labelled(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.02).astype(int)
    return y, rng.uniform(1, 1000, n), rng


def _scores(proba, semantics="arrival", version="arrival-v1", fit=OLD_FIT, v="1") -> Scores:
    return Scores(semantics, version, proba, RULE, fit, v)


def _scorer(y: np.ndarray, rng, separation: float) -> np.ndarray:
    """Probabilities that put a share ``separation`` of frauds high, the rest among the
    legitimate rows' low scores."""
    low = 0.004 * rng.random(len(y))
    caught = (y == 1) & (rng.random(len(y)) < separation)
    return np.where(caught, 0.3 + 0.7 * rng.random(len(y)), low)


def _models(y, rng, good: float, bad: float) -> tuple[np.ndarray, np.ndarray]:
    """Two scorers of the same rows: separation ``good`` and ``bad``."""
    return _scorer(y, rng, good), _scorer(y, rng, bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_ap_with_unit_weights_is_scikit_learns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.05).astype(int)
    proba = np.round(rng.random(3000) * 0.5 + 0.4 * y, 2)  # ties on purpose
    order, ys, last = _sorted(y, proba)
    assert weighted_ap(ys, last, np.ones(len(y))) == pytest.approx(
        average_precision_score(y, proba)
    )
    w = rng.integers(0, 3, len(y)).astype(float)
    assert weighted_ap(ys, last, w[order]) == pytest.approx(
        average_precision_score(y, proba, sample_weight=w)
    )


def test_a_clearly_better_candidate_is_promoted() -> None:
    y, amount, rng = _labelled()
    good, bad = _models(y, rng, good=0.9, bad=0.3)
    d = decide(y, amount, WINDOW, _scores(good), _scores(bad), SERVING, CONFIG)
    assert d.passed, d.reason
    assert d.ci_low > 0 and d.candidate_ap > d.champion_ap
    assert "interval" in d.reason


def test_a_worse_challenger_is_not_promoted() -> None:
    y, amount, rng = _labelled()
    good, bad = _models(y, rng, good=0.9, bad=0.3)
    d = decide(y, amount, WINDOW, _scores(bad), _scores(good), SERVING, CONFIG)
    assert not d.passed and d.ci_high < 0


def test_an_equal_model_is_not_promoted_by_chance() -> None:
    y, amount, rng = _labelled()
    same, _ = _models(y, rng, good=0.5, bad=0.5)
    d = decide(y, amount, WINDOW, _scores(same), _scores(same.copy()), SERVING, CONFIG)
    assert not d.passed and d.ap_diff == 0.0


def test_a_candidate_for_another_feature_version_or_feed_is_not_promoted() -> None:
    y, amount, rng = _labelled()
    good, bad = _models(y, rng, good=0.9, bad=0.3)
    for semantics, version in (("arrival", "arrival-v0"), ("payload", "event-v2")):
        d = decide(
            y, amount, WINDOW, _scores(good, semantics, version), _scores(bad), SERVING, CONFIG
        )
        assert not d.passed and "this platform serves" in d.reason


def test_a_champion_trained_on_the_comparison_window_blocks_the_comparison() -> None:
    y, amount, rng = _labelled()
    good, bad = _models(y, rng, good=0.9, bad=0.3)
    overlapping = [
        (dt.datetime(2019, 1, 1), dt.datetime(2020, 3, 1)),
        (dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 2)),
    ]
    live = [*WINDOW, (dt.datetime(2026, 11, 1, 12), dt.datetime(2026, 11, 3))]
    d = decide(y, amount, live, _scores(good), _scores(bad, fit=overlapping), SERVING, CONFIG)
    assert not d.passed and "overlaps" in d.reason and "2026-11-01" in d.reason
    unknown = Scores("arrival", "arrival-v1", bad, RULE, None, "2")
    assert not decide(y, amount, WINDOW, _scores(good), unknown, SERVING, CONFIG).passed


def test_more_ap_at_a_higher_cost_is_not_enough() -> None:
    y, _, rng = _labelled()
    amount = rng.uniform(1, 60, len(y))  # small purchases: reviewing them all costs more
    good, bad = _models(y, rng, good=0.9, bad=0.3)
    careless = Scores("arrival", "arrival-v1", good, DecisionRule(5.0, 0.0))  # flags everything
    d = decide(y, amount, WINDOW, careless, _scores(bad), SERVING, CONFIG)
    assert not d.passed and d.ci_low > 0 and "worse" in d.reason


def test_first_model_must_clear_the_bars() -> None:
    y, amount, rng = _labelled()
    good, _ = _models(y, rng, good=0.9, bad=0.3)
    assert decide(y, amount, WINDOW, _scores(good), None, SERVING, CONFIG).passed
    weak = rng.random(len(y))
    assert not decide(y, amount, WINDOW, _scores(weak), None, SERVING, CONFIG).passed


def test_a_champion_for_a_feed_no_longer_served_is_replaced_through_the_first_model_bars() -> None:
    y, amount, rng = _labelled()
    good, _ = _models(y, rng, good=0.9, bad=0.3)
    stale = Scores("payload", "event-v2", None, RULE, OLD_FIT, "3")
    d = decide(y, amount, WINDOW, _scores(good), stale, SERVING, CONFIG)
    assert d.passed and "no longer serves" in d.reason


def test_bootstrap_interval_narrows_with_more_rows() -> None:
    widths = []
    for n in (2000, 20000):
        y, _, rng = _labelled(n, seed=5)
        a, b = _models(y, rng, good=0.5, bad=0.3)
        _, low, high = paired_bootstrap_ap(y, a, b, 200, 0.95, seed=0)
        widths.append(high - low)
    assert widths[1] < widths[0]


def test_choose_prefers_higher_ap_and_names_both() -> None:
    best, why = choose({"rf_model": ("4", 0.95), "hgb_model": ("5", 0.97)})
    assert best == "hgb_model"
    assert "hgb_model version 5" in why and "rf_model version 4 (AP 0.9500)" in why
