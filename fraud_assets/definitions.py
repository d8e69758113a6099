"""The code location: every asset, check, job and sensor, with resources chosen by environment."""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from fraud_assets import settings
from fraud_assets.defs.io_managers import ParquetIOManager, WarehouseIOManager
from fraud_assets.defs.jobs import challenger_job, scoring_job, training_job
from fraud_assets.defs.resources import (
    MlflowResource,
    ObjectStoreResource,
    TrainingSourceResource,
    TransactionsApiResource,
    WarehouseResource,
)
from fraud_assets.defs.scoring.assets import live_transactions, scored_transactions
from fraud_assets.defs.scoring.sensors import transactions_sensor
from fraud_assets.defs.training.assets import (
    champion_model,
    hgb_model,
    raw_training_data,
    rf_model,
)
from fraud_assets.defs.training.sensors import run_failure_reporter, training_bootstrap_sensor


def _secret(name: str, default: str) -> str | dg.EnvVar:
    """The variable itself (shown by name only) when set, else the local default."""
    return dg.EnvVar(name) if settings.env(name) else default


def build_resources() -> dict[str, object]:
    """One resource set; each part switches to production when its variable is set."""
    s3 = S3Resource(
        endpoint_url=settings.env("AWS_ENDPOINT_URL"),
        region_name=settings.env("AWS_REGION") or settings.env("AWS_DEFAULT_REGION"),
    )
    store = ObjectStoreResource(
        local_dir=str(settings.data_dir() / "objects"),
        bucket=settings.env("FRAUD_S3_BUCKET"),
        prefix=settings.env("FRAUD_S3_PREFIX") or "fraud",
        s3=s3,
    )
    warehouse = WarehouseResource(
        url=_secret("FRAUD_DATABASE_URL", settings.database_url()),
        db_schema=settings.database_schema(),
    )
    return {
        "object_store": store,
        "warehouse": warehouse,
        "parquet_io_manager": ParquetIOManager(store=store),
        "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
        "mlflow_registry": MlflowResource(
            tracking_uri=_secret("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri()),
            model_name=settings.model_name(),
            artifact_location=settings.mlflow_artifact_location(),
        ),
        "transactions_api": TransactionsApiResource(
            base_url=settings.transactions_api_url(),
            min_interval_seconds=float(settings.env("FRAUD_API_MIN_INTERVAL_SECONDS") or 12),
            timeout_seconds=float(settings.env("FRAUD_API_TIMEOUT_SECONDS") or 30),
        ),
        "training_source": TrainingSourceResource(
            url=_secret("FRAUD_TRAINING_DATA_URL", settings.training_data_url())
        ),
    }


defs = dg.Definitions(
    assets=[
        raw_training_data,
        rf_model,
        hgb_model,
        champion_model,
        live_transactions,
        scored_transactions,
    ],
    jobs=[training_job, challenger_job, scoring_job],
    sensors=[transactions_sensor, training_bootstrap_sensor, run_failure_reporter],
    resources=build_resources(),
)
