"""Correcting the model between retrainings: the champion's decision re-chosen on live labels."""

import datetime as dt

import dagster as dg
import polars as pl

from fraud_assets.defs.resources import (
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    WarehouseResource,
)
from fraud_assets.lib import monitoring as mon
from fraud_assets.lib.calibration import recalibrate
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.lake import SERVED_PREFIX, hours_since, read_hours
from fraud_assets.lib.model import predict_raw


@dg.asset(kinds={"mlflow"}, deps=["scored_transactions"])
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
    model, champ = mlflow_registry.load_champion()
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
        raw, rows["is_fraud"].to_numpy(), rows["amt"].to_numpy(), champ.calibration, champ.decision
    )
    metadata = {
        "changed": new is not None,
        "reason": why,
        "labelled_rows": rows.height,
        "champion_version": champ.version,
    }
    if new is not None:
        reg = mlflow_registry.recalibrated(champ.version, new, why)
        mlflow_registry.promote(reg.version, f"recalibrated v{champ.version}: {why}")
        context.log.info(f"champion -> v{reg.version}: {why}")
        metadata["new_version"] = reg.version
    return dg.MaterializeResult(metadata=metadata)
