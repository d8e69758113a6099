"""Monitoring: live performance by day and model version, feature drift, and the checks the
alert sensor watches. Decisions live in ``lib/monitoring.py``; this is wiring."""

import datetime as dt
import uuid
from collections.abc import Iterator

import dagster as dg
import polars as pl

from fraud_assets.defs.metadata import image
from fraud_assets.defs.resources import (
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    WarehouseResource,
)
from fraud_assets.defs.training.assets import reference_key
from fraud_assets.lib import monitoring as mon
from fraud_assets.lib import registry
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.features import feature_set
from fraud_assets.lib.ingest import LIVE_TABLE, stranded_keys
from fraud_assets.lib.lake import SERVED_PREFIX, hours_since, read_hours
from fraud_assets.lib.landing import LANDING_PREFIX, arrival_or_none, hour_prefix
from fraud_assets.lib.schema import (
    FEATURE_DRIFT_SCHEMA,
    LIVE_PERFORMANCE_SCHEMA,
    LIVE_TRANSACTIONS_SCHEMA,
)

PERFORMANCE_TABLE, DRIFT_TABLE = "live_performance", "feature_drift"


def _champion(mlflow_registry: MlflowResource) -> registry.RegisteredModel | None:
    return registry.get_champion(mlflow_registry.tracking_uri, mlflow_registry.model_name)


def _result(name: str, verdict: mon.Verdict, severity: dg.AssetCheckSeverity, asset: str):  # noqa: ANN202
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=verdict.passed,
        severity=severity,
        metadata={"reason": verdict.reason, **{k: float(v) for k, v in verdict.figures.items()}},
    )


