"""Fixtures of the decision service's and the stream consumer's tests."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from urllib.parse import urlparse

import polars as pl
import pytest

from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.model import TrainParams, TrainResult, train
from fraud_assets.lib.streams import Topics
from fraud_assets.testing.servers import reachable
from fraud_assets_tests.helpers.data import SPLIT, Dataset
from fraud_assets_tests.helpers.service import Deployment, Registry, make_deployment
from fraud_assets_tests.helpers.stream import BROKERS


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


@pytest.fixture(params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    url = BROKERS[request.param]
    if not reachable(url):
        pytest.skip(
            f"{request.param} is not running on {urlparse(url).netloc}: the stream tests need "
            "a real broker (this machine's kind starts NATS with JetStream, Redis and RabbitMQ)"
        )
    return url


@pytest.fixture
def topics() -> Topics:
    tag = uuid.uuid4().hex[:10]
    return Topics(f"tx-{tag}", f"decided-{tag}", f"dead-{tag}")


@pytest.fixture
def stream_env(deployment: Deployment, broker: str, topics: Topics) -> Deployment:
    """The deployment's environment with the stream path's variables: the broker, the topics
    and this test's own consumer group."""
    env = deployment.env | {
        "FRAUD_STREAM_URL": broker,
        "FRAUD_STREAM_INPUT": topics.input,
        "FRAUD_STREAM_OUTPUT": topics.output,
        "FRAUD_STREAM_DEAD_LETTERS": topics.dead_letters,
        "FRAUD_STREAM_GROUP": f"group-{topics.input}",
        "FRAUD_STREAM_ACK_WAIT_SECONDS": "3",
        "FRAUD_STREAM_BATCH": "100",
    }
    return Deployment(deployment.root, env, deployment.warehouse, deployment.tracking_uri)
