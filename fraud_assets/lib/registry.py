"""MLflow tracking and model registry: log a trained model, find and load the champion."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.lib.features import FEATURE_SET_VERSION, FEATURES
from fraud_assets.lib.model import TrainResult

CHAMPION = "champion"
log = logging.getLogger(__name__)


class NoChampionError(LookupError):
    """The registry holds no model with the champion alias."""


@dataclass(frozen=True)
class RegisteredModel:
    """One registered version and what serving needs to know about it."""

    name: str
    version: str
    run_id: str
    threshold: float
    feature_set_version: str
    metrics: dict[str, float]


def _client(tracking_uri: str):  # noqa: ANN202
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    """The experiment id, creating it (with the given artifact root) when missing."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def log_and_register(
    result: TrainResult,
    example: pl.DataFrame,
    *,
    tracking_uri: str,
    experiment: str,
    model_name: str,
    artifact_location: str | None,
    tags: dict[str, str] | None = None,
) -> RegisteredModel:
    """Log params, metrics and the model (with signature and input example) and register it."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    exp_id = ensure_experiment(tracking_uri, experiment, artifact_location)
    metrics = {f"val_{k}": float(v) for k, v in result.validation.as_dict().items()}
    metrics["fit_seconds"] = result.fit_seconds
    x_example = example.select(FEATURES).to_pandas()
    signature = infer_signature(x_example, np.zeros(len(x_example)))
    with mlflow.start_run(experiment_id=exp_id, tags=tags) as run:
        mlflow.log_params({f"param_{k}": v for k, v in vars(result.params).items()})
        mlflow.log_params(
            {
                "feature_set_version": FEATURE_SET_VERSION,
                "train_rows": result.train_rows,
                "fit_rows": result.fit_rows,
                "validation_start": str(result.validation_start),
            }
        )
        mlflow.log_metrics(metrics)
        if result.importances:
            mlflow.log_dict(result.importances, "feature_importances.json")
        info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            signature=signature,
            input_example=x_example,
            serialization_format="cloudpickle",
            registered_model_name=model_name,
            pip_requirements=["scikit-learn", "numpy", "cloudpickle"],
        )
    version = str(info.registered_model_version)
    client = _client(tracking_uri)
    for key, value in {
        "threshold": result.threshold,
        "model_kind": result.params.model,
        "feature_set_version": FEATURE_SET_VERSION,
        "val_ap": result.validation.ap,
    }.items():
        client.set_model_version_tag(model_name, version, key, str(value))
    return RegisteredModel(
        model_name, version, run.info.run_id, result.threshold, FEATURE_SET_VERSION, metrics
    )


def _describe(client, name: str, mv) -> RegisteredModel:  # noqa: ANN001
    run = client.get_run(mv.run_id)
    return RegisteredModel(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        threshold=float(mv.tags.get("threshold", 0.5)),
        feature_set_version=mv.tags.get("feature_set_version", ""),
        metrics=dict(run.data.metrics),
    )


def get_champion(tracking_uri: str, model_name: str) -> RegisteredModel | None:
    """The champion version, or None when the registry has none (or no such model)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        mv = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    return _describe(client, model_name, mv)


def get_version(tracking_uri: str, model_name: str, version: str) -> RegisteredModel:
    client = _client(tracking_uri)
    return _describe(client, model_name, client.get_model_version(model_name, version))


def promote(tracking_uri: str, model_name: str, version: str) -> None:
    """Give ``version`` the champion alias (moving it from any earlier version)."""
    _client(tracking_uri).set_registered_model_alias(model_name, CHAMPION, version)


@functools.lru_cache(maxsize=4)
def load_pipeline(tracking_uri: str, model_name: str, version: str):  # noqa: ANN201
    """Load one registered version's scikit-learn pipeline (cached: versions never change)."""
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.sklearn.load_model(f"models:/{model_name}/{version}")


def load_champion(tracking_uri: str, model_name: str):  # noqa: ANN201
    """``(pipeline, RegisteredModel)`` for the champion; raise NoChampionError if there is none."""
    champ = get_champion(tracking_uri, model_name)
    if champ is None:
        raise NoChampionError(
            f"the MLflow registry at {redact(tracking_uri)} has no '{model_name}@{CHAMPION}'; "
            "materialize the training assets (raw_training_data, rf_model, champion_model) first"
        )
    return load_pipeline(tracking_uri, model_name, champ.version), champ


def redact(uri: str) -> str:
    """A URI with any password replaced, safe for logs and metadata."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri
