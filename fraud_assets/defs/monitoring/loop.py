"""Correcting the model: re-choosing the decision on live labels, and rolling back."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from fraud_assets.defs.resources import (
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    WarehouseResource,
)
from fraud_assets.lib import monitoring as mon
from fraud_assets.lib import registry
from fraud_assets.lib.calibration import recalibrate
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.lake import SERVED_PREFIX, hours_since, read_hours
from fraud_assets.lib.model import predict_raw


@dg.asset(group_name="monitoring", kinds={"mlflow"}, deps=["scored_transactions"])
def champion_calibration(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    mlflow_registry: MlflowResource,
    monitoring: MonitoringResource,
) -> dg.MaterializeResult:
    """Between retrainings, the champion's decision re-chosen on recent labelled live rows with
    the same cost rule: its probabilities' log-odds shift re-fitted to the live labels (the
    ranking is kept). When that costs less on those rows, it is registered as a new version
    of the same model file and made champion, with the reason recorded; otherwise nothing
    changes."""
    uri, name = mlflow_registry.tracking_uri, mlflow_registry.model_name
    model, champ = registry.load_champion(uri, name, Path(mlflow_registry.cache_dir))
    now = utc_now()
    since = now - dt.timedelta(days=monitoring.history_days)
    labelled = mon.labelled_recent(
        warehouse.warehouse(), now, now - since, monitoring.label_delay()
    )
    served = read_hours(object_store.store(), SERVED_PREFIX, hours_since(since, now))
    rows = mon.labelled_served_rows(served, labelled, champ.feature_set_version)
    if rows.height:
        rows = rows.filter(pl.col("model_version") == champ.version)
    if rows.height == 0:
        return dg.MaterializeResult(metadata={"changed": False, "reason": "no labelled rows"})
    raw = predict_raw(model.pipeline, model.feature_set, rows)
    new, why = recalibrate(
        raw,
        rows["is_fraud"].to_numpy(),
        rows["amt"].to_numpy(),
        champ.calibration,
        champ.decision,
    )
    metadata = {
        "changed": new is not None,
        "reason": why,
        "labelled_rows": rows.height,
        "champion_version": champ.version,
    }
    if new is not None:
        reg = registry.register_recalibrated(uri, name, champ.version, new, why)
        registry.promote(
            uri,
            name,
            reg.version,
            f"recalibrated v{champ.version}: {why}",
            now.isoformat(timespec="seconds"),
        )
        context.log.info(f"champion -> v{reg.version}: {why}")
        metadata["new_version"] = reg.version
    return dg.MaterializeResult(metadata=metadata)


class RollbackConfig(dg.Config):
    """Why the champion is being rolled back (recorded in the champion history)."""

    reason: str


@dg.op
def rollback_champion(
    context: dg.OpExecutionContext, config: RollbackConfig, mlflow_registry: MlflowResource
) -> None:
    """Give the champion alias back to the previous champion and record why."""
    before, after = registry.rollback(
        mlflow_registry.tracking_uri,
        mlflow_registry.model_name,
        config.reason,
        utc_now().isoformat(timespec="seconds"),
    )
    context.log.info(f"champion rolled back from v{before} to v{after}: {config.reason}")
    context.add_output_metadata({"from_version": before, "to_version": after})


@dg.job(
    description="Restore the previous champion (config: reason). Scoring picks it up at "
    "its next run; re-score with a backfill of scored_transactions."
)
def rollback_job() -> None:
    rollback_champion()
