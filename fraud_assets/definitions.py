"""The code location: each domain folder of ``defs/`` brings its own assets, checks, jobs,
sensors and schedules, grouped by the folder they live in; one resource set, built from the
settings, serves them all (each part switches to production when its variable is set)."""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from fraud_assets.defs import monitoring, scoring, training
from fraud_assets.defs.io_managers import ParquetIOManager
from fraud_assets.defs.resources import (
    FeedResource,
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    StreamResource,
    TrainingSourceResource,
    TransactionsApiResource,
    WarehouseResource,
)
from fraud_assets.settings import Settings, load_settings

#: The domain folders of ``defs/``: each asset's group is its folder's name.
DOMAINS = (training, scoring, monitoring)


def _secret(config: Settings, name: str, default: str) -> str | dg.EnvVar:
    """The variable itself (shown by name only) when set, else the local default."""
    return dg.EnvVar(name) if config.is_set(name) else default


def build_resources(config: Settings | None = None) -> dict[str, object]:
    """One resource set; each part switches to production when its variable is set."""
    config = config or load_settings()
    s3 = S3Resource(endpoint_url=config.aws_endpoint_url, region_name=config.aws_region)
    store = ObjectStoreResource(
        local_dir=str(config.objects_dir), bucket=config.s3_bucket, prefix=config.s3_prefix, s3=s3
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
            spool_dir=str(config.spool_dir),
        ),
        "transactions_api": TransactionsApiResource(
            base_url=config.transactions_api_url,
            min_interval_seconds=config.api_min_interval_seconds,
            timeout_seconds=config.api_timeout_seconds,
            budget_seconds=config.api_fetch_budget_seconds,
            max_body_bytes=config.api_max_body_bytes,
            calls_per_tick=config.calls_per_tick,
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
        "stream": StreamResource(
            url=_secret(config, "FRAUD_STREAM_URL", "") if config.stream_url else None,
            input=config.stream_input,
            output=config.stream_output,
            dead_letters=config.stream_dead_letters,
            group=config.stream_group,
            lag_bound=config.stream_lag_bound,
            dead_letter_rate=config.stream_dead_letter_bound,
        ),
    }


def build_definitions(config: Settings | None = None) -> dg.Definitions:
    """The code location for ``config`` (default: the environment and ``.env``)."""
    config = config or load_settings()
    domains = [package.definitions(config) for package in DOMAINS]
    return dg.Definitions.merge(*domains, dg.Definitions(resources=build_resources(config)))


defs = build_definitions()
