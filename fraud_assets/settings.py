"""Environment variables and their embedded defaults: the one place deployments differ.

Setting a production variable (FRAUD_S3_BUCKET, FRAUD_DATABASE_URL, MLFLOW_TRACKING_URI) moves
that part onto the production service; unset, it falls back to local files under
FRAUD_DATA_DIR. Secret-bearing values reach Dagster as ``dg.EnvVar``, so the UI shows the
variable's name, never its value.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_API_URL = "http://127.0.0.1:8765"


def data_dir() -> Path:
    """Local state directory (FRAUD_DATA_DIR, default ``./.fraud_data``)."""
    return Path(os.environ.get("FRAUD_DATA_DIR", ".fraud_data")).expanduser().resolve()


def env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def training_data_url() -> str:
    return env("FRAUD_TRAINING_DATA_URL") or f"{DEFAULT_API_URL}/files/fraudTrain.csv"


def transactions_api_url() -> str:
    return env("TRANSACTIONS_API_URL") or DEFAULT_API_URL


def database_url() -> str:
    return env("FRAUD_DATABASE_URL") or f"sqlite:///{data_dir() / 'warehouse.db'}"


def database_schema() -> str:
    return env("FRAUD_DATABASE_SCHEMA") or "public"


def mlflow_tracking_uri() -> str:
    return env("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir() / 'mlflow.db'}"


def mlflow_artifact_location() -> str | None:
    """Artifact root for a new experiment: set for the local store, left to the server else."""
    if env("FRAUD_MLFLOW_ARTIFACT_ROOT"):
        return env("FRAUD_MLFLOW_ARTIFACT_ROOT")
    if env("MLFLOW_TRACKING_URI"):
        return None
    return (data_dir() / "mlartifacts").as_uri()


def model_name() -> str:
    return env("FRAUD_MODEL_NAME") or "fraud_rf"
