"""Score transactions with a registered model, using the shared feature code."""

from __future__ import annotations

import datetime as dt

import polars as pl

from fraud_assets.lib.features import FEATURE_SET_VERSION, features_with_history
from fraud_assets.lib.model import predict_proba
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA


def score_batch(
    batch: pl.DataFrame,
    history: pl.DataFrame,
    pipeline,
    *,  # noqa: ANN001
    model_name: str,
    model_version: str,
    threshold: float,
    batch_hour: str | None = None,
    scored_at: dt.datetime | None = None,
) -> pl.DataFrame:
    """Scored rows for ``batch`` (canonical transactions), with history features from
    ``history`` (earlier transactions of the same cards, in any order).

    ``is_fraud`` in the batch is carried through as ``label_is_fraud`` for monitoring only;
    the model never sees it.
    """
    if batch.height == 0:
        return pl.DataFrame(schema=SCORED_TRANSACTIONS_SCHEMA)
    feats = features_with_history(batch, history)
    proba = predict_proba(pipeline, feats)
    scored_at = scored_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    out = batch.select(
        "trans_num",
        "event_time",
        "cc_num",
        "merchant",
        "category",
        "amt",
    ).with_columns(
        fraud_probability=pl.Series(proba, dtype=pl.Float64),
        is_flagged=pl.Series(proba >= threshold, dtype=pl.Boolean),
        threshold=pl.lit(threshold, dtype=pl.Float64),
        model_name=pl.lit(model_name),
        model_version=pl.lit(str(model_version)),
        feature_set_version=pl.lit(FEATURE_SET_VERSION),
        scored_at=pl.lit(scored_at, dtype=pl.Datetime("ms")),
        label_is_fraud=(
            batch["is_fraud"] if "is_fraud" in batch.columns else pl.lit(None, dtype=pl.Int8)
        ),
        batch_hour=pl.lit(batch_hour, dtype=pl.String),
    )
    return out.select(pl.col(c).cast(t) for c, t in SCORED_TRANSACTIONS_SCHEMA.items())
