"""MLflow tracking and model registry: log and register models, find, cache and load them.

Models are stored with skops and loaded only with this module's own allow-list of types, so a
model file cannot run code when it is loaded, whoever could write to the registry. A loaded
version is cached on local disk (versions never change), so a scoring run reads it without
MLflow. Only MLflow's "not found" means "no champion": any other failure to reach the
registry raises ``RegistryUnavailable``, so nothing acts on a registry it cannot see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from fraud_assets.lib.calibration import Calibration
from fraud_assets.lib.decision import DecisionRule
from fraud_assets.lib.features import IncompatibleModel, feature_set
from fraud_assets.lib.model import TrainResult
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.serving import ServingModel, with_runtime

CHAMPION = "champion"
#: Registered-model tag holding the champion's history, newest last (for rollback).
HISTORY_TAG = "champion_history"
#: Types a model file may hold besides skops' defaults: nothing that can run code.
TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    "functools.partial",
]
MODEL_FILE = "model.skops"


class NoChampionError(LookupError):
    """The registry holds no model with the champion alias."""


class RegistryUnavailable(RuntimeError):
    """The registry could not be reached or answered with an error (not "not found")."""


@dataclass(frozen=True)
class RegisteredModel:
    """One registered version and what serving, the gate and monitoring need to know."""

    name: str
    version: str
    run_id: str
    semantics: str
    feature_set_version: str
    calibration: Calibration
    decision: DecisionRule
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """The decision's expected-loss bound, in dollars."""
        return self.decision.min_expected_loss

    def tag_float(self, key: str, default: float = float("nan")) -> float:
        try:
            return float(self.tags[key])
        except (KeyError, ValueError):
            return default


