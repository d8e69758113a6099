"""Checks that the live path loses nothing: fresh data, every landed payload in the ledger,
every live row scored, every logged decision imported. They watch the whole platform, so they
run with monitoring (``monitoring_job``), never inside a scoring run."""

import datetime as dt

import dagster as dg
import polars as pl

from fraud_assets.defs.metadata import check_result
from fraud_assets.defs.resources import (
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    WarehouseResource,
)
from fraud_assets.defs.scoring.stream import dead_letters_under_rate, stream_lag_under_bound
from fraud_assets.lib import decision_log
from fraud_assets.lib import monitoring as mon
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.ingest import LIVE_TABLE, stranded_keys
from fraud_assets.lib.lake import hours_since
from fraud_assets.lib.landing import LANDING_PREFIX, arrival_or_none, hour_prefix
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA

#: How far back the decision log's reconciliation looks.
RECONCILE_LOOKBACK = dt.timedelta(days=2)


def result(
    check: dg.AssetChecksDefinition, verdict: mon.Verdict, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    return check_result(check.check_key, verdict, severity)


@dg.asset_check(
    asset="live_transactions",
    description="A payload landed within the last FRAUD_FRESHNESS_MINUTES.",
)
def live_data_fresh(
    object_store: ObjectStoreResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    now, store = utc_now(), object_store.store()
    since = now - dt.timedelta(minutes=monitoring.freshness_minutes) - dt.timedelta(hours=1)
    newest = None
    for hour in reversed(hours_since(since, now)):
        arrivals = [a for a in map(arrival_or_none, store.list(hour_prefix(hour))) if a]
        if arrivals:
            newest = max(arrivals)
            break
    verdict = mon.freshness_check(newest, now, monitoring.freshness_minutes)
    return result(live_data_fresh, verdict, dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset="live_transactions",
    description="Every payload ever landed is accounted for in the payload ledger (across all "
    "time, so nothing is stranded by the sensor's look-back).",
)
def payloads_reconciled(
    object_store: ObjectStoreResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    stranded = stranded_keys(
        object_store.store(),
        warehouse.warehouse(),
        LANDING_PREFIX,
        utc_now() - dt.timedelta(minutes=15),
    )
    total = sum(stranded.values())
    verdict = mon.Verdict(
        total == 0,
        f"{total} landed payloads in {len(stranded)} hours are in no ledger entry"
        + (f": materialize live_transactions for {sorted(stranded)[:5]}" if total else ""),
        {"stranded": total, "hours": len(stranded)},
    )
    return result(payloads_reconciled, verdict, dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset="scored_transactions",
    description="Every polled live row of the recent window is scored by the current champion "
    "(or was decided by the decision service or the stream consumer).",
)
def scored_transactions_complete(
    warehouse: WarehouseResource, mlflow_registry: MlflowResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    now, wh = utc_now(), warehouse.warehouse()
    champ = mlflow_registry.champion()
    since = now - monitoring.window()
    live = wh.read_since(
        LIVE_TABLE,
        LIVE_TRANSACTIONS_SCHEMA,
        "arrived_at",
        since,
        columns=["trans_num", "arrived_at"],
    )
    # rows of the last minutes may not have had their run yet
    live = live.filter(pl.col("arrived_at") < now - dt.timedelta(minutes=10))
    scored = mon.recent_scored(wh, since - dt.timedelta(hours=1))
    version = champ.version if champ else ""
    done = scored.filter(
        (pl.col("model_version") == version) | pl.col("decided_by").is_in(decision_log.LOGGED_PATHS)
    )["trans_num"]
    unscored = live.filter(~pl.col("trans_num").is_in(done.implode())).height
    verdict = mon.completeness_check(unscored, live.height, version)
    return result(scored_transactions_complete, verdict, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset="decision_log",
    description="A decision was logged within the last FRAUD_FRESHNESS_MINUTES (passes while "
    "no decision service or stream consumer has ever logged one).",
)
def decision_log_fresh(
    warehouse: WarehouseResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    newest = decision_log.newest(warehouse.warehouse())
    if newest is None:
        verdict = mon.Verdict(True, "no decision has been logged yet", {})
    else:
        age = (utc_now() - newest).total_seconds() / 60
        verdict = mon.Verdict(
            age <= monitoring.freshness_minutes,
            f"the newest logged decision is {age:.1f} minutes old "
            f"(bound {monitoring.freshness_minutes})",
            {"age_minutes": age},
        )
    return result(decision_log_fresh, verdict, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset="decision_log",
    description="Every decision logged in the last two days, but the last few minutes, is in "
    "scored_transactions.",
)
def decisions_imported(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    now = utc_now()
    hours = hours_since(now - RECONCILE_LOOKBACK, now - dt.timedelta(minutes=10))
    pending = decision_log.pending_hours(warehouse.warehouse(), hours)
    missing = sum(logged - imported for logged, imported in pending.values())
    verdict = mon.Verdict(
        missing == 0,
        f"{missing} logged decisions in {len(pending)} hours are not in scored_transactions"
        + (f": materialize scored_transactions for {sorted(pending)[:5]}" if missing else ""),
        {"missing": missing, "hours": len(pending)},
    )
    return result(decisions_imported, verdict, dg.AssetCheckSeverity.WARN)


#: The checks that watch the whole platform.
PLATFORM_CHECKS = (
    live_data_fresh,
    payloads_reconciled,
    scored_transactions_complete,
    decision_log_fresh,
    decisions_imported,
    stream_lag_under_bound,
    dead_letters_under_rate,
)
