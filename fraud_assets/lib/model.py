"""Training: time split, features for the feed's semantics, fit, calibrate, decide, measure."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import precision_recall_curve
from sklearn.pipeline import Pipeline

from fraud_assets.lib.calibration import Calibration, refit_odds, reliability
from fraud_assets.lib.decision import DecisionRule
from fraud_assets.lib.features import FeatureSet
from fraud_assets.lib.metrics import Evaluation, evaluate
from fraud_assets.lib.runtime import NotCompiled, compile_pipeline


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters and business settings: the one home of their defaults.

    The Dagster configs and ``python -m fraud_assets.evaluate`` take their defaults from here
    (see ``default_params``). Every default was chosen on the validation window inside the
    training data, never on a test file.
    """

    model: str = "rf"
    # RandomForest. Bounded in depth and features per split so it trains fast and stays small.
    n_estimators: int = 150
    max_depth: int | None = 20
    min_samples_leaf: int = 2
    max_features: float = 0.4
    max_samples: float | None = None
    criterion: str = "entropy"
    # HistGradientBoosting (the challenger).
    max_iter: int = 300
    learning_rate: float = 0.08
    max_leaf_nodes: int = 31
    l2_regularization: float = 1.0
    # Class imbalance: every fraud is kept and only this share of legitimate training rows is
    # drawn (once, seeded). Calibration divides the resulting prior shift back out.
    legit_sample_rate: float = 0.5
    class_weight: str | None = None
    validation_fraction: float = 0.2
    # Card profiles (arrival feeds): a training row sees its card's profile as of this many
    # days before it, and rows in the data's first days (whose cards have no profile yet only
    # because the data starts there) are not fitted on.
    profile_lag_days: float = 3.0
    profile_warmup_days: float = 45.0
    # The decision: review when p x amount reaches the review cost, within an optional cap on
    # the share of transactions flagged.
    review_cost: float = 5.0
    max_flag_rate: float | None = None
    # Calibration: the prior correction for sampling and class weights, then (when true) its
    # log-odds shift re-fitted on the validation window. Chosen on the validation window (fit
    # on its first half, judged on its second): exact for the forest's sampling (re-fitting
    # cost more), needed for boosting under class weights (see MODEL_DEFAULTS).
    calibrate_on_validation: bool = False
    n_jobs: int = -1
    random_state: int = 7


#: Per-model default overrides; everything else comes from ``TrainParams``. Boosting keeps every
#: legitimate row and weights the classes equally instead (best AP on the validation window).
MODEL_DEFAULTS: dict[str, dict[str, object]] = {
    "rf": {},
    "hgb": {"legit_sample_rate": 1.0, "class_weight": "balanced", "calibrate_on_validation": True},
}


def default_params(model: str = "rf", **overrides: object) -> TrainParams:
    """The default parameters for ``model`` ('rf' or 'hgb'), with ``overrides`` applied."""
    if model not in MODEL_DEFAULTS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_DEFAULTS)}")
    return TrainParams(model=model, **{**MODEL_DEFAULTS[model], **overrides})


Window = tuple[dt.datetime, dt.datetime]


def window_of(frame: pl.DataFrame) -> list[Window]:
    """``[(first, last)]`` event time of a frame's rows (none for an empty frame)."""
    return [(frame["event_time"].min(), frame["event_time"].max())] if frame.height else []


@dataclass
class TrainResult:
    """A fitted pipeline with everything needed to log, gate and serve it."""

    pipeline: Pipeline
    params: TrainParams
    feature_set: FeatureSet
    calibration: Calibration
    decision: DecisionRule
    validation: Evaluation
    train_rows: int
    fit_rows: int
    fit_start: dt.datetime
    fit_end: dt.datetime
    validation_start: dt.datetime
    validation_end: dt.datetime
    fit_seconds: float
    #: Time spans the model was fitted on, and the comparison (validation) spans: the
    #: training data's, and the labelled live rows' (by arrival) when there are any.
    fit_windows: list[Window] = field(default_factory=list)
    validation_windows: list[Window] = field(default_factory=list)
    live_rows: int = 0
    #: Validation rows: features, ``is_fraud``, ``amt`` and ``fraud_probability``.
    validation_features: pl.DataFrame = field(default_factory=pl.DataFrame)
    importances: dict[str, float] = field(default_factory=dict)
    pr_curve: tuple[np.ndarray, np.ndarray] | None = None
    reliability: list[tuple[float, float, int]] = field(default_factory=list)
    #: What will serve it: "onnx" when the fast runtime matched scikit-learn on the whole
    #: validation window (``lib/runtime.py``), else scikit-learn and why.
    runtime: str = "scikit-learn"


