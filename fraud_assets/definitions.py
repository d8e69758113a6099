"""The code location: every asset, check, job and sensor, with resources chosen by environment."""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from fraud_assets.defs.io_managers import ParquetIOManager
from fraud_assets.defs.jobs import (
    challenger_job,
    monitoring_job,
    recalibration_job,
    retraining_job,
    scoring_job,
    training_job,
)
from fraud_assets.defs.monitoring.assets import MONITORING_CHECKS, feature_drift, live_performance
from fraud_assets.defs.monitoring.loop import champion_calibration, rollback_job
from fraud_assets.defs.monitoring.sensors import (
    alerts_sensor,
    monitoring_schedule,
    retraining_schedule,
    run_failure_alerts,
)
from fraud_assets.defs.resources import (
    FeedResource,
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    TrainingSourceResource,
    TransactionsApiResource,
    WarehouseResource,
)
from fraud_assets.defs.scoring.assets import live_transactions, scored_transactions
from fraud_assets.defs.scoring.decisions import (
    decision_log_asset,
    decision_log_fresh,
    decisions_imported,
    decisions_sensor,
)
from fraud_assets.defs.scoring.sensors import transactions_sensor
from fraud_assets.defs.training.assets import (
    card_state,
    champion_model,
    hgb_model,
    live_training_rows,
    raw_training_data,
    rf_model,
)
from fraud_assets.defs.training.sensors import training_bootstrap_sensor
from fraud_assets.settings import Settings, load_settings


def _secret(config: Settings, name: str, default: str) -> str | dg.EnvVar:
    """The variable itself (shown by name only) when set, else the local default."""
    return dg.EnvVar(name) if config.is_set(name) else default


def build_resources(config: Settings | None = None) -> dict[str, object]:
    """One resource set; each part switches to production when its variable is set."""
    config = config or load_settings()
    s3 = S3Resource(endpoint_url=config.aws_endpoint_url, region_name=config.aws_region)
    store = ObjectStoreResource(
        local_dir=str(config.data_dir / "objects"),
        bucket=config.s3_bucket,
        prefix=config.s3_prefix,
        s3=s3,
    )
    warehouse = WarehouseResource(
        url=_secret(config, "FRAUD_DATABASE_URL", config.database_url),
        db_schema=config.database_schema,
    )
    return {
        "object_store": store,
        "warehouse": warehouse,
        "parquet_io_manager": ParquetIOManager(store=store),
        "mlflow_registry": MlflowResource(
            tracking_uri=_secret(config, "MLFLOW_TRACKING_URI", config.mlflow_tracking_uri),
            model_name=config.model_name,
            artifact_location=config.mlflow_artifact_location,
            cache_dir=str(config.model_cache_dir),
        ),
        "feed": FeedResource(
            semantics=config.feed_semantics,
            event_time_field=config.feed_event_time_field,
            max_amount=config.max_amount,
            max_clock_skew_hours=config.max_clock_skew_hours,
            max_payloads_per_run=config.max_payloads_per_run,
        ),
        "transactions_api": TransactionsApiResource(
            base_url=config.transactions_api_url,
            min_interval_seconds=config.api_min_interval_seconds,
            timeout_seconds=config.api_timeout_seconds,
            budget_seconds=config.api_fetch_budget_seconds,
            max_body_bytes=config.api_max_body_bytes,
        ),
        "monitoring": MonitoringResource(
            label_delay_hours=config.label_delay_hours,
            alert_webhook_url=_secret(config, "FRAUD_ALERT_WEBHOOK_URL", "")
            if config.alert_webhook_url
            else None,
            alert_window_minutes=config.alert_window_minutes,
            freshness_minutes=config.freshness_minutes,
        ),
        "training_source": TrainingSourceResource(
            url=_secret(config, "FRAUD_TRAINING_DATA_URL", config.training_data_url)
        ),
    }


defs = dg.Definitions(
    assets=[
        raw_training_data,
        card_state,
        live_training_rows,
        rf_model,
        hgb_model,
        champion_model,
        live_transactions,
        decision_log_asset,
        scored_transactions,
        live_performance,
        feature_drift,
        champion_calibration,
    ],
    asset_checks=[*MONITORING_CHECKS, decision_log_fresh, decisions_imported],
    jobs=[
        training_job,
        retraining_job,
        challenger_job,
        recalibration_job,
        monitoring_job,
        scoring_job,
        rollback_job,
    ],
    sensors=[
        transactions_sensor,
        decisions_sensor,
        training_bootstrap_sensor,
        alerts_sensor,
        run_failure_alerts,
    ],
    schedules=[monitoring_schedule, retraining_schedule],
    resources=build_resources(),
)
