"""Hold-out evaluation: train as ``rf_model`` does, then score a later test set in time order."""

from __future__ import annotations

import pickle
import resource
import sys
import time
from pathlib import Path

import polars as pl

from fraud_assets.lib.features import features_with_history
from fraud_assets.lib.model import TrainParams, TrainResult, evaluate, predict_proba, train
from fraud_assets.lib.schema import read_training_csv


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


def model_mb(pipeline: object) -> float:
    """Size of the pickled pipeline, in MB."""
    return len(pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)) / 1e6


def score_test(
    result: TrainResult, history: pl.DataFrame, test: pl.DataFrame
) -> tuple[pl.DataFrame, object, dict[str, float]]:
    """Score ``test`` in event-time order; each row's history is ``history`` plus earlier test
    rows, through the shared feature code. Returns the labelled feature rows, probabilities and
    timings."""
    ordered = test.sort("event_time", "trans_num")
    started = time.perf_counter()
    feats = features_with_history(ordered, history)
    features_s = time.perf_counter() - started
    started = time.perf_counter()
    proba = predict_proba(result.pipeline, feats)
    predict_s = time.perf_counter() - started
    labelled = feats.with_columns(is_fraud=ordered["is_fraud"])
    return labelled, proba, {"features_seconds": features_s, "predict_seconds": predict_s}


def evaluate_holdout(train_frame: pl.DataFrame, test: pl.DataFrame, params: TrainParams) -> dict:
    """Train on ``train_frame`` (its own time split picks the threshold), then measure on
    ``test``. Returns the figures ``python -m fraud_assets.evaluate`` prints."""
    result = train(train_frame, params)
    labelled, proba, timing = score_test(result, train_frame, test)
    ev = evaluate(labelled, proba, result.threshold, params)
    rows = labelled.height
    return {
        "model": params.model,
        "ap": ev.ap,
        "roc_auc": ev.roc_auc,
        "precision": ev.precision,
        "recall": ev.recall,
        "f1": ev.f1,
        "threshold": ev.threshold,
        "cost": ev.cost,
        "cost_at_0_5": ev.cost_at_half,
        "card_precision_at_k": ev.card_precision_at_k,
        "validation_ap": result.validation.ap,
        "fit_seconds": result.fit_seconds,
        "fit_rows": result.fit_rows,
        "test_rows": rows,
        "test_frauds": ev.frauds,
        "features_seconds": timing["features_seconds"],
        "predict_rows_per_s": rows / max(timing["predict_seconds"], 1e-9),
        "model_mb": model_mb(result.pipeline),
        "peak_rss_mb": peak_rss_mb(),
    }


def evaluate_files(train_path: str | Path, test_path: str | Path, params: TrainParams) -> dict:
    """``evaluate_holdout`` on two CSV files in the public layout (plain or gzip)."""
    return evaluate_holdout(read_training_csv(train_path), read_training_csv(test_path), params)
