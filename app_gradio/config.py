"""The app's clients, built from the platform's one configuration layer (fraud_assets.settings)."""

from __future__ import annotations

import os

from fraud_assets.lib.storage import ObjectStore, open_store
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.settings import Settings, load_settings

#: Where the training asset keeps its parsed frame (the Parquet IO manager's key).
TRAINING_DATA_KEY = "assets/raw_training_data.parquet"


def warehouse(config: Settings | None = None) -> Warehouse:
    config = config or load_settings()
    return Warehouse(config.database_url, schema=config.database_schema)


def object_store(config: Settings | None = None) -> ObjectStore:
    """The platform's object store: FRAUD_S3_BUCKET if set, else the local directory."""
    config = config or load_settings()
    return open_store(config.objects_dir, config.s3_bucket, config.s3_prefix, config.s3_client)


def disable_telemetry() -> None:
    """No analytics calls home (form inputs are personal data)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
