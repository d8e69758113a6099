"""The app's configuration, read only from environment variables (see .env.example)."""

from __future__ import annotations

import os

from fraud_assets import settings
from fraud_assets.lib.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from fraud_assets.lib.warehouse import Warehouse

#: Where the training asset keeps its parsed frame (the Parquet IO manager's key).
TRAINING_DATA_KEY = "assets/raw_training_data.parquet"


def refresh_seconds() -> float:
    """Dashboard auto-refresh interval (FRAUD_APP_REFRESH_SECONDS, default 30)."""
    return float(settings.env("FRAUD_APP_REFRESH_SECONDS") or 30)


def server_name() -> str:
    """Bind address: Gradio's GRADIO_SERVER_NAME, else loopback only."""
    return settings.env("GRADIO_SERVER_NAME") or "127.0.0.1"


def auth() -> tuple[str, str] | None:
    """Optional login: FRAUD_APP_USERNAME and FRAUD_APP_PASSWORD, both set, or no login."""
    user, password = settings.env("FRAUD_APP_USERNAME"), settings.env("FRAUD_APP_PASSWORD")
    return (user, password) if user and password else None


def warehouse() -> Warehouse:
    return Warehouse(settings.database_url(), schema=settings.database_schema())


def object_store() -> ObjectStore:
    """The platform's object store: FRAUD_S3_BUCKET if set, else the local directory."""
    bucket = settings.env("FRAUD_S3_BUCKET")
    if bucket:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=settings.env("AWS_ENDPOINT_URL"),
            region_name=settings.env("AWS_REGION") or settings.env("AWS_DEFAULT_REGION"),
        )
        return S3ObjectStore(client, bucket, settings.env("FRAUD_S3_PREFIX") or "fraud")
    return LocalObjectStore(settings.data_dir() / "objects")


def disable_telemetry() -> None:
    """No analytics calls home (form inputs are personal data)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
