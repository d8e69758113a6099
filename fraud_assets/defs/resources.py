"""Connection settings as resources; the same keys serve local and production deployments.

Every value comes from ``fraud_assets.settings`` through ``definitions.build_resources``: no
default is repeated here. Resources do the work their assets need (``MlflowResource`` is the
registry), so a test can hand an asset a stub resource instead of a trained platform.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from fraud_assets.lib import registry
from fraud_assets.lib.api import TransactionsClient
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.landing import Feed
from fraud_assets.lib.model import TrainResult
from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.serving import ServingModel
from fraud_assets.lib.storage import ObjectStore, open_store
from fraud_assets.lib.streams import Topics
from fraud_assets.lib.warehouse import Warehouse


class ObjectStoreResource(dg.ConfigurableResource):
    """Object storage: an S3 bucket when ``bucket`` is set, else a local directory."""

    local_dir: str = Field(description="Directory used when no bucket is configured.")
    bucket: str | None = Field(description="S3 bucket (FRAUD_S3_BUCKET).")
    prefix: str = Field(description="Key prefix inside the bucket (FRAUD_S3_PREFIX).")
    s3: S3Resource

    def store(self) -> ObjectStore:
        return open_store(self.local_dir, self.bucket, self.prefix, self.s3.get_client)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse database: PostgreSQL URL, or a local SQLite file."""

    url: str = Field(description="postgresql://… or sqlite:///path (FRAUD_DATABASE_URL).")
    db_schema: str = Field(description="Schema (FRAUD_DATABASE_SCHEMA).")

    def warehouse(self) -> Warehouse:
        return Warehouse(self.url, schema=self.db_schema)

    def describe(self) -> str:
        return redact(self.url)


