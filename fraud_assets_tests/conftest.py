"""Fixtures built once: generated data, a real HTTP stand-in, PostgreSQL, a local platform."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl
import pytest
from hypothesis import settings as hypothesis_settings

from fraud_assets.lib.generator import generate_transactions, write_csv
from fraud_assets.lib.schema import training_csv_to_canonical
from fraud_assets.standin.app import StandinConfig, create_app
from fraud_assets.testing.servers import postgres_url, serve_app
from fraud_assets_tests.helpers.data import SMALL, SPLIT, Dataset
from fraud_assets_tests.helpers.platform import (
    TRAIN_CONFIG,
    TRAINING_ASSETS,
    Platform,
    make_platform,
)

#: Fixtures that bring up a real server or train a platform: tests that use them are
#: integration tests (``make test-fast`` leaves them out), whether or not they say so.
SERVER_FIXTURES = frozenset(
    {"pg_url", "pg_schema", "standin_url", "trained", "scored_platform", "app_url"}
)


#: The longest modules (measured: `pytest --durations`), run first so that pytest-xdist's
#: workers (``--dist loadfile`` hands out whole modules in collection order) do not end the
#: suite waiting on one of them alone.
LONGEST_FIRST = (
    "test_platform.py",
    "defs/test_chaos.py",
    "service/test_decision_processes.py",
    "defs/test_faults.py",
    "service/test_stream_operations.py",
    "service/test_stream.py",
)


def _rank(item: pytest.Item) -> int:
    path = item.path.as_posix()
    return next(
        (i for i, tail in enumerate(LONGEST_FIRST) if path.endswith(f"/{tail}")),
        len(LONGEST_FIRST),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.integration)
    items.sort(key=_rank)  # stable: each module's own order is kept


# Property tests: a bounded run in `make test`, a long one in `make test-props`.
hypothesis_settings.register_profile("default", max_examples=300, deadline=None)
hypothesis_settings.register_profile("long", max_examples=100_000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("data")
    public = generate_transactions(SMALL)
    when = pl.col("trans_date_trans_time").str.to_datetime("%Y-%m-%d %H:%M:%S")
    train, test = root / "fraudTrain.csv", root / "fraudTest.csv"
    write_csv(public.filter(when < SPLIT), train)
    write_csv(public.filter(when >= SPLIT), test)
    return Dataset(public, training_csv_to_canonical(public), train, test)


@pytest.fixture(scope="session")
def standin_url(dataset: Dataset):
    """The API stand-in over real HTTP, replaying the test split; also serves the train CSV."""
    app = create_app(
        StandinConfig(
            data=dataset.test_csv,
            files_dir=dataset.train_csv.parent,
            rows_per_call=3,
            timeout_seconds=3,
        )
    )
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="session")
def pg_url():
    """A real PostgreSQL server (see servers.PG_HELP for how one is found or started)."""
    try:
        ctx = postgres_url()
        url = ctx.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url
    ctx.__exit__(None, None, None)


@pytest.fixture
def pg_schema(pg_url: str):
    """A fresh schema per test, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, standin_url: str) -> Platform:
    """A local platform whose training assets have been materialized once."""
    import dagster as dg

    from fraud_assets.definitions import defs

    mp = pytest.MonkeyPatch()
    platform = make_platform(mp, tmp_path_factory.mktemp("platform"), standin_url)
    assets = [defs.get_assets_def(k) for k in TRAINING_ASSETS]
    result = dg.materialize(assets, resources=platform.resources, run_config=TRAIN_CONFIG)
    assert result.success
    yield platform
    mp.undo()


@pytest.fixture(scope="module")
def scored_platform(trained: Platform, dataset: Dataset) -> Platform:
    """The trained platform after a few sensor ticks and scoring runs, plus five known frauds
    of the training window scored by ``score_batch`` as the scoring asset does, so that the
    flagged list is never empty whatever the replay brought."""
    from fraud_assets.lib import registry
    from fraud_assets.lib.card_state import WarehouseState
    from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA
    from fraud_assets.lib.serving import score_rows
    from fraud_assets_tests.helpers.platform import run, tick

    cursor = None
    for _ in range(4):
        result = tick(trained, cursor)
        cursor = result.cursor
        for request in result.run_requests:
            assert run(trained, request).success
    train = dataset.canonical.filter(pl.col("event_time") < SPLIT)
    frauds = train.filter(pl.col("is_fraud") == 1).sort("amt", descending=True).head(5)
    mlflow = trained.resources["mlflow_registry"]
    model, _ = registry.load_champion(mlflow.tracking_uri, "fraud_rf", Path(mlflow.cache_dir))
    wh = trained.resources["warehouse"].warehouse()
    scored = score_rows(
        frauds, WarehouseState(wh), model, semantics="arrival", batch_hour="2020-01-01-00:00"
    ).scored
    wh.ensure_table("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
    wh.upsert("scored_transactions", scored)
    assert scored["is_flagged"].sum() >= 2
    return trained


@pytest.fixture(scope="module")
def app_url(scored_platform: Platform):
    """The Gradio app launched on loopback, configured only through the environment that
    ``trained`` set (FRAUD_DATA_DIR, with SQLite and the local MLflow store under it)."""
    from app_gradio.app import build_app, launch
    from fraud_assets.testing.servers import free_port

    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    mp.setenv("FRAUD_APP_REFRESH_SECONDS", "3600")
    mp.delenv("GRADIO_SERVER_NAME", raising=False)
    app = build_app()
    port = free_port()
    launch(app, server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    app.close()
    mp.undo()
