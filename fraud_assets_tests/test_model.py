"""Training: time-based split, cost-based threshold, metrics and the champion gate."""

import numpy as np
import polars as pl
import pytest

from fraud_assets.defs.training.assets import (
    HgbModelConfig,
    RfModelConfig,
    choose_candidate,
    gate,
)
from fraud_assets.lib.model import (
    TrainParams,
    cost_threshold,
    decision_cost,
    default_params,
    sample_legit,
    time_split,
    train,
)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("review_cost", [1.0, 5.0, 50.0])
def test_cost_threshold_is_the_cheapest_cut(seed: int, review_cost: float) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.1).astype(int)
    proba = np.clip(rng.normal(0.25 + 0.5 * y, 0.2), 0, 1).round(2)  # ties on purpose
    amt = rng.uniform(1, 500, 400)
    threshold, cost = cost_threshold(y, proba, amt, review_cost)
    brute = min(decision_cost(y, proba, amt, t, review_cost) for t in [*np.unique(proba), 1.01])
    assert cost == pytest.approx(brute)
    assert decision_cost(y, proba, amt, threshold, review_cost) == pytest.approx(cost)


def test_time_split_validates_on_strictly_later_rows(dataset) -> None:
    train_part, valid_part = time_split(dataset.canonical, 0.2)
    assert train_part["event_time"].max() < valid_part["event_time"].min()
    assert valid_part.height == pytest.approx(0.2 * dataset.canonical.height, rel=0.02)


def test_trained_forest_finds_fraud_on_generated_data(dataset) -> None:
    result = train(dataset.canonical, TrainParams(n_estimators=30, n_jobs=2))
    v = result.validation
    assert v.ap > 0.6 and v.roc_auc > 0.95
    assert 0 < result.threshold <= 1
    assert v.cost <= v.cost_at_half  # the chosen threshold never costs more than 0.5
    assert result.validation_start == result.validation_features["event_time"].min()
    assert result.importances and pytest.approx(1.0) == sum(result.importances.values())


def test_training_refuses_a_window_without_fraud(dataset) -> None:
    no_fraud = dataset.canonical.with_columns(is_fraud=pl.lit(0, dtype=pl.Int8))
    with pytest.raises(ValueError, match="at least one fraud"):
        train(no_fraud, TrainParams(n_estimators=5))


@pytest.mark.parametrize(
    ("ap", "auc", "champion_ap", "passes"),
    [
        (0.80, 0.95, None, True),  # a first model above the bars
        (0.20, 0.95, None, False),  # a first model below min AP
        (0.80, 0.70, None, False),  # a first model below min ROC-AUC
        (0.85, 0.99, 0.80, True),  # better than the champion
        (0.795, 0.99, 0.80, True),  # within tolerance
        (0.70, 0.99, 0.80, False),  # worse than the champion
    ],
)
def test_gate(ap: float, auc: float, champion_ap: float | None, passes: bool) -> None:
    ok, why = gate(ap, auc, champion_ap, RfModelConfig())
    assert ok is passes
    assert f"{ap:.4f}" in why


def test_dagster_configs_take_their_defaults_from_train_params() -> None:
    assert RfModelConfig().params() == default_params("rf") == TrainParams()
    assert HgbModelConfig().params() == default_params("hgb")
    assert RfModelConfig(n_estimators=7).params().n_estimators == 7


def test_unknown_model_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        default_params("xgb")


def test_legit_sampling_keeps_every_fraud_and_the_asked_share_of_legit_rows(dataset) -> None:
    data = dataset.canonical
    sampled = sample_legit(data, 0.2, seed=3)
    assert sampled["is_fraud"].sum() == data["is_fraud"].sum()
    legit, kept = (data["is_fraud"] == 0).sum(), (sampled["is_fraud"] == 0).sum()
    assert kept == pytest.approx(0.2 * legit, rel=0.05)
    assert sampled.equals(sample_legit(data, 0.2, seed=3))  # seeded
    assert sample_legit(data, 1.0, seed=3) is data


def test_hgb_challenger_trains_on_the_same_features_and_split(dataset) -> None:
    rf = train(dataset.canonical, default_params("rf", n_estimators=20, n_jobs=2))
    hgb = train(dataset.canonical, default_params("hgb", max_iter=40))
    assert rf.validation_start == hgb.validation_start
    assert rf.validation.rows == hgb.validation.rows
    assert hgb.validation.ap > 0.6 and hgb.validation.cost <= hgb.validation.cost_at_half


def test_choose_candidate_prefers_higher_validation_ap_and_names_both() -> None:
    best, why = choose_candidate({"rf_model": ("4", 0.95), "hgb_model": ("5", 0.97)})
    assert best == "hgb_model"
    assert "hgb_model version 5" in why and "rf_model version 4 (AP 0.9500)" in why
    assert choose_candidate({"rf_model": ("4", 0.95)})[0] == "rf_model"


def test_trained_forest_scores_the_same_rows_identically(dataset) -> None:
    """Parallel tree-vote sums are order-dependent; the served forest predicts on one thread."""
    from fraud_assets.lib.model import predict_proba

    result = train(dataset.canonical, TrainParams(n_estimators=30, n_jobs=2))
    assert result.pipeline.named_steps["model"].n_jobs == 1
    valid = result.validation_features
    first = predict_proba(result.pipeline, valid)
    assert all(np.array_equal(first, predict_proba(result.pipeline, valid)) for _ in range(5))
