"""What the tests and the benchmarks both need, owned by neither: a platform state seeded with
a champion as training would leave it. (Real servers for tests and benchmarks are in
``fraud_assets.testing.servers``.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fraud_assets.lib import registry
from fraud_assets.lib.card_state import write_state
from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.model import TrainParams, TrainResult, train
from fraud_assets.lib.storage import LocalObjectStore
from fraud_assets.lib.warehouse import Warehouse

MODEL_NAME = "fraud_rf"


@dataclass(frozen=True)
class Seeded:
    """Where a seeded platform keeps its parts, and the champion's version."""

    root: Path
    tracking_uri: str
    warehouse_url: str
    version: str
    result: TrainResult

    @property
    def cache_dir(self) -> Path:
        return self.root / "model_cache"


def register(result: TrainResult, root: Path, tracking_uri: str, reason: str) -> str:
    """Log and register ``result`` in ``tracking_uri`` and make it champion; its reference
    rows go where monitoring looks for them. Returns the version."""
    reg = registry.log_and_register(
        result,
        tracking_uri=tracking_uri,
        experiment="fraud-detection",
        model_name=MODEL_NAME,
        artifact_location=(root / "mlartifacts").as_uri(),
    )
    registry.promote(tracking_uri, MODEL_NAME, reg.version, reason, "seeded")
    valid = result.validation_features
    LocalObjectStore(root / "objects").put_parquet(
        f"references/{MODEL_NAME}/v{reg.version}.parquet",
        valid.sample(n=min(valid.height, 20_000), seed=0),
    )
    return reg.version


def write_card_state(
    warehouse_url: str, history: pl.DataFrame, semantics: str, schema: str = "public"
) -> None:
    """The card state ``card_state`` would write for ``history``."""
    fs = for_semantics(semantics)
    write_state(Warehouse(warehouse_url, schema=schema), fs, fs.build_state(history))


def seed_champion(
    root: Path,
    history: pl.DataFrame,
    *,
    semantics: str = "arrival",
    params: TrainParams | None = None,
    fit_on: pl.DataFrame | None = None,
    warehouse_url: str | None = None,
    schema: str = "public",
) -> Seeded:
    """A platform under ``root`` as training leaves it: the training data (the Parquet IO
    manager's key), its card state in the warehouse (``warehouse_url``, default SQLite under
    ``root``), and a champion trained on ``fit_on`` (default ``history``) in an embedded MLflow
    store under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    LocalObjectStore(root / "objects").put_parquet("assets/raw_training_data.parquet", history)
    warehouse_url = warehouse_url or f"sqlite:///{root / 'warehouse.db'}"
    write_card_state(warehouse_url, history, semantics, schema)
    fs = for_semantics(semantics)
    result = train(history if fit_on is None else fit_on, fs, params or TrainParams(n_jobs=2))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    version = register(result, root, uri, "seeded for a test or a benchmark")
    return Seeded(root, uri, warehouse_url, version, result)
