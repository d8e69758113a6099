"""Scoring stored live rows, for any number of hours at once (a backfill is one call), and
importing the decisions that the decision service and the stream consumer logged.

Polled rows already scored by the champion's version are skipped, so a retry or a duplicate
run changes nothing and a new champion re-scores everything, except the transactions that a
service decided: their logged decision is the record and is never replaced. The feature rows
each score was computed from go to the lake (``served_features``), keyed by content, so
retraining learns from rows exactly as served. The scored rows of every hour touched are
written to the warehouse in one transaction, then each hour's lake copy is rewritten whole
from the table (``lake/scored_transactions/hour=…/part.parquet``), so it always equals it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fraud_assets.lib import decision_log
from fraud_assets.lib.card_state import WarehouseState
from fraud_assets.lib.ingest import LIVE_TABLE
from fraud_assets.lib.lake import SCORED_PREFIX, SERVED_PREFIX, content_key, hour_key
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.serving import ServingModel, score_rows
from fraud_assets.lib.storage import ObjectStore
from fraud_assets.lib.warehouse import TableWrite, Warehouse

SCORED_TABLE = "scored_transactions"
SCORED_INDEXES = ("batch_hour", "cc_num", "arrived_at", "model_version", "event_time")


@dataclass
class HoursScored:
    """What one scoring call did."""

    scored: pl.DataFrame  # polled rows scored now
    imported: pl.DataFrame  # logged decisions imported now
    already_scored: int
    hours: int

    @property
    def written(self) -> pl.DataFrame:
        return pl.concat([self.scored, self.imported])


def ensure_scored(wh: Warehouse) -> None:
    wh.ensure_table(SCORED_TABLE, SCORED_TRANSACTIONS_SCHEMA, indexes=list(SCORED_INDEXES))


def score_hours(
    wh: Warehouse, store: ObjectStore, model: ServingModel, semantics: str, hours: list[str]
) -> HoursScored:
    """Score the polled rows of ``hours`` not yet scored by ``model``'s version, import the
    hours' logged decisions, and write both (see the module)."""
    ensure_scored(wh)
    done = wh.read(
        SCORED_TABLE,
        SCORED_TRANSACTIONS_SCHEMA,
        columns=["trans_num", "model_version", "decided_by"],
        where={"batch_hour": hours},
    ).filter(
        (pl.col("model_version") == model.version)
        | pl.col("decided_by").is_in(decision_log.LOGGED_PATHS)
    )["trans_num"]
    live = wh.read(LIVE_TABLE, LIVE_TRANSACTIONS_SCHEMA, where={"batch_hour": hours})
    todo = live.filter(~pl.col("trans_num").is_in(done.implode()))
    batch = score_rows(todo, WarehouseState(wh), model, semantics=semantics)
    if batch.scored.height:
        _keep_served(store, model, batch.scored, batch.features)
    imported = _imported(wh, store, hours)
    wh.write(
        [
            TableWrite(SCORED_TABLE, batch.scored),
            TableWrite(SCORED_TABLE, imported, update=False),
        ]
    )
    _copy_to_lake(wh, store, hours)
    return HoursScored(batch.scored, imported, done.len(), len(hours))


def import_decisions(wh: Warehouse, store: ObjectStore, hours: list[str]) -> int:
    """Only the hours' logged decisions (when no champion can score polled rows)."""
    ensure_scored(wh)
    imported = _imported(wh, store, hours)
    wh.upsert(SCORED_TABLE, imported, update=False)
    _copy_to_lake(wh, store, hours)
    return imported.height


def _imported(wh: Warehouse, store: ObjectStore, hours: list[str]) -> pl.DataFrame:
    return pl.concat(
        [pl.DataFrame(schema=SCORED_TRANSACTIONS_SCHEMA)]
        + [decision_log.import_hour(wh, store, hour) for hour in hours]
    )


def _copy_to_lake(wh: Warehouse, store: ObjectStore, hours: list[str]) -> None:
    for hour in hours:
        rows = wh.read(SCORED_TABLE, SCORED_TRANSACTIONS_SCHEMA, where={"batch_hour": [hour]})
        store.put_parquet(hour_key(SCORED_PREFIX, hour), rows)


def _keep_served(
    store: ObjectStore, model: ServingModel, scored: pl.DataFrame, features: pl.DataFrame
) -> None:
    served = features.with_columns(
        model_version=pl.lit(model.version),
        feature_set_version=pl.lit(model.feature_set.version),
        batch_hour=scored["batch_hour"],
        scored_at=scored["scored_at"],
    )
    for (hour,), part in served.group_by("batch_hour"):
        key = content_key(SERVED_PREFIX, hour, model.version, part["trans_num"].to_list())
        store.put_parquet(key, part)
