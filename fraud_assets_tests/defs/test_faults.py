"""Fault injection against the real parts (PostgreSQL, moto's S3 server, an MLflow server):
after each fault nothing is lost and no row is duplicated. docs/reliability.md lists them."""

import datetime as dt
import json

import boto3
import dagster as dg
import polars as pl
import psycopg
import pytest

from fraud_assets.definitions import defs
from fraud_assets.lib.api import encode_payload
from fraud_assets.lib.evaluation import api_row
from fraud_assets.lib.ingest import LEDGER_TABLE
from fraud_assets.lib.landing import LEDGER_SCHEMA, QUARANTINE_PREFIX, hour_prefix, landing_key
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.testing.servers import RestartableMlflow, RestartableMoto, fresh_database
from fraud_assets_tests.helpers.data import SPLIT
from fraud_assets_tests.helpers.payloads import BAD_ROWS, HOSTILE_BODIES, body_of
from fraud_assets_tests.helpers.platform import TRAIN_CONFIG, TRAINING_ASSETS, make_platform, sensor

pytestmark = pytest.mark.integration
BUCKET = "fraud-faults"
SCHEMA = "fraud"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SCORING = [defs.get_assets_def(k) for k in ("live_transactions", "scored_transactions")]


@pytest.fixture(scope="module")
def prod(tmp_path_factory, pg_url, standin_url, dataset):  # noqa: ANN001, ANN201
    """S3 (moto), a PostgreSQL warehouse and an MLflow server, each restartable, with a
    trained champion."""
    mp = pytest.MonkeyPatch()
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "AWS_MAX_ATTEMPTS": "2"}
    for name, value in {**AWS, **quick}.items():
        mp.setenv(name, value)
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    moto = RestartableMoto(BUCKET)
    s3 = boto3.client("s3", endpoint_url=moto.url)
    s3.upload_file(str(dataset.train_csv), BUCKET, "source/fraudTrain.csv")
    with fresh_database(admin, "mlflowf") as mlflow_db, fresh_database(admin, "whf") as wh_db:
        mlflow = RestartableMlflow(
            mlflow_db, f"s3://{BUCKET}/mlflow", {**AWS, "MLFLOW_S3_ENDPOINT_URL": moto.url}
        )
        mlflow.start()
        try:
            platform = make_platform(
                mp,
                tmp_path_factory.mktemp("faults"),
                standin_url,
                FRAUD_S3_BUCKET=BUCKET,
                AWS_ENDPOINT_URL=moto.url,
                FRAUD_DATABASE_URL=wh_db,
                FRAUD_DATABASE_SCHEMA=SCHEMA,
                MLFLOW_TRACKING_URI=mlflow.url,
                FRAUD_TRAINING_DATA_URL=f"s3://{BUCKET}/source/fraudTrain.csv",
            )
            training = [defs.get_assets_def(k) for k in TRAINING_ASSETS]
            assert dg.materialize(
                training, resources=platform.resources, run_config=TRAIN_CONFIG
            ).success
            yield platform, moto, mlflow, wh_db
        finally:
            mlflow.stop()
            moto.stop()
    mp.undo()


def _good_bodies(dataset, hour: dt.datetime, n: int, offset: int) -> list[tuple[str, bytes]]:  # noqa: ANN001
    rows = api_row(dataset.canonical.filter(pl.col("event_time") >= SPLIT)).slice(offset, n)
    out = []
    for i in range(n):
        arrived = hour + dt.timedelta(minutes=i, seconds=1)
        ms = int(arrived.replace(tzinfo=dt.UTC).timestamp() * 1000)
        out.append((landing_key(arrived), encode_payload(rows[i], [offset + i], [ms])))
    return out


def _land(platform, payloads: list[tuple[str, bytes]]) -> None:  # noqa: ANN001
    store = platform.resources["object_store"].store()
    for key, body in payloads:
        store.put_bytes(key, body)


def _run(platform, hour: dt.datetime) -> dg.ExecuteInProcessResult:  # noqa: ANN001
    return dg.materialize(
        SCORING,
        partition_key=hour.strftime("%Y-%m-%d-%H:00"),
        resources=platform.resources,
        raise_on_error=False,
    )


def _tables(platform, hour: dt.datetime) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:  # noqa: ANN001
    wh = platform.resources["warehouse"].process_config_and_initialize().warehouse()
    where = {"batch_hour": [hour.strftime("%Y-%m-%d-%H:00")]}
    return (
        wh.read("live_transactions", LIVE_TRANSACTIONS_SCHEMA, where=where),
        wh.read("scored_transactions", SCORED_TRANSACTIONS_SCHEMA, where=where),
        wh.read(LEDGER_TABLE, LEDGER_SCHEMA, where=where),
    )


def _trans_nums(payloads: list[tuple[str, bytes]]) -> set[str]:
    out = set()
    for _, body in payloads:
        inner = json.loads(json.loads(body))
        out |= {r[inner["columns"].index("trans_num")] for r in inner["data"]}
    return out


def _assert_exactly_once(platform, hour, good) -> None:  # noqa: ANN001
    live, scored, ledger = _tables(platform, hour)
    expected = _trans_nums(good)
    assert set(live["trans_num"]) == expected == set(scored["trans_num"])
    assert live["trans_num"].is_unique().all() and scored["trans_num"].is_unique().all()
    assert ledger["payload_key"].is_unique().all()


