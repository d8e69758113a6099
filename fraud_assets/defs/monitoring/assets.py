"""Monitoring: live performance by day and model version, feature drift, and their checks
(the alert sensor watches them). Decisions live in ``lib/monitoring.py``; this is wiring."""

import datetime as dt
import uuid
from collections.abc import Iterator

import dagster as dg
import polars as pl

from fraud_assets.defs.metadata import check_result, image
from fraud_assets.defs.resources import (
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    WarehouseResource,
)
from fraud_assets.lib import monitoring as mon
from fraud_assets.lib import registry
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.features import feature_set
from fraud_assets.lib.lake import SERVED_PREFIX, hours_since, read_hours
from fraud_assets.lib.schema import (
    FEATURE_DRIFT_SCHEMA,
    LIVE_PERFORMANCE_SCHEMA,
)

PERFORMANCE_TABLE, DRIFT_TABLE = "live_performance", "feature_drift"


FLAG_RATE_CHECK = dg.AssetCheckSpec(
    "flag_rate_within_bounds",
    asset="live_performance",
    description="The champion's flag rate over the recent window is within the bounds learned "
    "at training (a third to three times its validation flag rate).",
)
PERFORMANCE_CHECK = dg.AssetCheckSpec(
    "model_performance_holding",
    asset="live_performance",
    description="Delayed labels do not say the model is failing (precision or recall below "
    "half of validation).",
)
DRIFT_CHECK = dg.AssetCheckSpec(
    "drift_under_threshold",
    asset="feature_drift",
    description=f"No model feature, nor the score, has PSI >= {mon.PSI_THRESHOLD} against the "
    "champion's training reference.",
)


@dg.asset(
    kinds={"sql", "polars"},
    deps=["scored_transactions"],
    check_specs=[FLAG_RATE_CHECK, PERFORMANCE_CHECK],
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
    champ = mlflow_registry.champion()
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
    yield check_result(
        FLAG_RATE_CHECK.key,
        mon.flag_rate_check(flagged, current.height, expected),
        dg.AssetCheckSeverity.ERROR,
    )
    yield check_result(
        PERFORMANCE_CHECK.key,
        mon.performance_check(
            current,
            champ.metrics.get("val_precision", 0.0) if champ else 0.0,
            champ.metrics.get("val_recall", 0.0) if champ else 0.0,
        ),
        dg.AssetCheckSeverity.ERROR,
    )


@dg.asset(
    kinds={"polars", "sql"},
    deps=["scored_transactions"],
    check_specs=[DRIFT_CHECK],
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
    champ = mlflow_registry.champion()
    if champ is None:
        raise dg.Failure("no champion model: nothing to measure drift against", allow_retries=False)
    ref_key = registry.reference_key(champ.name, champ.version)
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
    yield check_result(
        DRIFT_CHECK.key, mon.drift_check(scores, current.height), dg.AssetCheckSeverity.ERROR
    )
