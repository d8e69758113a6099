"""The one configuration layer: every process (Dagster, the app, the launcher, the stand-in and
the benchmarks) reads its settings here, from the environment and ``.env``.

Each default lives in this file only. Setting a production variable (FRAUD_S3_BUCKET,
FRAUD_DATABASE_URL, MLFLOW_TRACKING_URI) moves that part onto the production service; unset,
it falls back to local files under FRAUD_DATA_DIR. Secret-bearing values reach Dagster as
``dg.EnvVar`` (see ``definitions.py``), so the UI shows the variable's name, never its value.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.streams import Topics

DEFAULT_API_URL = "http://127.0.0.1:8765"
ENV_FILE = ".env"
FeedSemantics = Literal["arrival", "payload"]

#: Variables whose values are secrets or may carry credentials: never shown, logged or stored.
SECRET_VARIABLES = (
    "FRAUD_DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "FRAUD_TRAINING_DATA_URL",
    "FRAUD_ALERT_WEBHOOK_URL",
    "AWS_SECRET_ACCESS_KEY",
    "FRAUD_APP_USERS",
)


def _var(name: str, *more: str) -> AliasChoices:
    return AliasChoices(name, *more)


class Settings(BaseSettings):
    """Every setting of the platform, by the environment variable that sets it."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- local state and sources ------------------------------------------------------------
    data_dir_raw: Path = Field(Path(".fraud_data"), validation_alias=_var("FRAUD_DATA_DIR"))
    training_data_url_raw: str | None = Field(
        None, validation_alias=_var("FRAUD_TRAINING_DATA_URL")
    )
    transactions_api_url: str = Field(
        DEFAULT_API_URL, validation_alias=_var("TRANSACTIONS_API_URL")
    )
    standin_push_rate: float = Field(
        2.0,
        ge=0,
        validation_alias=_var("FRAUD_STANDIN_PUSH_RATE"),
        description="make run: decisions a second the local stand-in pushes to the decision "
        "service (0: none).",
    )
    standin_publish_rate: float = Field(
        5.0,
        ge=0,
        validation_alias=_var("FRAUD_STANDIN_PUBLISH_RATE"),
        description="make run, with FRAUD_STREAM_URL set: transactions a second the local "
        "stand-in publishes to the stream's input topic (0: none).",
    )

    # --- the feed's time semantics ----------------------------------------------------------
    feed_semantics: FeedSemantics = Field(
        "arrival",
        validation_alias=_var("FRAUD_FEED_SEMANTICS"),
        description="'arrival': the feed has no true event time (the real API); 'payload': "
        "each row carries its event time in FRAUD_FEED_EVENT_TIME_FIELD.",
    )
    feed_event_time_field: str = Field(
        "event_time", validation_alias=_var("FRAUD_FEED_EVENT_TIME_FIELD")
    )

    # --- the API client and the sensor ------------------------------------------------------
    api_min_interval_seconds: float = Field(
        12.0, validation_alias=_var("FRAUD_API_MIN_INTERVAL_SECONDS")
    )
    api_timeout_seconds: float = Field(10.0, validation_alias=_var("FRAUD_API_TIMEOUT_SECONDS"))
    api_fetch_budget_seconds: float = Field(
        30.0, validation_alias=_var("FRAUD_API_FETCH_BUDGET_SECONDS")
    )
    api_max_body_bytes: int = Field(1_000_000, validation_alias=_var("FRAUD_API_MAX_BODY_BYTES"))
    poll_interval_seconds: int = Field(15, validation_alias=_var("FRAUD_POLL_INTERVAL_SECONDS"))
    calls_per_tick: int = Field(1, validation_alias=_var("FRAUD_CALLS_PER_TICK"))
    decisions_sensor_seconds: int = Field(
        5, validation_alias=_var("FRAUD_DECISIONS_SENSOR_SECONDS")
    )
    max_payloads_per_run: int = Field(5000, validation_alias=_var("FRAUD_MAX_PAYLOADS_PER_RUN"))

    # --- validation of live rows ------------------------------------------------------------
    max_amount: float = Field(1_000_000.0, validation_alias=_var("FRAUD_MAX_AMOUNT"))
    max_clock_skew_hours: float = Field(24.0, validation_alias=_var("FRAUD_MAX_CLOCK_SKEW_HOURS"))

    # --- object storage ---------------------------------------------------------------------
    s3_bucket: str | None = Field(None, validation_alias=_var("FRAUD_S3_BUCKET"))
    s3_prefix: str = Field("fraud", validation_alias=_var("FRAUD_S3_PREFIX"))
    aws_endpoint_url: str | None = Field(None, validation_alias=_var("AWS_ENDPOINT_URL"))
    aws_region: str | None = Field(None, validation_alias=_var("AWS_REGION", "AWS_DEFAULT_REGION"))

    # --- warehouse --------------------------------------------------------------------------
    database_url_raw: str | None = Field(None, validation_alias=_var("FRAUD_DATABASE_URL"))
    database_schema: str = Field("public", validation_alias=_var("FRAUD_DATABASE_SCHEMA"))

    # --- MLflow -----------------------------------------------------------------------------
    mlflow_tracking_uri_raw: str | None = Field(None, validation_alias=_var("MLFLOW_TRACKING_URI"))
    mlflow_artifact_root: str | None = Field(
        None, validation_alias=_var("FRAUD_MLFLOW_ARTIFACT_ROOT")
    )
    model_name: str = Field("fraud_rf", validation_alias=_var("FRAUD_MODEL_NAME"))

    # --- monitoring and the closed loop -----------------------------------------------------
    label_delay_hours: float = Field(0.0, validation_alias=_var("FRAUD_LABEL_DELAY_HOURS"))
    alert_webhook_url: str | None = Field(None, validation_alias=_var("FRAUD_ALERT_WEBHOOK_URL"))
    alert_window_minutes: int = Field(60, validation_alias=_var("FRAUD_ALERT_WINDOW_MINUTES"))
    freshness_minutes: int = Field(30, validation_alias=_var("FRAUD_FRESHNESS_MINUTES"))
    retrain_cron: str = Field("0 3 * * *", validation_alias=_var("FRAUD_RETRAIN_CRON"))
    monitoring_cron: str = Field("*/10 * * * *", validation_alias=_var("FRAUD_MONITORING_CRON"))
    alerts_interval_seconds: int = Field(60, validation_alias=_var("FRAUD_ALERTS_INTERVAL_SECONDS"))

    # --- the web app ------------------------------------------------------------------------
    app_refresh_seconds: float = Field(30.0, validation_alias=_var("FRAUD_APP_REFRESH_SECONDS"))
    app_server_name: str = Field("127.0.0.1", validation_alias=_var("GRADIO_SERVER_NAME"))
    app_server_port: int = Field(7860, validation_alias=_var("GRADIO_SERVER_PORT"))
    app_users: str | None = Field(None, validation_alias=_var("FRAUD_APP_USERS"))
    app_users_file: Path | None = Field(None, validation_alias=_var("FRAUD_APP_USERS_FILE"))
    app_allow_anonymous: bool = Field(False, validation_alias=_var("FRAUD_APP_ALLOW_ANONYMOUS"))
    app_rate_limit_per_minute: int = Field(
        120, validation_alias=_var("FRAUD_APP_RATE_LIMIT_PER_MINUTE")
    )
    app_snapshot_seconds: float = Field(5.0, validation_alias=_var("FRAUD_APP_SNAPSHOT_SECONDS"))
    app_trusted_proxies: str = Field("", validation_alias=_var("FRAUD_APP_TRUSTED_PROXIES"))
    app_session_hours: float = Field(12.0, gt=0, validation_alias=_var("FRAUD_APP_SESSION_HOURS"))

    # --- the decision service (decision_api) -------------------------------------------------
    decision_host: str = Field("127.0.0.1", validation_alias=_var("FRAUD_DECISION_HOST"))
    decision_port: int = Field(8080, validation_alias=_var("FRAUD_DECISION_PORT"))
    decision_clients: str | None = Field(
        None,
        validation_alias=_var("FRAUD_DECISION_CLIENTS"),
        description="Comma-separated name:sha256:<hex of the token's SHA-256> entries "
        "(`python -m decision_api token NAME` makes one); required off loopback.",
    )
    decision_disabled_clients: str = Field(
        "", validation_alias=_var("FRAUD_DECISION_DISABLED_CLIENTS")
    )
    decision_metrics_token: str | None = Field(
        None, validation_alias=_var("FRAUD_DECISION_METRICS_TOKEN")
    )
    decision_refresh_seconds: float = Field(
        10.0, gt=0, validation_alias=_var("FRAUD_DECISION_REFRESH_SECONDS")
    )
    decision_max_batch: int = Field(100, gt=0, validation_alias=_var("FRAUD_DECISION_MAX_BATCH"))
    decision_max_body_bytes: int = Field(
        262_144, gt=0, validation_alias=_var("FRAUD_DECISION_MAX_BODY_BYTES")
    )
    decision_rate_limit_per_minute: int = Field(
        600_000, validation_alias=_var("FRAUD_DECISION_RATE_LIMIT_PER_MINUTE")
    )
    decision_batch_wait_ms: float = Field(
        0.0, ge=0, validation_alias=_var("FRAUD_DECISION_BATCH_WAIT_MS")
    )
    decision_queue_size: int = Field(
        20_000, gt=0, validation_alias=_var("FRAUD_DECISION_QUEUE_SIZE")
    )
    decision_in_flight: int = Field(2, gt=0, validation_alias=_var("FRAUD_DECISION_IN_FLIGHT"))
    decision_workers: int = Field(1, gt=0, validation_alias=_var("FRAUD_DECISION_WORKERS"))
    decision_card_cache: int = Field(100_000, validation_alias=_var("FRAUD_DECISION_CARD_CACHE"))

    # --- the stream path (python -m decision_api consume) ------------------------------------
    stream_url: str | None = Field(
        None,
        validation_alias=_var("FRAUD_STREAM_URL"),
        description="nats://, redis://, amqp:// or kafka:// broker; unset, no stream path.",
    )
    stream_input: str = Field("transactions", validation_alias=_var("FRAUD_STREAM_INPUT"))
    stream_output: str = Field("decisions", validation_alias=_var("FRAUD_STREAM_OUTPUT"))
    stream_dead_letters: str = Field(
        "transactions-dead", validation_alias=_var("FRAUD_STREAM_DEAD_LETTERS")
    )
    stream_group: str = Field("fraud-deciders", validation_alias=_var("FRAUD_STREAM_GROUP"))
    stream_batch: int = Field(200, gt=0, validation_alias=_var("FRAUD_STREAM_BATCH"))
    stream_ack_wait_seconds: float = Field(
        8.0, gt=0, validation_alias=_var("FRAUD_STREAM_ACK_WAIT_SECONDS")
    )
    stream_metrics_port: int = Field(9108, validation_alias=_var("FRAUD_STREAM_METRICS_PORT"))
    stream_metrics_host: str = Field(
        "127.0.0.1",
        validation_alias=_var("FRAUD_STREAM_METRICS_HOST"),
        description="Where a stream worker serves its metrics; 0.0.0.0 in a pod, for the "
        "kubelet's probe and Prometheus (the metrics carry no secret; no token asked).",
    )
    stream_lag_bound: int = Field(10_000, validation_alias=_var("FRAUD_STREAM_LAG_BOUND"))
    stream_sensor_seconds: int = Field(30, validation_alias=_var("FRAUD_STREAM_SENSOR_SECONDS"))
    stream_dead_letter_bound: float = Field(
        0.01, validation_alias=_var("FRAUD_STREAM_DEAD_LETTER_RATE")
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info) -> object:  # noqa: ANN001
        """An empty variable (``FOO=`` in .env) means "use the default"."""
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name].default
        return value.strip() if isinstance(value, str) else value

    # --- derived values: each default in one place ------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.data_dir_raw.expanduser().resolve()

    @property
    def uses_local_standin(self) -> bool:
        """Whether the transactions API is the local stand-in (the embedded default)."""
        return self.transactions_api_url.rstrip("/") == DEFAULT_API_URL

    @property
    def training_data_url(self) -> str:
        return self.training_data_url_raw or f"{DEFAULT_API_URL}/files/fraudTrain.csv"

    @property
    def database_url(self) -> str:
        return self.database_url_raw or f"sqlite:///{self.data_dir / 'warehouse.db'}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri_raw or f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Artifact root for a new experiment: set for the local store, left to the server."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        if self.mlflow_tracking_uri_raw:
            return None
        return (self.data_dir / "mlartifacts").as_uri()

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "model_cache"

    @property
    def objects_dir(self) -> Path:
        """The local object store, when no bucket is set."""
        return self.data_dir / "objects"

    @property
    def spool_dir(self) -> Path:
        """Where fetched payloads wait while object storage is down."""
        return self.data_dir / "spool"

    def s3_client(self):  # noqa: ANN201 - a boto3 client
        """A boto3 S3 client for AWS_ENDPOINT_URL and AWS_REGION (credentials as boto3 finds
        them in the environment): what every process's object store uses."""
        import boto3

        return boto3.client("s3", endpoint_url=self.aws_endpoint_url, region_name=self.aws_region)

    def stream_topics(self) -> Topics:
        return Topics(self.stream_input, self.stream_output, self.stream_dead_letters)

    def row_limits(self) -> Limits:
        """The bounds a live row must keep to, for every path that takes one."""
        return Limits(
            max_amount=self.max_amount, max_skew=dt.timedelta(hours=self.max_clock_skew_hours)
        )

    def is_set(self, variable: str) -> bool:
        """Whether ``variable`` has a non-empty value (in the environment or ``.env``)."""
        return bool((os.environ.get(variable) or "").strip())


def load_settings() -> Settings:
    """Read the settings now (cheap; not cached, so tests may change the environment).

    ``.env`` values also go into this process's environment (without overriding what is
    set), so that child processes and Dagster's ``EnvVar`` see the same values.
    """
    if Path(ENV_FILE).is_file():
        for key, value in dotenv_values(ENV_FILE).items():
            if value is not None and value.strip():
                os.environ.setdefault(key, value)
    return Settings()
