"""Calibrated probabilities: the training prior divided out, re-fitted on a known shift."""

import numpy as np
import pytest

from fraud_assets.lib.calibration import (
    Calibration,
    brier_score,
    expected_calibration_error,
    refit_odds,
    reliability,
)


def _population(n: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities and labels drawn from them."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(np.log(rate / (1 - rate)), 1.5, n)
    p = 1 / (1 + np.exp(-logit))
    return p, (rng.random(n) < p).astype(int)


def test_prior_correction_undoes_a_known_sampling_of_legitimate_rows() -> None:
    p, y = _population(400_000, 0.01, seed=0)
    # a model fitted on all frauds and 10 % of legit rows learns odds 10x too high
    inflated = 10 * p / (10 * p + (1 - p))
    cal = Calibration.for_training(y, legit_sample_rate=0.1, class_weight=None)
    assert cal.odds_factor == pytest.approx(0.1)
    assert np.allclose(cal.apply(inflated), p)
    assert expected_calibration_error(y, cal.apply(inflated)) < 0.002
    assert expected_calibration_error(y, inflated) > 0.02


def test_balanced_class_weights_are_divided_out_too() -> None:
    y = np.array([1] * 10 + [0] * 990)
    cal = Calibration.for_training(y, legit_sample_rate=1.0, class_weight="balanced")
    assert cal.odds_factor == pytest.approx(10 / 990)


def test_refit_recovers_a_prior_shift_from_labels() -> None:
    p, _ = _population(200_000, 0.004, seed=1)
    shifted = 4 * p / (4 * p + (1 - p))  # the live fraud rate is 4x the training one
    y = (np.random.default_rng(2).random(len(p)) < shifted).astype(int)
    cal = refit_odds(p, y, Calibration(1.0))
    assert cal.odds_factor == pytest.approx(4.0, rel=0.1)
    assert expected_calibration_error(y, cal.apply(p)) < expected_calibration_error(y, p)


def test_refit_needs_both_labels() -> None:
    with pytest.raises(ValueError, match="both"):
        refit_odds(np.array([0.1, 0.2]), np.array([0, 0]), Calibration())


def test_calibration_keeps_the_ranking_and_the_ends() -> None:
    raw = np.array([0.0, 0.001, 0.3, 0.3, 0.9, 1.0])
    out = Calibration(0.2).apply(raw)
    assert out[0] == 0.0 and out[-1] == 1.0
    assert np.all(np.diff(out) >= 0) and out[2] == out[3]


def test_scores_of_a_perfect_and_a_useless_forecast() -> None:
    y = np.array([0, 0, 1, 1])
    assert brier_score(y, y.astype(float)) == 0.0
    assert expected_calibration_error(y, y.astype(float)) == 0.0
    assert expected_calibration_error(y, np.full(4, 0.9)) == pytest.approx(0.4)
    bins = reliability(y, np.array([0.1, 0.2, 0.7, 0.8]), bins=2)
    assert bins == [(pytest.approx(0.15), 0.0, 2), (pytest.approx(0.75), 1.0, 2)]