def build_pipeline(params: TrainParams) -> Pipeline:
    """The scikit-learn pipeline: median imputation, then the classifier."""
    if params.model == "rf":
        clf = RandomForestClassifier(
            n_estimators=params.n_estimators,
            max_depth=params.max_depth,
            min_samples_leaf=params.min_samples_leaf,
            max_features=params.max_features,
            max_samples=params.max_samples,
            criterion=params.criterion,
            class_weight=params.class_weight,
            n_jobs=params.n_jobs,
            random_state=params.random_state,
        )
    elif params.model == "hgb":
        clf = HistGradientBoostingClassifier(
            max_iter=params.max_iter,
            learning_rate=params.learning_rate,
            max_leaf_nodes=params.max_leaf_nodes,
            l2_regularization=params.l2_regularization,
            # No native categorical: one-hot category indicators are features already, and
            # TreeSHAP cannot explain categorical splits exactly.
            categorical_features=None,
            class_weight=params.class_weight,
            # No early stopping: it would hold out a random split of the training window.
            early_stopping=False,
            random_state=params.random_state,
        )
    else:
        raise ValueError(f"unknown model {params.model!r}; choose 'rf' or 'hgb'")
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("model", clf)])


def time_cut(frame: pl.DataFrame, validation_fraction: float) -> dt.datetime:
    """The event time from which the latest ``validation_fraction`` of rows validate."""
    if not 0 < validation_fraction < 1:
        raise ValueError("validation_fraction must be between 0 and 1")
    return frame["event_time"].sort().quantile(1 - validation_fraction, "lower")


def sample_legit(frame: pl.DataFrame, rate: float, seed: int) -> pl.DataFrame:
    """Every fraud row and a seeded random ``rate`` share of the legitimate rows, in order."""
    if not 0 < rate <= 1:
        raise ValueError("legit_sample_rate must be in (0, 1]")
    if rate == 1:
        return frame
    draw = np.random.default_rng(seed).random(frame.height) < rate
    return frame.filter((pl.col("is_fraud") == 1) | pl.Series(draw))


def predict_raw(pipeline: Pipeline, fs: FeatureSet, features: pl.DataFrame) -> np.ndarray:
    """The model's own fraud probability for each row of a feature frame (not calibrated)."""
    if features.height == 0:
        return np.empty(0)
    x = fs.matrix(features)
    clf = pipeline[-1]
    if isinstance(clf, RandomForestClassifier) and clf.n_jobs in (None, 1) and clf.n_outputs_ == 1:
        return forest_proba(clf, pipeline[:-1].transform(x))[:, 1]
    return pipeline.predict_proba(x)[:, 1]


def forest_proba(forest: RandomForestClassifier, x: np.ndarray) -> np.ndarray:
    """``forest.predict_proba(x)`` on one thread, bit for bit, without the per-tree joblib
    dispatch and checks that cost several times the trees themselves on a live micro-batch
    (a test compares the two): the same trees' leaf fractions summed in the same order."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != forest.n_features_in_:
        raise ValueError(f"expected {forest.n_features_in_} features, got shape {x.shape}")
    total = np.zeros((x.shape[0], forest.n_classes_), dtype=np.float64)
    for tree in forest.estimators_:
        total += tree.tree_.predict(x)[:, : forest.n_classes_]
    total /= len(forest.estimators_)
    return total


def split_live(live: pl.DataFrame, fraction: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Labelled live rows (as served) split by arrival: older ones fit, the latest validate."""
    if live.height == 0:
        return live, live
    cut = live["event_time"].sort().quantile(1 - fraction, "lower")
    return live.filter(pl.col("event_time") < cut), live.filter(pl.col("event_time") >= cut)