def _client(tracking_uri: str):  # noqa: ANN202
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Fail within seconds, not minutes, when a server is down: callers retry on their own.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _unavailable(tracking_uri: str, exc: Exception) -> RegistryUnavailable:
    return RegistryUnavailable(
        f"the MLflow registry at {redact(tracking_uri)} is unavailable: "
        f"{type(exc).__name__}: {redact(str(exc))[:300]}"
    )


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    """The experiment id, creating it (with the given artifact root) when missing."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def model_tags(result: TrainResult) -> dict[str, str]:
    """What serving and the gate need, as registry tags of the version."""
    v = result.validation
    return {
        "model_kind": result.params.model,
        "feed_semantics": result.feature_set.semantics,
        "feature_set_version": result.feature_set.version,
        "odds_factor": repr(result.calibration.odds_factor),
        "review_cost": repr(result.decision.review_cost),
        "min_expected_loss": repr(result.decision.min_expected_loss),
        "fit_start": str(result.fit_start),
        "fit_end": str(result.fit_end),
        "validation_start": str(result.validation_start),
        "validation_end": str(result.validation_end),
        "fit_windows": windows_json(result.fit_windows),
        "validation_windows": windows_json(result.validation_windows),
        "live_rows": str(result.live_rows),
        "val_ap": repr(v.ap),
        "val_flag_rate": repr(v.flag_rate),
        "val_fraud_rate": repr(v.fraud_rate),
        "val_ece": repr(v.ece),
        "serving_runtime": result.runtime,
    }


def windows_json(windows: list) -> str:
    return json.dumps([[a.isoformat(), b.isoformat()] for a, b in windows])


def windows_of(text: str | None) -> list | None:
    """Spans from a ``*_windows`` tag; None when missing or unreadable."""
    try:
        return [tuple(dt.datetime.fromisoformat(x) for x in pair) for pair in json.loads(text)]
    except (TypeError, ValueError):
        return None


def log_and_register(
    result: TrainResult,
    *,
    tracking_uri: str,
    experiment: str,
    model_name: str,
    artifact_location: str | None,
    tags: dict[str, str] | None = None,
    artifacts: dict[str, bytes] | None = None,
) -> RegisteredModel:
    """Log params, metrics, plots and the model (skops, with signature) and register it."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    exp_id = ensure_experiment(tracking_uri, experiment, artifact_location)
    fs = result.feature_set
    metrics = {f"val_{k}": float(v) for k, v in result.validation.as_dict().items()}
    metrics["fit_seconds"] = result.fit_seconds
    example = result.validation_features.head(5).select(fs.features).to_pandas()
    signature = infer_signature(example, np.zeros(len(example)))
    version_tags = model_tags(result)
    with mlflow.start_run(experiment_id=exp_id, tags={**(tags or {}), **version_tags}):
        mlflow.log_params({f"param_{k}": v for k, v in vars(result.params).items()})
        mlflow.log_params(
            {
                "feature_set_version": fs.version,
                "feed_semantics": fs.semantics,
                # the evaluation protocol the validation figures are measured under
                "protocol": "api" if fs.semantics == "arrival" else "replay",
                "live_rows": result.live_rows,
                "train_rows": result.train_rows,
                "fit_rows": result.fit_rows,
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        if result.importances:
            mlflow.log_dict(result.importances, "feature_importances.json")
        mlflow.log_dict({"bins": result.reliability}, "reliability.json")
        for name, data in (artifacts or {}).items():
            _log_bytes(name, data)
        info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            signature=signature,
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES,
            registered_model_name=model_name,
            pip_requirements=["scikit-learn", "numpy", "skops"],
        )
    version = str(info.registered_model_version)
    client = _client(tracking_uri)
    data = _download(tracking_uri, model_name, version)
    version_tags[DIGEST_TAG] = hashlib.sha256(data).hexdigest()
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return get_version(tracking_uri, model_name, version)


def _log_bytes(name: str, data: bytes) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        mlflow.log_artifact(str(path))


def _tag_number(
    tags: dict[str, str],
    key: str,
    default: float,
    *,
    above: float | None = None,
    at_least: float | None = None,
) -> float:
    """A numeric tag that steers decisions, checked: a missing tag takes ``default``; an
    unreadable, non-finite or out-of-range one makes the model incompatible (serving it could
    silently flag nothing)."""
    raw = tags.get(key)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        raise IncompatibleModel(f"registry tag {key}={raw[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise IncompatibleModel(f"registry tag {key}={value!r} is not a finite number")
    if above is not None and not value > above:
        raise IncompatibleModel(f"registry tag {key}={value!r} must be above {above:g}")
    if at_least is not None and not value >= at_least:
        raise IncompatibleModel(f"registry tag {key}={value!r} must be at least {at_least:g}")
    return value


def _from_tags(
    name: str, version: str, run_id: str, tags: dict[str, str], metrics: dict[str, float]
) -> RegisteredModel:
    """A version from its registry tags; IncompatibleModel when a tag that steers decisions
    (the calibration's odds factor, the review cost, the expected-loss bound) is unusable."""
    review_cost = _tag_number(tags, "review_cost", 5.0, at_least=0.0)
    return RegisteredModel(
        name=name,
        version=str(version),
        run_id=run_id,
        semantics=tags.get("feed_semantics", "unknown"),
        feature_set_version=tags.get("feature_set_version", "unknown"),
        calibration=Calibration(_tag_number(tags, "odds_factor", 1.0, above=0.0)),
        decision=DecisionRule(
            review_cost=review_cost,
            min_expected_loss=_tag_number(tags, "min_expected_loss", review_cost, at_least=0.0),
        ),
        tags=tags,
        metrics=metrics,
    )


def get_champion(tracking_uri: str, model_name: str) -> RegisteredModel | None:
    """The champion version, or None when the registry says it has none.

    Raises RegistryUnavailable for anything but "not found" (a server that is down, say), and
    IncompatibleModel for a champion whose decision tags are unusable."""
    try:
        client = _client(tracking_uri)
        mv = client.get_model_version_by_alias(model_name, CHAMPION)
        run = client.get_run(mv.run_id)
    except Exception as exc:
        if _is_not_found(exc):
            return None
        raise _unavailable(tracking_uri, exc) from None
    return _from_tags(model_name, str(mv.version), mv.run_id, dict(mv.tags), run.data.metrics)


def get_version(tracking_uri: str, model_name: str, version: str) -> RegisteredModel:
    try:
        client = _client(tracking_uri)
        mv = client.get_model_version(model_name, version)
        run = client.get_run(mv.run_id)
    except Exception as exc:
        raise _unavailable(tracking_uri, exc) from None
    return _from_tags(model_name, str(mv.version), mv.run_id, dict(mv.tags), run.data.metrics)


def set_version_tags(tracking_uri: str, model_name: str, version: str, tags: dict) -> None:
    client = _client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def champion_history(tracking_uri: str, model_name: str) -> list[dict]:
    """Every champion change so far, oldest first: ``{"version", "reason", "at"}``."""
    try:
        rm = _client(tracking_uri).get_registered_model(model_name)
    except Exception as exc:
        if _is_not_found(exc):
            return []
        raise _unavailable(tracking_uri, exc) from None
    return json.loads(rm.tags.get(HISTORY_TAG, "[]"))


def promote(tracking_uri: str, model_name: str, version: str, reason: str, at: str) -> None:
    """Give ``version`` the champion alias and record why in the champion history."""
    client = _client(tracking_uri)
    history = champion_history(tracking_uri, model_name)
    history.append({"version": str(version), "reason": reason[:500], "at": at})
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history[-50:]))


