"""Live scoring: what the API brought, and those rows scored by the champion model."""

from collections.abc import Iterator

import dagster as dg

from fraud_assets.defs.metadata import column_schema
from fraud_assets.defs.resources import (
    FeedResource,
    MlflowResource,
    ObjectStoreResource,
    WarehouseResource,
)
from fraud_assets.defs.scoring.partitions import hourly_partitions
from fraud_assets.lib import registry
from fraud_assets.lib.features import IncompatibleModel
from fraud_assets.lib.ingest import IngestReport, ingest_hour
from fraud_assets.lib.lake import SCORED_PREFIX
from fraud_assets.lib.live_scoring import SCORED_TABLE, import_decisions, score_hours

QUARANTINE_CHECK = dg.AssetCheckSpec(
    "no_quarantined_payloads",
    asset="live_transactions",
    description="Every landed payload and row of the run parsed and validated.",
)
CONFLICT_CHECK = dg.AssetCheckSpec(
    "no_conflicting_duplicates",
    asset="live_transactions",
    description="No transaction id came back with different content.",
)


@dg.asset(
    kinds={"sql", "polars"},
    partitions_def=hourly_partitions,
    check_specs=[QUARANTINE_CHECK, CONFLICT_CHECK],
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL),
    pool="warehouse",
)
def live_transactions(
    context: dg.AssetExecutionContext,
    object_store: ObjectStoreResource,
    warehouse: WarehouseResource,
    feed: FeedResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Transactions the API brought in this hour, from the raw payloads the sensor landed in
    object storage, each payload parsed exactly once (``payload_ledger``). Every payload and
    row is checked on its own: a bad one goes to quarantine with its reason and the rest are
    loaded. Rows are unique by ``trans_num`` (the first arrival is kept; a repeat with other
    content is recorded in ``transaction_conflicts``). Rows, conflicts and the ledger are
    written in one transaction (``lib/ingest.py``)."""
    store, wh = object_store.store(), warehouse.warehouse()
    reports = [
        ingest_hour(store, wh, hour, feed.feed(), feed.limits(), feed.max_payloads_per_run)
        for hour in context.partition_keys
    ]
    report = IngestReport.total(reports)
    reasons = sorted({r.reason for r in report.rejects})
    if report.rejects:
        context.log.warning(f"{len(report.rejects)} payloads/rows quarantined: {reasons}"[:800])
    if report.payloads_left:
        context.log.info(f"{report.payloads_left} payloads left for the next run of this hour")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.rows_written,
            "rows_written": report.rows_written,
            "payloads_read": report.payloads_read,
            "payloads_left": report.payloads_left,
            "quarantined": len(report.rejects),
            "repeats_in_batch": report.duplicates,
            "conflicts": report.conflicts,
            "feed_semantics": feed.semantics,
        }
    )
    yield dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK.name,
        passed=not report.rejects,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": len(report.rejects), "reasons": "; ".join(reasons)[:1000]},
    )
    yield dg.AssetCheckResult(
        check_name=CONFLICT_CHECK.name,
        passed=report.conflicts == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"conflicts": report.conflicts},
    )


#: Bump when scoring changes what it writes for the same rows and model: the UI then shows
#: scored partitions as out of date.
SCORING_CODE_VERSION = "serving-2"


@dg.asset(
    kinds={"sql", "sklearn", "parquet"},
    partitions_def=hourly_partitions,
    metadata={"table": SCORED_TABLE, "lake_prefix": SCORED_PREFIX},
    deps=["live_transactions", "decision_log", "champion_model", "card_state"],
    code_version=SCORING_CODE_VERSION,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL),
    pool="warehouse",
)
def scored_transactions(
    context: dg.AssetExecutionContext,
    mlflow_registry: MlflowResource,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    feed: FeedResource,
) -> dg.MaterializeResult:
    """Every decision of the hour, whichever path made it: the polled live transactions
    scored by the champion through the one serving path (``lib/serving.py``: card state read
    by card, features for the feed's semantics, calibrated fraud probability, the
    expected-cost decision), and the decisions the decision service and the stream consumer
    logged (``decision_log``), imported as they were answered (column ``decided_by``).
    Polled rows already scored by the same model version are skipped; a new champion
    re-scores them (a backfill, one run for many hours), never a logged decision. The
    feature rows each score was computed from are kept in the lake (``served_features/…``);
    the asset writes its table and each hour's lake copy (``lake/scored_transactions/…``)."""
    hours = list(context.partition_keys)
    try:
        model, champ = mlflow_registry.load_champion()
        run = score_hours(warehouse.warehouse(), object_store.store(), model, feed.semantics, hours)
    except (registry.NoChampionError, IncompatibleModel) as exc:
        imported = import_decisions(warehouse.warehouse(), object_store.store(), hours)
        raise dg.Failure(
            f"no servable champion ({exc}); {imported} logged decisions imported, polled rows "
            "left unscored",
            allow_retries=False,
        ) from exc
    written = run.written
    flagged = int(written["is_flagged"].sum()) if written.height else 0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written.height,
            "dagster/column_schema": column_schema(written),
            "scored_polled": run.scored.height,
            "imported_decisions": run.imported.height,
            "already_scored": run.already_scored,
            "hours": run.hours,
            "flagged": flagged,
            "amount_flagged": float(written.filter("is_flagged")["amt"].sum()) if flagged else 0.0,
            "model_version": champ.version,
            "feed_semantics": feed.semantics,
            "feature_set_version": champ.feature_set_version,
            "min_expected_loss": champ.threshold,
            "lake": dg.MetadataValue.path(object_store.store().uri(SCORED_PREFIX)),
        },
    )