def split_features(
    transactions: pl.DataFrame, fs: FeatureSet, params: TrainParams
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(fit, validation)`` feature frames with ``is_fraud``, split at ``time_cut``.

    Fit rows are computed as training computes them (from strictly earlier rows). Validation
    rows are computed exactly as serving would compute them at the cut: against the profile
    frozen there (arrival), or with the history continuing in time order (event time).
    """
    cut = time_cut(transactions, params.validation_fraction)
    labelled = transactions.select("trans_num", "is_fraud")
    fit_rows = transactions.filter(pl.col("event_time") < cut)
    valid_rows = transactions.filter(pl.col("event_time") >= cut)
    if fs.uses_profiles:
        lag = dt.timedelta(days=params.profile_lag_days)
        fit = fs.training_features(fit_rows, lag)
        start = fit_rows["event_time"].min() + dt.timedelta(days=params.profile_warmup_days)
        fit = fit.filter(pl.col("event_time") >= start)
        valid = fs.serving_features(valid_rows, fs.build_state(fit_rows))
    else:
        both = fs.training_features(transactions, dt.timedelta(0))
        fit = both.filter(pl.col("event_time") < cut)
        valid = both.filter(pl.col("event_time") >= cut)
    return (
        fit.join(labelled, on="trans_num", how="left", maintain_order="left"),
        valid.join(labelled, on="trans_num", how="left", maintain_order="left"),
    )


def train(
    transactions: pl.DataFrame,
    fs: FeatureSet,
    params: TrainParams,
    live: pl.DataFrame | None = None,
) -> TrainResult:
    """Features for ``fs``, time split, fit, calibration and the decision rule (its capacity
    bound chosen on the validation window), and validation metrics.

    ``live`` holds labelled live rows exactly as they were served: ``trans_num``,
    ``event_time`` (their arrival), the feature columns and ``is_fraud``. Their older part is
    fitted on with the training rows, and their latest part validates with the training
    data's validation window ("train as you serve")."""
    fit_train, valid_train = split_features(transactions, fs, params)
    live = _live_rows(live, fs)
    fit_live, valid_live = split_live(live, params.validation_fraction)
    fit_part, valid_part = fit_train, valid_train
    if live.height:
        fit_part = pl.concat([fit_train, fit_live.cast(fit_train.schema)])
        valid_part = pl.concat([valid_train, valid_live.cast(valid_train.schema)])
    if fit_part["is_fraud"].sum() == 0 or valid_part["is_fraud"].sum() == 0:
        raise ValueError("both the training and validation windows need at least one fraud")
    sampled = sample_legit(fit_part, params.legit_sample_rate, params.random_state)
    pipeline = build_pipeline(params)
    started = time.perf_counter()
    pipeline.fit(fs.matrix(sampled), sampled["is_fraud"].to_numpy())
    fit_seconds = time.perf_counter() - started
    if params.model == "rf":
        # Serve on one thread: a parallel sum of tree votes is order-dependent in the last bits
        # (the same rows could score differently), and live batches are too small to gain.
        pipeline.set_params(model__n_jobs=1)
    runtime = _runtime_check(pipeline, fs, valid_part)
    y_fit = fit_part["is_fraud"].to_numpy()
    prior = Calibration.for_training(y_fit, params.legit_sample_rate, params.class_weight)
    raw = predict_raw(pipeline, fs, valid_part)
    y, amount = valid_part["is_fraud"].to_numpy(), valid_part["amt"].to_numpy()
    # The prior correction is exact for sampling, but the fraud rate drifts (and boosting under
    # class weights drifts from it too), so the log-odds shift is re-fitted on the latest rows.
    calibration = refit_odds(raw, y, prior) if params.calibrate_on_validation else prior
    proba = calibration.apply(raw)
    rule = DecisionRule.fit(params.review_cost, proba, amount, params.max_flag_rate)
    precision, recall, _ = precision_recall_curve(y, proba)
    model = pipeline.named_steps["model"]
    importances = (
        dict(zip(fs.features, map(float, model.feature_importances_), strict=True))
        if hasattr(model, "feature_importances_")
        else {}
    )
    return TrainResult(
        pipeline=pipeline,
        params=params,
        feature_set=fs,
        calibration=calibration,
        decision=rule,
        validation=evaluate(y, proba, amount, rule),
        train_rows=transactions.height,
        fit_rows=sampled.height,
        fit_start=fit_train["event_time"].min(),
        fit_end=fit_train["event_time"].max(),
        validation_start=valid_train["event_time"].min(),
        validation_end=valid_train["event_time"].max(),
        fit_seconds=fit_seconds,
        fit_windows=window_of(fit_train) + window_of(fit_live),
        validation_windows=window_of(valid_train) + window_of(valid_live),
        live_rows=live.height,
        validation_features=valid_part.with_columns(fraud_probability=pl.Series(proba)),
        importances=importances,
        pr_curve=(precision, recall),
        reliability=reliability(y, proba),
        runtime=runtime,
    )


def _runtime_check(pipeline: Pipeline, fs: FeatureSet, validation: pl.DataFrame) -> str:
    """Whether the fast runtime serves this model exactly, proven on every validation row."""
    try:
        compile_pipeline(pipeline, len(fs.features), probe=fs.matrix(validation))
    except NotCompiled as exc:
        return f"scikit-learn: {exc}"[:300]
    return "onnx"


def _live_rows(live: pl.DataFrame | None, fs: FeatureSet) -> pl.DataFrame:
    """Live rows reduced to the columns training reads, in the feature frames' types."""
    columns = ["trans_num", "cc_num", "event_time", *fs.features, "is_fraud"]
    if live is None or live.height == 0:
        return pl.DataFrame(schema={c: pl.Float64 for c in columns}).cast(
            {
                "trans_num": pl.String,
                "cc_num": pl.String,
                "event_time": pl.Datetime("ms"),
                "is_fraud": pl.Int8,
            }
        )
    missing = [c for c in columns if c not in live.columns]
    if missing:
        raise ValueError(f"live rows lack columns: {', '.join(missing)}")
    return live.select(columns)
