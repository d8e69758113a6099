"""Live scoring: what the API brought, and those rows scored by the champion model."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from fraud_assets.defs.resources import (
    FeedResource,
    MlflowResource,
    ObjectStoreResource,
    WarehouseResource,
)
from fraud_assets.defs.scoring.partitions import hourly_partitions
from fraud_assets.defs.training.assets import column_schema
from fraud_assets.lib import registry
from fraud_assets.lib.card_state import WarehouseState
from fraud_assets.lib.features import IncompatibleModel
from fraud_assets.lib.landing import (
    LANDING_PREFIX,
    parse_payloads,
    quarantine_key,
    quarantine_record,
)
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.serving import score_rows


@dg.asset(
    group_name="scoring",
    kinds={"sql", "polars"},
    partitions_def=hourly_partitions,
    io_manager_key="warehouse_io_manager",
    metadata={"on_conflict": "ignore"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_quarantined_payloads",
            asset="live_transactions",
            description="Every landed payload parsed and validated.",
        )
    ],
    pool="warehouse",
)
def live_transactions(
    context: dg.AssetExecutionContext,
    object_store: ObjectStoreResource,
    warehouse: WarehouseResource,
    feed: FeedResource,
) -> Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]:
    """Transactions the API brought in this hour, parsed from the raw payloads the sensor landed
    in object storage. Each run loads every payload of the hour not yet in the table, so a
    failed run is healed by the next one. Invalid payloads or rows go to quarantine with their
    reason; rows are unique by ``trans_num`` and the table keeps the first arrival of each."""
    store = object_store.store()
    hour = context.partition_key
    loaded = warehouse.warehouse().read(
        "live_transactions",
        LIVE_TRANSACTIONS_SCHEMA,
        columns=["payload_key"],
        where={"batch_hour": [hour]},
    )["payload_key"]
    keys = sorted(set(store.list(f"{LANDING_PREFIX}/{hour}/")) - set(loaded.to_list()))
    parsed = parse_payloads([(k, store.get_bytes(k)) for k in keys], feed.feed())
    for reject in parsed.rejects:
        suffix = f"-{reject['trans_num']}" if "trans_num" in reject else ""
        store.put_bytes(quarantine_key(reject["payload_key"]) + suffix, quarantine_record(reject))
    reasons = sorted({r["reason"] for r in parsed.rejects})
    if parsed.rejects:
        context.log.warning(f"{len(parsed.rejects)} payloads/rows quarantined: {reasons}"[:800])
    rows = parsed.rows
    yield dg.Output(
        rows,
        metadata={
            "dagster/row_count": rows.height,
            "dagster/column_schema": column_schema(rows),
            "payloads_read": len(keys),
            "payloads_already_loaded": loaded.n_unique(),
            "quarantined": len(parsed.rejects),
            "duplicates_in_batch": parsed.duplicates,
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_quarantined_payloads",
        passed=not parsed.rejects,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": len(parsed.rejects), "reasons": "; ".join(reasons)[:1000]},
    )


SERVED_PREFIX = "served_features"
#: Bump when scoring changes what it writes for the same rows and model: the UI then shows
#: scored partitions as out of date.
SCORING_CODE_VERSION = "serving-2"


@dg.asset(
    group_name="scoring",
    kinds={"sql", "sklearn"},
    partitions_def=hourly_partitions,
    io_manager_key="warehouse_io_manager",
    ins={"live_transactions": dg.AssetIn()},
    deps=["champion_model", "card_state"],
    code_version=SCORING_CODE_VERSION,
    retry_policy=dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL),
    pool="warehouse",
)
def scored_transactions(
    context: dg.AssetExecutionContext,
    mlflow_registry: MlflowResource,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    feed: FeedResource,
    live_transactions: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """This hour's live transactions scored by the champion through the one serving path
    (``lib/serving.py``): card state read by card, features for the feed's semantics,
    calibrated fraud probability, and the expected-cost decision. Rows already scored by the
    same model version are skipped; a new champion re-scores them, so re-scoring is an
    ordinary backfill. The feature rows each score was computed from are kept in object
    storage (``served_features/…``), so retraining learns from rows exactly as served."""
    try:
        model, champ = registry.load_champion(
            mlflow_registry.tracking_uri,
            mlflow_registry.model_name,
            Path(mlflow_registry.cache_dir),
        )
    except registry.NoChampionError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    wh = warehouse.warehouse()
    hour = context.partition_key
    done = wh.read(
        "scored_transactions",
        SCORED_TRANSACTIONS_SCHEMA,
        columns=["trans_num", "model_version"],
        where={"batch_hour": [hour]},
    )
    done_now = done.filter(pl.col("model_version") == champ.version)["trans_num"]
    todo = live_transactions.filter(~pl.col("trans_num").is_in(done_now.implode()))
    try:
        batch = score_rows(
            todo, WarehouseState(wh), model, semantics=feed.semantics, batch_hour=hour
        )
    except IncompatibleModel as exc:
        raise dg.Failure(f"champion v{champ.version} refused: {exc}", allow_retries=False) from exc
    scored = batch.scored
    if scored.height:
        served = batch.features.with_columns(
            model_version=pl.lit(champ.version), batch_hour=pl.lit(hour)
        )
        key = served_features_key(hour, champ.version, scored["trans_num"].to_list())
        object_store.store().put_parquet(key, served)
    flagged = int(scored["is_flagged"].sum()) if scored.height else 0
    return dg.Output(
        scored,
        metadata={
            "dagster/row_count": scored.height,
            "already_scored": done_now.len(),
            "flagged": flagged,
            "amount_flagged": float(scored.filter("is_flagged")["amt"].sum()) if flagged else 0.0,
            "model_version": champ.version,
            "feed_semantics": feed.semantics,
            "feature_set_version": champ.feature_set_version,
            "min_expected_loss": champ.threshold,
        },
    )


def served_features_key(hour: str, version: str, trans_nums: list[str]) -> str:
    """Where the feature rows of one scoring of an hour by one model version are kept; named
    by their content, so a retried run rewrites its own file and never adds a copy."""
    digest = hashlib.sha256("\n".join(sorted(trans_nums)).encode()).hexdigest()[:16]
    return f"{SERVED_PREFIX}/hour={hour}/v{version}-{digest}.parquet"