@dg.asset(
    group_name="monitoring",
    kinds={"sql", "polars"},
    deps=["scored_transactions"],
    check_specs=[
        dg.AssetCheckSpec(
            "flag_rate_within_bounds",
            asset="live_performance",
            description="The champion's flag rate over the recent window is within the bounds "
            "learned at training (a third to three times its validation flag rate).",
        ),
        dg.AssetCheckSpec(
            "model_performance_holding",
            asset="live_performance",
            description="Delayed labels do not say the model is failing (precision or recall "
            "below half of validation).",
        ),
    ],
    pool="warehouse",
)
def live_performance(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
    monitoring: MonitoringResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Precision, recall, AP, flag rate and cost of the scores against the labels, per arrival
    day and model version (table ``live_performance``; every figure kept for trends). Labels
    count only after the label delay; an analyst's verdict overrides the API's. Days whose
    labels may still change (within the delay) are recomputed; older days are kept."""
    now, wh = utc_now(), warehouse.warehouse()
    since = (now - monitoring.label_delay() - dt.timedelta(days=1)).replace(hour=0, minute=0)
    window = max(now - since, monitoring.window())
    labelled = mon.labelled_recent(wh, now, window, monitoring.label_delay())
    champ = _champion(mlflow_registry)
    review_cost = champ.decision.review_cost if champ else 5.0
    daily = mon.daily_performance(labelled, review_cost, now)
    wh.ensure_table(PERFORMANCE_TABLE, LIVE_PERFORMANCE_SCHEMA, key="perf_key", indexes=["day"])
    wh.upsert(PERFORMANCE_TABLE, daily, key="perf_key")
    history = wh.read(PERFORMANCE_TABLE, LIVE_PERFORMANCE_SCHEMA).sort("day")
    recent = labelled.filter(pl.col("arrived_at") >= now - monitoring.window())
    current = recent.filter(pl.col("model_version") == (champ.version if champ else ""))
    metadata: dict[str, object] = {
        "dagster/row_count": daily.height,
        "rows_in_window": recent.height,
        "labelled_in_window": int(recent["label"].is_not_null().sum()) if recent.height else 0,
        "champion_version": champ.version if champ else "none",
    }
    if history.height:
        from fraud_assets.lib.plots import performance_png

        metadata["trend"] = image(performance_png(history), "live performance")
    yield dg.MaterializeResult(metadata=metadata)
    expected = champ.tag_float("val_flag_rate", 0.01) if champ else 0.01
    flagged = int(current["is_flagged"].sum()) if current.height else 0
    yield _result(
        "flag_rate_within_bounds",
        mon.flag_rate_check(flagged, current.height, expected),
        dg.AssetCheckSeverity.ERROR,
        "live_performance",
    )
    yield _result(
        "model_performance_holding",
        mon.performance_check(
            current,
            champ.metrics.get("val_precision", 0.0) if champ else 0.0,
            champ.metrics.get("val_recall", 0.0) if champ else 0.0,
        ),
        dg.AssetCheckSeverity.ERROR,
        "live_performance",
    )


@dg.asset(
    group_name="monitoring",
    kinds={"polars", "sql"},
    deps=["scored_transactions"],
    check_specs=[
        dg.AssetCheckSpec(
            "drift_under_threshold",
            asset="feature_drift",
            description=f"No model feature, nor the score, has PSI >= {mon.PSI_THRESHOLD} against "
            "the champion's training reference.",
        )
    ],
    pool="warehouse",
)
def feature_drift(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    mlflow_registry: MlflowResource,
    monitoring: MonitoringResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """PSI (evidently's PSI test) of each model feature and of the score: the rows the champion
    served over the recent window against the reference rows kept with it at training (its
    validation window, as served). Every run's figures are kept (table ``feature_drift``)."""
    now, wh, store = utc_now(), warehouse.warehouse(), object_store.store()
    champ = _champion(mlflow_registry)
    if champ is None:
        raise dg.Failure("no champion model: nothing to measure drift against", allow_retries=False)
    ref_key = reference_key(champ.name, champ.version)
    if not store.exists(ref_key):
        raise dg.Failure(
            f"champion v{champ.version} has no reference rows at {ref_key}", allow_retries=False
        )
    reference = store.get_parquet(ref_key)
    served = read_hours(store, SERVED_PREFIX, hours_since(now - monitoring.window(), now))
    current = served.filter(pl.col("model_version") == champ.version) if served.height else served
    scored = mon.recent_scored(wh, now - monitoring.window())
    columns = list(feature_set(champ.feature_set_version).features)
    scores = mon.psi(reference, current, columns) if current.height else {}
    mine = scored.filter(pl.col("model_version") == champ.version)
    if mine.height:
        scores |= mon.psi(reference, mine, ["fraud_probability"])
    rows = mon.drift_rows(
        scores, champ.version, uuid.uuid4().hex[:12], now, reference.height, current.height
    )
    wh.ensure_table(DRIFT_TABLE, FEATURE_DRIFT_SCHEMA, key="drift_key", indexes=["computed_at"])
    wh.upsert(DRIFT_TABLE, rows, key="drift_key")
    top = sorted(scores.items(), key=lambda kv: -kv[1])[:10]
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows.height,
            "current_rows": current.height,
            "reference_rows": reference.height,
            "champion_version": champ.version,
            "largest_psi": dg.MetadataValue.md(
                "| feature | PSI |\n|---|---|\n" + "\n".join(f"| {k} | {v:.3f} |" for k, v in top)
            ),
        }
    )
    yield _result(
        "drift_under_threshold",
        mon.drift_check(scores, current.height),
        dg.AssetCheckSeverity.ERROR,
        "feature_drift",
    )


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
    return _result("live_data_fresh", verdict, dg.AssetCheckSeverity.ERROR, "live_transactions")


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
    return _result("payloads_reconciled", verdict, dg.AssetCheckSeverity.ERROR, "live_transactions")


@dg.asset_check(
    asset="scored_transactions",
    description="Every live row of the recent window is scored by the current champion.",
)
def scored_transactions_complete(
    warehouse: WarehouseResource, mlflow_registry: MlflowResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    now, wh = utc_now(), warehouse.warehouse()
    champ = _champion(mlflow_registry)
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
    done = scored.filter(pl.col("model_version") == version)["trans_num"]
    unscored = live.filter(~pl.col("trans_num").is_in(done.implode())).height
    verdict = mon.completeness_check(unscored, live.height, version)
    return _result(
        "scored_transactions_complete", verdict, dg.AssetCheckSeverity.WARN, "scored_transactions"
    )


MONITORING_CHECKS = [live_data_fresh, payloads_reconciled, scored_transactions_complete]
