"""Training: time split, features for the feed's semantics, calibration, decision, metrics."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from fraud_assets.defs.training.assets import HgbModelConfig, RfModelConfig
from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.model import (
    TrainParams,
    build_pipeline,
    default_params,
    predict_raw,
    sample_legit,
    split_features,
    time_cut,
    train,
)

ARRIVAL, EVENT = for_semantics("arrival"), for_semantics("payload")
SMALL_RF = {"n_estimators": 30, "n_jobs": 2}


def test_time_cut_leaves_the_asked_share_for_validation(dataset) -> None:
    cut = time_cut(dataset.canonical, 0.2)
    later = dataset.canonical.filter(pl.col("event_time") >= cut).height
    assert later == pytest.approx(0.2 * dataset.canonical.height, rel=0.02)


@pytest.mark.parametrize("fs", [ARRIVAL, EVENT], ids=lambda fs: fs.version)
def test_validation_rows_are_strictly_later_and_computed_as_served(dataset, fs) -> None:
    params = TrainParams()
    fit, valid = split_features(dataset.canonical, fs, params)
    assert fit["event_time"].max() < valid["event_time"].min()
    cut = time_cut(dataset.canonical, params.validation_fraction)
    history = dataset.canonical.filter(pl.col("event_time") < cut)
    later = dataset.canonical.filter(pl.col("event_time") >= cut)
    served = fs.serving_features(later.sort("event_time", "trans_num"), fs.build_state(history))
    assert (
        valid.select(fs.features).sort(pl.all()).equals(served.select(fs.features).sort(pl.all()))
    )


def test_arrival_fit_rows_skip_the_warm_up_after_the_data_starts(dataset) -> None:
    params = TrainParams(profile_warmup_days=20)
    fit, _ = split_features(dataset.canonical, ARRIVAL, params)
    start = dataset.canonical["event_time"].min()
    assert fit["event_time"].min() >= start + dt.timedelta(days=20)


@pytest.mark.parametrize("fs", [ARRIVAL, EVENT], ids=lambda fs: fs.version)
def test_trained_forest_finds_fraud_on_generated_data(dataset, fs) -> None:
    result = train(dataset.canonical, fs, TrainParams(**SMALL_RF))
    v = result.validation
    assert v.ap > 0.5 and v.roc_auc > 0.9
    assert result.feature_set is fs
    assert result.validation_start == result.validation_features["event_time"].min()
    assert result.fit_end < result.validation_start
    assert result.importances and pytest.approx(1.0) == sum(result.importances.values())
    assert result.calibration.odds_factor > 0


def test_served_forest_predicts_exactly_as_scikit_learn() -> None:
    """The live path's single-thread forest predict equals predict_proba bit for bit, on a
    batch with missing values (imputed) and on one row."""
    rng = np.random.default_rng(7)
    names = list(ARRIVAL.features)
    x = rng.normal(size=(2000, len(names)))
    y = (x[:, 0] + x[:, 1] + rng.normal(scale=0.5, size=2000) > 1.5).astype(int)
    x[rng.random(x.shape) < 0.05] = np.nan  # the imputer is part of what is compared
    pipeline = build_pipeline(TrainParams(**SMALL_RF))
    pipeline.fit(x, y)
    pipeline.set_params(model__n_jobs=1)  # as served
    features = pl.DataFrame(x[:500], schema=names, orient="row")
    expected = pipeline.predict_proba(ARRIVAL.matrix(features))[:, 1]
    assert np.array_equal(predict_raw(pipeline, ARRIVAL, features), expected)
    assert np.array_equal(predict_raw(pipeline, ARRIVAL, features.head(1)), expected[:1])
    assert np.unique(expected).size > 10  # real scores, not a constant


def test_calibration_divides_out_the_sampling_then_refits_on_the_latest_rows(dataset) -> None:
    prior_only = train(dataset.canonical, ARRIVAL, TrainParams(**SMALL_RF))
    # sampling half the legitimate rows doubles the odds: the prior correction halves them
    assert prior_only.calibration.odds_factor == pytest.approx(0.5)
    refit = train(dataset.canonical, ARRIVAL, TrainParams(**SMALL_RF, calibrate_on_validation=True))
    assert refit.calibration.odds_factor != prior_only.calibration.odds_factor
    assert refit.validation.ece <= prior_only.validation.ece + 1e-9
    assert refit.validation.ap == pytest.approx(prior_only.validation.ap)  # ranking kept


def test_training_refuses_a_window_without_fraud(dataset) -> None:
    no_fraud = dataset.canonical.with_columns(is_fraud=pl.lit(0, dtype=pl.Int8))
    with pytest.raises(ValueError, match="at least one fraud"):
        train(no_fraud, ARRIVAL, TrainParams(n_estimators=5))


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
    rf = train(dataset.canonical, ARRIVAL, default_params("rf", n_estimators=20, n_jobs=2))
    hgb = train(dataset.canonical, ARRIVAL, default_params("hgb", max_iter=40))
    assert rf.validation_start == hgb.validation_start
    assert rf.validation.rows == hgb.validation.rows
    assert hgb.validation.ap > 0.5


def test_trained_forest_scores_the_same_rows_identically(dataset) -> None:
    """Parallel tree-vote sums are order-dependent; the served forest predicts on one thread."""
    result = train(dataset.canonical, ARRIVAL, TrainParams(**SMALL_RF))
    assert result.pipeline.named_steps["model"].n_jobs == 1
    valid = result.validation_features
    first = predict_raw(result.pipeline, ARRIVAL, valid)
    assert all(
        np.array_equal(first, predict_raw(result.pipeline, ARRIVAL, valid)) for _ in range(5)
    )
