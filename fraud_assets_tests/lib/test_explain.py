"""The explanation adds up: TreeSHAP by feature family sums to raw score minus baseline."""

import numpy as np
import polars as pl
import pytest

from fraud_assets.lib.explain import Explainer
from fraud_assets.lib.features import FAMILIES, for_semantics
from fraud_assets.lib.model import TrainParams, default_params, predict_raw, train


@pytest.fixture(scope="module")
def fitted(dataset):
    fs = for_semantics("arrival")
    rf = train(dataset.canonical, fs, TrainParams(n_estimators=20, n_jobs=2))
    hgb = train(dataset.canonical, fs, default_params("hgb", max_iter=30))
    return fs, {"rf": rf, "hgb": hgb}


@pytest.mark.parametrize("kind", ["rf", "hgb"])
def test_contributions_sum_to_the_raw_score_minus_the_baseline(fitted, kind: str) -> None:
    fs, results = fitted
    result = results[kind]
    explainer = Explainer(result.pipeline, fs)
    rows = result.validation_features.sort("fraud_probability", descending=True).head(5)
    pipe = result.pipeline
    # the forest explains its probability, boosting its log-odds
    raw = predict_raw(pipe, fs, rows) if kind == "rf" else pipe.decision_function(fs.matrix(rows))
    for i in range(rows.height):
        why = explainer.explain(rows[i])
        assert why.baseline + why.total == pytest.approx(raw[i], abs=1e-6)
        assert why.raw_score == pytest.approx(raw[i], abs=1e-6)


def test_the_explanation_shows_families_never_feature_values(fitted) -> None:
    fs, results = fitted
    result = results["rf"]
    why = Explainer(result.pipeline, fs).explain(result.validation_features.head(1))
    assert why.families.columns == ["family", "meaning", "contribution"]
    assert set(why.families["family"]) <= set(FAMILIES)
    assert why.families["family"].is_unique().all()
    contrib = why.families["contribution"].to_numpy()
    assert np.all(np.diff(np.abs(contrib)) <= 1e-12)  # largest effect first


def test_a_high_amount_fraud_is_explained_by_its_amount_and_habits(fitted) -> None:
    fs, results = fitted
    result = results["rf"]
    frauds = result.validation_features.filter(
        (pl.col("is_fraud") == 1) & (pl.col("amt") > 300)
    ).sort("fraud_probability", descending=True)
    why = Explainer(result.pipeline, fs).explain(frauds.head(1))
    top = why.families.head(2)["family"].to_list()
    assert {"amount", "card habits", "category"} & set(top)
    assert why.total > 0
