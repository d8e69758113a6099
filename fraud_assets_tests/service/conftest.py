"""Fixtures of the decision service's and the stream consumer's tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.model import TrainParams, TrainResult, train
from fraud_assets_tests.helpers.data import SPLIT, Dataset
from fraud_assets_tests.helpers.service import Deployment, Registry, make_deployment


@pytest.fixture(scope="module")
def halves(dataset: Dataset) -> tuple[pl.DataFrame, pl.DataFrame]:
    data = dataset.canonical.sort("event_time", "trans_num")
    return data.filter(pl.col("event_time") < SPLIT), data.filter(pl.col("event_time") >= SPLIT)


@pytest.fixture(scope="module")
def models(halves) -> dict[str, TrainResult]:  # noqa: ANN001
    """Small forests: one per semantics, and a second arrival one to promote."""
    rows, _ = halves
    small = TrainParams(n_estimators=30, n_jobs=2)
    return {
        "arrival": train(rows, for_semantics("arrival"), small),
        "arrival-b": train(
            rows, for_semantics("arrival"), dataclasses.replace(small, random_state=3)
        ),
        "payload": train(rows, for_semantics("payload"), small),
    }


@pytest.fixture
def store(tmp_path: Path, models) -> Registry:  # noqa: ANN001
    return Registry(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", models)


@pytest.fixture
def deployment(tmp_path: Path, pg_url: str, pg_schema: str, halves, models) -> Deployment:  # noqa: ANN001
    """A registry with an arrival champion and a PostgreSQL schema with its card state, and
    the environment a service process gets to use them."""
    return make_deployment(tmp_path, pg_url, pg_schema, halves, models)
