"""Scoring stored live rows, for any number of hours at once (a backfill is one call).

Rows already scored by the champion's version are skipped, so a retry or a duplicate run
changes nothing and a new champion re-scores everything. The feature rows each score was
computed from go to the lake (``served_features``), keyed by content, so retraining learns
from rows exactly as served.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.card_state import WarehouseState
from fraud_assets.lib.ingest import LIVE_TABLE
from fraud_assets.lib.lake import SERVED_PREFIX, content_key
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.serving import ServingModel, score_rows
from fraud_assets.lib.storage import ObjectStore
from fraud_assets.lib.warehouse import Warehouse


@dataclass
class HoursScored:
    scored: pl.DataFrame
    already_scored: int
    hours: int


def score_hours(
    wh: Warehouse, store: ObjectStore, model: ServingModel, semantics: str, hours: list[str]
) -> HoursScored:
    """Score the live rows of ``hours`` not yet scored by ``model``'s version."""
    done = wh.read(
        "scored_transactions",
        SCORED_TRANSACTIONS_SCHEMA,
        columns=["trans_num", "model_version"],
        where={"batch_hour": hours},
    ).filter(pl.col("model_version") == model.version)["trans_num"]
    live = wh.read(LIVE_TABLE, LIVE_TRANSACTIONS_SCHEMA, where={"batch_hour": hours})
    todo = live.filter(~pl.col("trans_num").is_in(done.implode()))
    batch = score_rows(todo, WarehouseState(wh), model, semantics=semantics)
    scored = batch.scored
    if scored.height:
        served = batch.features.with_columns(
            model_version=pl.lit(model.version),
            feature_set_version=pl.lit(model.feature_set.version),
            batch_hour=scored["batch_hour"],
            scored_at=scored["scored_at"],
        )
        for (hour,), part in served.group_by("batch_hour"):
            key = content_key(SERVED_PREFIX, hour, model.version, part["trans_num"].to_list())
            store.put_parquet(key, part)
    return HoursScored(scored, done.len(), len(hours))
