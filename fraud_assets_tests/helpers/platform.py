"""A local platform for tests: resources exactly as definitions.py builds them, sensor ticks
and scoring runs as the daemon would start them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.lib.landing import LANDING_PREFIX
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA


@dataclass
class Platform:
    """A local deployment in a temp dir: resources exactly as definitions.py builds them."""

    data_dir: Path
    resources: dict


def make_platform(mp: pytest.MonkeyPatch, root: Path, standin_url: str, **env: str) -> Platform:
    """Set the environment (kept until ``mp`` is undone: secrets resolve at run time) and
    build the resources as definitions.py does."""
    from fraud_assets.definitions import build_resources

    values = {
        "FRAUD_DATA_DIR": str(root),
        "TRANSACTIONS_API_URL": standin_url,
        "FRAUD_TRAINING_DATA_URL": f"{standin_url}/files/fraudTrain.csv",
        "FRAUD_API_MIN_INTERVAL_SECONDS": "0",
        **env,
    }
    for name in (
        "FRAUD_S3_BUCKET",
        "FRAUD_DATABASE_URL",
        "MLFLOW_TRACKING_URI",
        "AWS_ENDPOINT_URL",
        "FRAUD_FEED_SEMANTICS",
        "FRAUD_FEED_EVENT_TIME_FIELD",
    ):
        if name not in values:
            mp.delenv(name, raising=False)
    for name, value in values.items():
        mp.setenv(name, value)
    return Platform(root, build_resources())


TRAIN_CONFIG = {"ops": {"rf_model": {"config": {"n_estimators": 30, "n_jobs": 2}}}}


TRAINING_ASSETS = (
    "raw_training_data",
    "card_state",
    "live_training_rows",
    "rf_model",
    "champion_model",
)


#: The assets a scoring run materializes.
SCORING_ASSETS = ("live_transactions", "scored_transactions")


def tick(platform: Platform, cursor: str | None = None):  # noqa: ANN201
    """One evaluation of the transactions sensor, as the daemon runs it."""
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), cursor=cursor, resources=platform.resources
    ) as context:
        return sensor("transactions_sensor")(context)


def run(platform: Platform, request: dg.RunRequest, **kwargs) -> dg.ExecuteInProcessResult:  # noqa: ANN003
    """The scoring run a request asks for, in process."""
    from fraud_assets.definitions import defs

    return dg.materialize(
        [defs.get_assets_def(k) for k in SCORING_ASSETS],
        selection=["live_transactions", "scored_transactions"],
        partition_key=request.partition_key,
        resources=platform.resources,
        **kwargs,
    )


def tables(platform: Platform) -> tuple[pl.DataFrame, pl.DataFrame]:
    wh = platform.resources["warehouse"].warehouse()
    return (
        wh.read("live_transactions", LIVE_TRANSACTIONS_SCHEMA),
        wh.read("scored_transactions", SCORED_TRANSACTIONS_SCHEMA),
    )


def landed_trans_nums(platform: Platform) -> set[str]:
    store = platform.resources["object_store"].store()
    out: set[str] = set()
    for key in store.list(LANDING_PREFIX):
        try:
            inner = json.loads(json.loads(store.get_bytes(key)))
            col = inner["columns"].index("trans_num")
        except (ValueError, TypeError):
            continue  # a poison payload (an HTML page, say): quarantined, no rows
        out |= {row[col] for row in inner["data"]}
    return out


def sensor(name: str) -> dg.SensorDefinition:
    """A sensor of the code location, as definitions.py wires it."""
    from fraud_assets.definitions import defs

    return defs.resolve_sensor_def(name)


def with_settings(platform: Platform, **values: object) -> Platform:
    """The platform with some settings changed (its resources rebuilt from them)."""
    from fraud_assets.definitions import build_resources
    from fraud_assets.settings import load_settings

    return Platform(platform.data_dir, build_resources(load_settings().model_copy(update=values)))
