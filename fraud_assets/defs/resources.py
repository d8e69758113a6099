"""Connection settings as resources; the same keys serve local and production deployments."""

import datetime as dt

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from fraud_assets.lib.api import TransactionsClient
from fraud_assets.lib.landing import Feed
from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from fraud_assets.lib.warehouse import Warehouse


class ObjectStoreResource(dg.ConfigurableResource):
    """Object storage: an S3 bucket when ``bucket`` is set, else a local directory."""

    local_dir: str = Field(description="Directory used when no bucket is configured.")
    bucket: str | None = Field(default=None, description="S3 bucket (FRAUD_S3_BUCKET).")
    prefix: str = Field(default="fraud", description="Key prefix inside the bucket.")
    s3: S3Resource = Field(default_factory=S3Resource)

    def store(self) -> ObjectStore:
        if self.bucket:
            return S3ObjectStore(self.s3.get_client(), self.bucket, self.prefix)
        return LocalObjectStore(self.local_dir)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse database: PostgreSQL URL, or a local SQLite file."""

    url: str = Field(description="postgresql://… or sqlite:///path (FRAUD_DATABASE_URL).")
    db_schema: str = Field(default="public", description="Schema (FRAUD_DATABASE_SCHEMA).")

    def warehouse(self) -> Warehouse:
        return Warehouse(self.url, schema=self.db_schema)

    def describe(self) -> str:
        return redact(self.url)


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking server and registry, and where this project's models live in it."""

    tracking_uri: str = Field(description="MLFLOW_TRACKING_URI: sqlite:///… or http(s)://…")
    experiment: str = "fraud-detection"
    model_name: str = "fraud_rf"
    artifact_location: str | None = Field(
        default=None, description="Artifact root for a new experiment (local store only)."
    )
    cache_dir: str = Field(description="Local directory caching model files per version.")

    def describe(self) -> str:
        return redact(self.tracking_uri)

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"{self.describe().rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return None


class TransactionsApiResource(dg.ConfigurableResource):
    """The real-time transactions API (TRANSACTIONS_API_URL)."""

    base_url: str
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    min_interval_seconds: float = Field(
        default=12.0, description="At most one call per this many seconds (real limit ~5/min)."
    )
    budget_seconds: float = Field(
        default=30.0, description="Longest one tick may spend fetching (sensor deadline: 60 s)."
    )
    max_body_bytes: int = Field(default=1_000_000, description="Largest body read.")

    def client(self) -> TransactionsClient:
        return TransactionsClient(
            self.base_url,
            self.timeout_seconds,
            self.max_attempts,
            self.min_interval_seconds,
            budget_seconds=self.budget_seconds,
            max_body_bytes=self.max_body_bytes,
        )


class FeedResource(dg.ConfigurableResource):
    """The live feed: its time semantics and the bounds its rows must keep to."""

    semantics: str = Field(default="arrival", description="'arrival' or 'payload'.")
    event_time_field: str = Field(default="event_time")
    max_amount: float = Field(default=1_000_000.0, description="FRAUD_MAX_AMOUNT")
    max_clock_skew_hours: float = Field(default=24.0, description="FRAUD_MAX_CLOCK_SKEW_HOURS")
    max_payloads_per_run: int = Field(default=5000, description="FRAUD_MAX_PAYLOADS_PER_RUN")

    def feed(self) -> Feed:
        return Feed(self.semantics, self.event_time_field)

    def limits(self) -> Limits:
        return Limits(
            max_amount=self.max_amount, max_skew=dt.timedelta(hours=self.max_clock_skew_hours)
        )


class TrainingSourceResource(dg.ConfigurableResource):
    """Where the labelled training CSV comes from (FRAUD_TRAINING_DATA_URL)."""

    url: str


class MonitoringResource(dg.ConfigurableResource):
    """How the closed loop watches and alerts (FRAUD_LABEL_DELAY_HOURS, FRAUD_ALERT_*)."""

    label_delay_hours: float = Field(
        default=0.0, description="Hours before the API's label counts as known."
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="Slack-compatible webhook (FRAUD_ALERT_WEBHOOK_URL); log if unset.",
    )
    alert_window_minutes: int = Field(default=60, description="One alert per condition per window.")
    freshness_minutes: int = Field(default=30, description="No payload for this long is stale.")
    window_hours: float = Field(default=24.0, description="Recent window the checks look at.")
    history_days: int = Field(default=30, description="Days of labelled live rows for training.")

    def label_delay(self) -> dt.timedelta:
        return dt.timedelta(hours=self.label_delay_hours)

    def window(self) -> dt.timedelta:
        return dt.timedelta(hours=self.window_hours)