def register_recalibrated(
    tracking_uri: str, model_name: str, version: str, calibration: Calibration, reason: str
) -> RegisteredModel:
    """A new version of the same model file with a re-fitted calibration (the decision
    re-chosen on live labels); every other tag is copied."""
    client = _client(tracking_uri)
    try:
        mv = client.get_model_version(model_name, str(version))
        new = client.create_model_version(model_name, mv.source, run_id=mv.run_id)
    except Exception as exc:
        raise _unavailable(tracking_uri, exc) from None
    tags = {
        **dict(mv.tags),
        "odds_factor": repr(calibration.odds_factor),
        "recalibrated_from": str(version),
        "recalibration": reason[:500],
    }
    set_version_tags(tracking_uri, model_name, str(new.version), tags)
    return get_version(tracking_uri, model_name, str(new.version))


def rollback(tracking_uri: str, model_name: str, reason: str, at: str) -> tuple[str, str]:
    """Give the champion alias back to the previous champion, recording why; returns
    ``(from_version, to_version)``. ValueError when there is no previous champion."""
    current = _alias_version(tracking_uri, model_name)  # a broken champion can be rolled back
    target = previous_champion(tracking_uri, model_name)
    if current is None or target is None:
        raise ValueError(f"'{model_name}' has no earlier champion to roll back to")
    promote(tracking_uri, model_name, target, f"rollback from v{current}: {reason}", at)
    return current, target


def _alias_version(tracking_uri: str, model_name: str) -> str | None:
    """The champion alias's version, whatever its tags say; None when there is none."""
    try:
        return str(_client(tracking_uri).get_model_version_by_alias(model_name, CHAMPION).version)
    except Exception as exc:
        if _is_not_found(exc):
            return None
        raise _unavailable(tracking_uri, exc) from None


def previous_champion(tracking_uri: str, model_name: str) -> str | None:
    """The version that was champion before the current one, from the history."""
    history = champion_history(tracking_uri, model_name)
    current = history[-1]["version"] if history else None
    for entry in reversed(history[:-1]):
        if entry["version"] != current:
            return entry["version"]
    return None


def reference_key(model_name: str, version: str) -> str:
    """Where a model version's reference rows (validation features and scores) are kept: what
    drift is measured against."""
    return f"references/{model_name}/v{version}.parquet"


#: Version tag holding the sha256 of the model file as registered.
DIGEST_TAG = "model_sha256"


def cached_pipeline(  # noqa: ANN201
    cache_dir: Path, tracking_uri: str, model_name: str, version: str, digest: str | None = None
):
    """One version's pipeline, loaded with the allow-list from the local copy of its skops
    file (downloaded first if needed; versions never change).

    ``digest`` is the file's sha256 as registered (``DIGEST_TAG``): a local copy that does not
    match it is replaced by a fresh download, and a download that does not match is refused,
    so whoever can write the cache directory cannot change what is served. Nothing is
    unpickled: loading the skops file costs about 0.15 s for a 150-tree forest
    (docs/benchmarks.md), small beside a run, and a process that serves keeps the model."""
    target = cache_dir / model_name / str(version) / MODEL_FILE
    if not (target.is_file() and _matches(target.read_bytes(), digest)):
        data = _download(tracking_uri, model_name, version)
        if not _matches(data, digest):
            raise IncompatibleModel(
                f"the file of {model_name} v{version} does not match its registered sha256"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, data)
    return load_model_file(target)


def _matches(data: bytes, digest: str | None) -> bool:
    return digest is None or hmac.compare_digest(hashlib.sha256(data).hexdigest(), digest)


def _download(tracking_uri: str, model_name: str, version: str) -> bytes:
    try:
        client = _client(tracking_uri)
        mv = client.get_model_version(model_name, str(version))
        with tempfile.TemporaryDirectory() as tmp:
            return _download_model_file(mv.source, tmp, tracking_uri).read_bytes()
    except Exception as exc:
        raise _unavailable(tracking_uri, exc) from None


def _atomic_write(path: Path, data: bytes) -> None:
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_bytes(data)
    os.replace(part, path)


def _download_model_file(source: str, tmp: str, tracking_uri: str) -> Path:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp))
    return next(root.rglob(MODEL_FILE))