class MlflowResource(dg.ConfigurableResource):
    """The MLflow tracking server and registry (``lib/registry.py``), and where this project's
    models live in it. Assets ask it for the champion, register and promote through it."""

    tracking_uri: str = Field(description="MLFLOW_TRACKING_URI: sqlite:///… or http(s)://…")
    model_name: str = Field(description="FRAUD_MODEL_NAME")
    cache_dir: str = Field(description="Local directory caching model files per version.")
    artifact_location: str | None = Field(
        default=None, description="Artifact root for a new experiment (local store only)."
    )
    experiment: str = "fraud-detection"

    def describe(self) -> str:
        return redact(self.tracking_uri)

    def champion(self) -> registry.RegisteredModel | None:
        """The champion with its run's metrics; None when the registry has none."""
        return registry.get_champion(self.tracking_uri, self.model_name)

    def pointer(self) -> registry.RegisteredModel | None:
        """The champion's version and tags, read the light way (no MLflow import)."""
        return registry.champion_pointer(self.tracking_uri, self.model_name)

    def version(self, version: str) -> registry.RegisteredModel:
        return registry.get_version(self.tracking_uri, self.model_name, version)

    def load_champion(self) -> tuple[ServingModel, registry.RegisteredModel]:
        """The champion ready to serve, from the local cache; NoChampionError if none."""
        return registry.load_champion(self.tracking_uri, self.model_name, Path(self.cache_dir))

    def pipeline(self, info: registry.RegisteredModel):  # noqa: ANN201
        """The fitted pipeline of a registered version, verified against its digest."""
        return registry.cached_pipeline(
            Path(self.cache_dir),
            self.tracking_uri,
            info.name,
            info.version,
            info.tags.get(registry.DIGEST_TAG),
        )

    def register(
        self, result: TrainResult, tags: dict[str, str], artifacts: dict[str, bytes]
    ) -> registry.RegisteredModel:
        return registry.log_and_register(
            result,
            tracking_uri=self.tracking_uri,
            experiment=self.experiment,
            model_name=self.model_name,
            artifact_location=self.artifact_location,
            tags=tags,
            artifacts=artifacts,
        )

    def tag(self, version: str, tags: dict[str, str]) -> None:
        registry.set_version_tags(self.tracking_uri, self.model_name, version, tags)

    def promote(self, version: str, reason: str) -> None:
        registry.promote(self.tracking_uri, self.model_name, version, reason, _now())

    def rollback(self, reason: str) -> tuple[str, str]:
        return registry.rollback(self.tracking_uri, self.model_name, reason, _now())

    def recalibrated(self, version: str, calibration, reason: str) -> registry.RegisteredModel:  # noqa: ANN001
        return registry.register_recalibrated(
            self.tracking_uri, self.model_name, version, calibration, reason
        )

    def run_url(self, run_id: str) -> str | None:
        """The MLflow UI's page of a run (a tracking server only)."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        experiment = registry.ensure_experiment(
            self.tracking_uri, self.experiment, self.artifact_location
        )
        return f"{self.describe().rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def _now() -> str:
    return utc_now().isoformat(timespec="seconds")


class TransactionsApiResource(dg.ConfigurableResource):
    """The real-time transactions API (TRANSACTIONS_API_URL)."""

    base_url: str
    timeout_seconds: float = Field(description="FRAUD_API_TIMEOUT_SECONDS")
    min_interval_seconds: float = Field(
        description="At most one call per this many seconds (FRAUD_API_MIN_INTERVAL_SECONDS)."
    )
    budget_seconds: float = Field(
        description="Longest one tick may spend fetching (FRAUD_API_FETCH_BUDGET_SECONDS)."
    )
    max_body_bytes: int = Field(description="Largest body read (FRAUD_API_MAX_BODY_BYTES).")
    calls_per_tick: int = Field(description="Calls per sensor tick (FRAUD_CALLS_PER_TICK).")
    max_attempts: int = 3

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

    semantics: str = Field(description="FRAUD_FEED_SEMANTICS: 'arrival' or 'payload'.")
    event_time_field: str = Field(description="FRAUD_FEED_EVENT_TIME_FIELD")
    max_amount: float = Field(description="FRAUD_MAX_AMOUNT")
    max_clock_skew_hours: float = Field(description="FRAUD_MAX_CLOCK_SKEW_HOURS")
    max_payloads_per_run: int = Field(description="FRAUD_MAX_PAYLOADS_PER_RUN")
    spool_dir: str = Field(description="Where payloads wait while object storage is down.")

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

    label_delay_hours: float = Field(description="Hours before the API's label counts.")
    alert_webhook_url: str | None = Field(
        description="Slack-compatible webhook (FRAUD_ALERT_WEBHOOK_URL); the log if unset."
    )
    alert_window_minutes: int = Field(description="One alert per condition per window.")
    freshness_minutes: int = Field(description="No payload for this long is stale.")
    window_hours: float = Field(default=24.0, description="Recent window the checks look at.")
    history_days: int = Field(default=30, description="Days of labelled live rows to train on.")

    def label_delay(self) -> dt.timedelta:
        return dt.timedelta(hours=self.label_delay_hours)

    def window(self) -> dt.timedelta:
        return dt.timedelta(hours=self.window_hours)


class StreamResource(dg.ConfigurableResource):
    """The stream path's broker, as Dagster watches it (FRAUD_STREAM_*); ``url`` None when the
    platform has no stream path."""

    url: str | None = Field(description="FRAUD_STREAM_URL (nats://, redis://, amqp://, kafka://)")
    input: str = Field(description="FRAUD_STREAM_INPUT")
    output: str = Field(description="FRAUD_STREAM_OUTPUT")
    dead_letters: str = Field(description="FRAUD_STREAM_DEAD_LETTERS")
    group: str = Field(description="FRAUD_STREAM_GROUP")
    lag_bound: int = Field(description="FRAUD_STREAM_LAG_BOUND")
    dead_letter_rate: float = Field(description="FRAUD_STREAM_DEAD_LETTER_RATE")

    def topics(self) -> Topics:
        return Topics(self.input, self.output, self.dead_letters)
