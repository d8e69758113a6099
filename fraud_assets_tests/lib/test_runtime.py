"""The fast runtime (lib/runtime.py): scikit-learn's probabilities and decisions, or refused."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from fraud_assets.lib.evaluation import serving_model
from fraud_assets.lib.features import FeatureSet, for_semantics
from fraud_assets.lib.model import TrainResult, build_pipeline, default_params, predict_raw, train
from fraud_assets.lib.runtime import (
    FastPredictor,
    RuntimeMismatch,
    UnsupportedModel,
    compile_pipeline,
)
from fraud_assets.lib.serving import FrameState, ScoredBatch, score_rows
from fraud_assets_tests.helpers.data import SPLIT

ARRIVAL, EVENT = for_semantics("arrival"), for_semantics("payload")
SMALL = {
    "rf": default_params("rf", n_estimators=30, n_jobs=2),
    "hgb": default_params("hgb", max_iter=40),
}
TOLERANCE = 1e-6


@dataclass
class Served:
    """A small model trained before ``SPLIT``, the later rows served through ``score_rows``."""

    result: TrainResult
    batch: ScoredBatch
    runtime: FastPredictor

    @property
    def x(self) -> np.ndarray:
        return self.result.feature_set.matrix(self.batch.features)


@pytest.fixture(scope="module")
def served(dataset):
    """``served(kind, fs)``, trained once per module."""
    history = dataset.canonical.filter(pl.col("event_time") < SPLIT)
    later = dataset.canonical.filter(pl.col("event_time") >= SPLIT).sort("event_time", "trans_num")
    cache: dict[tuple[str, str], Served] = {}

    def get(kind: str, fs: FeatureSet) -> Served:
        if (kind, fs.version) not in cache:
            result = train(history, fs, SMALL[kind])
            state = FrameState(fs.build_state(history))
            batch = score_rows(later, state, serving_model(result), semantics=fs.semantics)
            runtime = compile_pipeline(result.pipeline, len(fs.features))
            cache[kind, fs.version] = Served(result, batch, runtime)
        return cache[kind, fs.version]

    return get


def _assert_serves_as_scikit_learn(served: Served) -> None:
    """Within 1e-6 of ``predict_raw`` on the test window, and the same decision on every row
    (``proba >= rule.thresholds(amount)`` after calibration, as ``score_rows`` decides)."""
    result, scored = served.result, served.batch.scored
    expected = predict_raw(result.pipeline, result.feature_set, served.batch.features)
    got = served.runtime.predict_raw(served.x)
    assert got.dtype == np.float64 and got.shape == expected.shape == (scored.height,)
    assert np.max(np.abs(got - expected)) <= TOLERANCE
    proba = result.calibration.apply(got)
    amount = scored["amt"].to_numpy()
    flagged = proba >= result.decision.thresholds(amount)
    assert np.array_equal(flagged, scored["is_flagged"].to_numpy())
    assert np.array_equal(flagged, result.decision.flags(proba, amount))
    assert 0 < flagged.sum() < len(flagged)  # real decisions, not all one way
    assert np.unique(expected).size > 10  # real scores, not a constant


@pytest.mark.parametrize("fs", [ARRIVAL, EVENT], ids=lambda fs: fs.version)
def test_the_onnx_forest_matches_scikit_learn_within_1e6(served, fs) -> None:
    _assert_serves_as_scikit_learn(served("rf", fs))


@pytest.mark.parametrize("fs", [ARRIVAL, EVENT], ids=lambda fs: fs.version)
def test_the_onnx_boosting_matches_scikit_learn_within_1e6(served, fs) -> None:
    _assert_serves_as_scikit_learn(served("hgb", fs))


@pytest.mark.parametrize("kind", ["rf", "hgb"])
def test_missing_values_are_imputed_as_the_pipeline_imputes_them(served, kind) -> None:
    model = served(kind, ARRIVAL)
    x = model.x.copy()
    x[np.random.default_rng(3).random(x.shape) < 0.2] = np.nan
    expected = model.result.pipeline.predict_proba(x)[:, 1]
    assert np.max(np.abs(model.runtime.predict_raw(x) - expected)) <= TOLERANCE


def test_one_row_scores_as_in_a_batch(served) -> None:
    model = served("rf", ARRIVAL)
    batch = model.runtime.predict_raw(model.x)
    one_by_one = np.concatenate([model.runtime.predict_raw(row[None, :]) for row in model.x[:50]])
    assert np.array_equal(one_by_one, batch[:50])
    assert model.runtime.predict_raw(model.x[:0]).shape == (0,)


def test_a_runtime_that_disagrees_is_refused(served, monkeypatch) -> None:
    """A session whose output is 1e-5 off never becomes a predictor."""
    model = served("hgb", ARRIVAL)
    run = ort.InferenceSession.run

    def off_by_a_little(
        self: ort.InferenceSession, names: list[str], feed: dict, options: object = None
    ) -> list[np.ndarray]:
        return [out + 1e-5 for out in run(self, names, feed, options)]

    monkeypatch.setattr(ort.InferenceSession, "run", off_by_a_little)
    with pytest.raises(RuntimeMismatch, match="serve this model with scikit-learn"):
        compile_pipeline(model.result.pipeline, len(ARRIVAL.features))


def test_the_caller_s_rows_are_checked_too(served) -> None:
    """Rows the caller passes join the probe: here a valid compile, with the test window."""
    model = served("rf", EVENT)
    runtime = compile_pipeline(model.result.pipeline, len(EVENT.features), probe=model.x)
    assert np.array_equal(runtime.predict_raw(model.x), model.runtime.predict_raw(model.x))


def test_it_scores_from_several_threads_at_once(served) -> None:
    model = served("rf", ARRIVAL)
    x, runtime = model.x, model.runtime
    expected = runtime.predict_raw(x)
    chunks = [(start, start + n) for start in range(0, len(x), 97) for n in (1, 97)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda c: runtime.predict_raw(x[c[0] : c[1]]), chunks * 4))
    for (start, stop), got in zip(chunks * 4, results, strict=True):
        assert np.array_equal(got, expected[start:stop])


def test_a_pickled_predictor_scores_the_same(served) -> None:
    model = served("hgb", EVENT)
    again = pickle.loads(pickle.dumps(model.runtime))
    assert np.array_equal(again.predict_raw(model.x), model.runtime.predict_raw(model.x))


def test_a_model_it_cannot_compile_is_refused() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    linear = Pipeline([("impute", build_pipeline(SMALL["rf"])[0]), ("model", LogisticRegression())])
    linear.fit(x, y)
    with pytest.raises(UnsupportedModel, match="LogisticRegression"):
        compile_pipeline(linear, 3)
    forest = build_pipeline(SMALL["rf"]).fit(x, y)
    with pytest.raises(UnsupportedModel, match="reads 3 features"):
        compile_pipeline(forest, 4)


def test_wrong_widths_and_infinite_values_are_refused(served) -> None:
    runtime = served("rf", ARRIVAL).runtime
    with pytest.raises(ValueError, match="features"):
        runtime.predict_raw(np.zeros((1, len(ARRIVAL.features) + 1)))
    row = np.zeros((1, len(ARRIVAL.features)))
    row[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        runtime.predict_raw(row)


def test_columns_the_imputer_drops_are_dropped_and_single_leaf_trees_kept() -> None:
    """An all-missing training column is dropped by the imputer; a forest of depth-0 trees
    (one leaf each) still compiles and scores exactly."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + rng.normal(scale=0.3, size=300) > 0).astype(int)
    x[:, 2] = np.nan
    for params in (SMALL["rf"], default_params("hgb", max_iter=10)):
        pipeline = build_pipeline(params).fit(x, y)
        runtime = compile_pipeline(pipeline, 4)
        assert runtime.keep is not None and list(runtime.keep) == [0, 1, 3]
        probe = rng.normal(size=(50, 4))
        expected = pipeline.predict_proba(probe)[:, 1]
        assert np.max(np.abs(runtime.predict_raw(probe) - expected)) <= TOLERANCE
    stumps = build_pipeline(default_params("rf", n_estimators=5, min_samples_leaf=300)).fit(x, y)
    assert all(tree.tree_.node_count == 1 for tree in stumps[-1].estimators_)
    compile_pipeline(stumps, 4)


def test_an_onnx_runtime_that_cannot_load_the_graph_means_no_runtime(monkeypatch) -> None:
    """An older onnxruntime without float64 ``TreeEnsemble`` fails as a refusal, not a crash."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    forest = build_pipeline(SMALL["rf"]).fit(x, y)

    def too_old(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH : TreeEnsemble(5)")

    monkeypatch.setattr(ort.InferenceSession, "__init__", too_old)
    with pytest.raises(UnsupportedModel, match="cannot build or load the graph"):
        compile_pipeline(forest, 3)