def load_model_file(path: Path):  # noqa: ANN201
    """A pipeline from a skops file, refusing any type outside the allow-list."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(path, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise ValueError(f"model file holds types that are not allowed: {exc}") from None


def serving_model(info: RegisteredModel, pipeline: object) -> ServingModel:
    """What the serving path needs, from a registered version and its pipeline, with the
    fast runtime compiled (``serving.with_runtime``)."""
    return with_runtime(
        ServingModel(
            pipeline=pipeline,
            feature_set=feature_set(info.feature_set_version),
            calibration=info.calibration,
            decision=info.decision,
            name=info.name,
            version=info.version,
        )
    )


def load_champion(
    tracking_uri: str, model_name: str, cache_dir: Path
) -> tuple[ServingModel, RegisteredModel]:
    """The champion, ready to serve; NoChampionError if there is none. The alias is looked up
    without importing MLflow (``champion_pointer``) and the model comes from the local cache,
    so a scoring run pays neither MLflow's import nor a download."""
    champ = champion_pointer(tracking_uri, model_name)
    if champ is None:
        raise NoChampionError(
            f"the MLflow registry at {redact(tracking_uri)} has no '{model_name}@{CHAMPION}'; "
            "materialize the training assets (raw_training_data, rf_model, champion_model) first"
        )
    digest = champ.tags.get(DIGEST_TAG)
    pipeline = cached_pipeline(cache_dir, tracking_uri, model_name, champ.version, digest)
    return serving_model(champ, pipeline), champ


def champion_pointer(tracking_uri: str, model_name: str) -> RegisteredModel | None:
    """The champion's version and tags (no run metrics), read the light way: MLflow's REST API
    for a tracking server, the store's own tables for the embedded SQLite store. None when
    there is no champion; RegistryUnavailable when the registry cannot be read."""
    try:
        if tracking_uri.startswith(("http://", "https://")):
            found = _alias_over_rest(tracking_uri, model_name)
        elif tracking_uri.startswith("sqlite:///"):
            found = _alias_in_sqlite(Path(tracking_uri.removeprefix("sqlite:///")), model_name)
        else:
            return get_champion(tracking_uri, model_name)
    except RegistryUnavailable:
        raise
    except Exception as exc:
        raise _unavailable(tracking_uri, exc) from None
    if found is None:
        return None
    version, run_id, tags = found
    return _from_tags(model_name, version, run_id, tags, {})


def _alias_over_rest(base: str, model_name: str) -> tuple[str, str, dict] | None:
    import requests

    auth = None
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (
            os.environ["MLFLOW_TRACKING_USERNAME"],
            os.environ.get("MLFLOW_TRACKING_PASSWORD", ""),
        )
    headers = {}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    resp = requests.get(
        f"{base.rstrip('/')}/api/2.0/mlflow/registered-models/alias",
        params={"name": model_name, "alias": CHAMPION},
        auth=auth,
        headers=headers,
        timeout=15,
    )
    if resp.status_code == 404 or (resp.status_code == 400 and "not found" in resp.text.lower()):
        return None
    resp.raise_for_status()
    mv = resp.json()["model_version"]
    tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
    return str(mv["version"]), mv.get("run_id", ""), tags


def _alias_in_sqlite(path: Path, model_name: str) -> tuple[str, str, dict] | None:
    import sqlite3

    if not path.is_file():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
        try:
            row = conn.execute(
                "SELECT a.version, v.run_id FROM registered_model_aliases a JOIN model_versions v "
                "ON v.name = a.name AND v.version = a.version WHERE a.name = ? AND a.alias = ?",
                (model_name, CHAMPION),
            ).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        if row is None:
            return None
        tags = dict(
            conn.execute(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                (model_name, row[0]),
            ).fetchall()
        )
    return str(row[0]), row[1], tags


def frame_of_versions(tracking_uri: str, model_name: str) -> pl.DataFrame:
    """Every registered version with its semantics, feature set and validation AP."""
    client = _client(tracking_uri)
    rows = [
        {
            "version": str(mv.version),
            "feed_semantics": mv.tags.get("feed_semantics", ""),
            "feature_set_version": mv.tags.get("feature_set_version", ""),
            "val_ap": float(mv.tags.get("val_ap", "nan")),
        }
        for mv in client.search_model_versions(f"name = '{model_name}'")
    ]
    return pl.DataFrame(
        rows,
        schema={
            "version": pl.String,
            "feed_semantics": pl.String,
            "feature_set_version": pl.String,
            "val_ap": pl.Float64,
        },
    )