def test_poison_payloads_interleaved_with_good_ones_never_block_them(prod, dataset) -> None:
    platform, *_ = prod
    hour = dt.datetime(2026, 3, 1, 1)
    good = _good_bodies(dataset, hour, 6, offset=0)
    poison = [
        (landing_key(hour + dt.timedelta(minutes=30, seconds=i)), body)
        for i, body in enumerate(HOSTILE_BODIES.values())
    ]
    row_faults = [
        (landing_key(hour + dt.timedelta(minutes=40, seconds=i)), body_of([row]))
        for i, (row, _) in enumerate(BAD_ROWS.values())
    ]
    _land(platform, [*good[:3], *poison, *row_faults, *good[3:]])
    result = _run(platform, hour)
    assert result.success
    _assert_exactly_once(platform, hour, good)
    store = platform.resources["object_store"].store()
    quarantined = list(store.list(hour_prefix(hour.strftime("%Y-%m-%d-%H:00"), QUARANTINE_PREFIX)))
    assert len(quarantined) == len(poison) + len(row_faults)
    assert _run(platform, hour).success  # a second run parses nothing again
    assert len(
        list(store.list(hour_prefix(hour.strftime("%Y-%m-%d-%H:00"), QUARANTINE_PREFIX)))
    ) == len(quarantined)


def _kill_once_on_insert(wh_db: str, table: str) -> None:
    """A trigger that terminates its own connection on the next insert into ``table`` (a
    sequence, not a table, remembers it fired: sequences survive the rollback)."""
    seq = f"{SCHEMA}._kill_{table}"
    with psycopg.connect(wh_db, autocommit=True) as conn:
        conn.execute(f"DROP SEQUENCE IF EXISTS {seq}")
        conn.execute(f"CREATE SEQUENCE {seq}")
        conn.execute(
            f"""CREATE OR REPLACE FUNCTION {SCHEMA}._kill_{table}() RETURNS trigger AS $$
            BEGIN
              IF nextval('{seq}') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql"""
        )
        conn.execute(f"DROP TRIGGER IF EXISTS kill_once ON {SCHEMA}.{table}")
        conn.execute(
            f"CREATE TRIGGER kill_once BEFORE INSERT ON {SCHEMA}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}._kill_{table}()"
        )


def _drop_kill(wh_db: str, table: str) -> None:
    with psycopg.connect(wh_db, autocommit=True) as conn:
        conn.execute(f"DROP TRIGGER IF EXISTS kill_once ON {SCHEMA}.{table}")


def test_postgres_killed_mid_write_loses_and_duplicates_nothing(prod, dataset) -> None:
    platform, _, _, wh_db = prod
    hour = dt.datetime(2026, 3, 1, 2)
    good = _good_bodies(dataset, hour, 5, offset=20)
    _land(platform, good)
    try:
        _kill_once_on_insert(wh_db, "live_transactions")
        _kill_once_on_insert(wh_db, "scored_transactions")
        result = _run(platform, hour)
    finally:
        _drop_kill(wh_db, "live_transactions")
        _drop_kill(wh_db, "scored_transactions")
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert {e.step_key for e in retried} == {"live_transactions", "scored_transactions"}
    assert result.success
    _assert_exactly_once(platform, hour, good)


def test_object_store_down_while_landing_keeps_payloads_in_the_spool(prod) -> None:
    platform, moto, *_ = prod
    store = platform.resources["object_store"].store()
    spool = platform.data_dir / "spool"
    moto.stop()
    try:
        with dg.build_sensor_context(
            instance=dg.DagsterInstance.ephemeral(), resources=platform.resources
        ) as context:
            down = sensor("transactions_sensor")(context)
    finally:
        moto.start()
    assert isinstance(down, dg.SkipReason)
    spooled = sorted(p.name for p in spool.glob("*.json"))
    assert spooled  # fetched while the store was down: kept on local disk
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources=platform.resources
    ) as context:
        up = sensor("transactions_sensor")(context)
    assert not list(spool.glob("*.json"))  # flushed to the store
    landed = {k.rsplit("/", 1)[-1] for k in store.list("landing/")}
    assert {name.split("__")[-1] for name in spooled} <= landed
    for request in up.run_requests:
        assert dg.materialize(
            SCORING, partition_key=request.partition_key, resources=platform.resources
        ).success


def test_object_store_down_while_loading_changes_nothing_until_it_is_back(prod, dataset) -> None:
    platform, moto, *_ = prod
    hour = dt.datetime(2026, 3, 1, 3)
    good = _good_bodies(dataset, hour, 4, offset=40)
    _land(platform, good)
    moto.stop()
    try:
        failed = _run(platform, hour)
    finally:
        moto.start()
    assert not failed.success
    live, scored, ledger = _tables(platform, hour)
    assert live.height == scored.height == ledger.height == 0  # nothing half-done
    assert _run(platform, hour).success
    _assert_exactly_once(platform, hour, good)


def test_mlflow_stopped_during_scoring_scores_every_row_once_it_is_back(prod, dataset) -> None:
    platform, _, mlflow, _ = prod
    hour = dt.datetime(2026, 3, 1, 4)
    good = _good_bodies(dataset, hour, 4, offset=60)
    _land(platform, good)
    mlflow.stop()
    try:
        failed = _run(platform, hour)
    finally:
        mlflow.start()
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "scored_transactions"
    assert "unavailable" in failure.event_specific_data.error.to_string()
    live, scored, _ = _tables(platform, hour)
    assert live.height == 4 and scored.height == 0  # loaded; scoring waits for the registry
    assert _run(platform, hour).success
    _assert_exactly_once(platform, hour, good)
