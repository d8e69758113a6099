"""Warehouse writes are keyed and idempotent, on SQLite and on a real PostgreSQL."""

import datetime as dt

import polars as pl
import pytest

from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse


def _rows(n: int, version: str = "1", hour: str = "2026-11-28-10:00") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "trans_num": [f"{i:032x}" for i in range(n)],
            "event_time": [dt.datetime(2026, 11, 28, 10, 0, i % 60) for i in range(n)],
            "cc_num": ["4497913965512794052"] * n,
            "merchant": ["fraud_Berge, Kautzer and Harris"] * n,
            "category": ["personal_care"] * n,
            "amt": [float(i) for i in range(n)],
            "event_time_source": ["arrival"] * n,
            "arrived_at": [dt.datetime(2026, 11, 28, 10, 0, i % 60) for i in range(n)],
            "fraud_probability": [i / n for i in range(n)],
            "expected_loss": [float(i) * i / n for i in range(n)],
            "is_flagged": [i % 2 == 0 for i in range(n)],
            "threshold": [0.5] * n,
            "model_name": ["fraud_rf"] * n,
            "model_version": [version] * n,
            "feature_set_version": ["arrival-v1"] * n,
            "feed_semantics": ["arrival"] * n,
            "scored_at": [dt.datetime(2026, 11, 28, 10, 1)] * n,
            "label_is_fraud": [None if i == 0 else 0 for i in range(n)],
            "batch_hour": [hour] * n,
        },
        schema=SCORED_TRANSACTIONS_SCHEMA,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def warehouse(request, tmp_path) -> Warehouse:  # noqa: ANN001
    if request.param == "sqlite":
        wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    else:
        wh = Warehouse(
            request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema")
        )
    wh.ensure_table("scored_transactions", SCORED_TRANSACTIONS_SCHEMA, indexes=["batch_hour"])
    return wh


def test_rows_round_trip_exactly(warehouse: Warehouse) -> None:
    rows = _rows(25)
    warehouse.upsert("scored_transactions", rows)
    back = warehouse.read("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
    assert back.sort("trans_num").equals(rows.sort("trans_num"))


def test_writing_the_same_batch_twice_leaves_no_duplicates(warehouse: Warehouse) -> None:
    warehouse.upsert("scored_transactions", _rows(40))
    warehouse.upsert("scored_transactions", _rows(40))
    warehouse.upsert("scored_transactions", pl.concat([_rows(10), _rows(10)]))
    assert warehouse.count("scored_transactions") == 40


def test_update_replaces_and_ignore_keeps_the_first_copy(warehouse: Warehouse) -> None:
    warehouse.upsert("scored_transactions", _rows(5, version="1"))
    warehouse.upsert("scored_transactions", _rows(5, version="2"), update=False)
    read = warehouse.read(
        "scored_transactions", SCORED_TRANSACTIONS_SCHEMA, columns=["model_version"]
    )
    assert set(read["model_version"]) == {"1"}
    warehouse.upsert("scored_transactions", _rows(5, version="2"))
    read = warehouse.read(
        "scored_transactions", SCORED_TRANSACTIONS_SCHEMA, columns=["model_version"]
    )
    assert set(read["model_version"]) == {"2"}


def test_reads_select_only_the_asked_columns_and_partitions(warehouse: Warehouse) -> None:
    warehouse.upsert("scored_transactions", _rows(6, hour="2026-11-28-10:00"))
    later = _rows(9, hour="2026-11-28-11:00").with_columns(pl.col("trans_num") + "b")
    warehouse.upsert("scored_transactions", later)
    got = warehouse.read(
        "scored_transactions",
        SCORED_TRANSACTIONS_SCHEMA,
        columns=["trans_num", "amt"],
        where={"batch_hour": ["2026-11-28-11:00"]},
    )
    assert got.columns == ["trans_num", "amt"] and got.height == 9


def test_reading_a_missing_table_gives_an_empty_frame(warehouse: Warehouse) -> None:
    assert warehouse.read("live_transactions", {"trans_num": pl.String()}).height == 0


@pytest.mark.parametrize("name", ['x"; DROP TABLE y; --', "a b", "1abc"])
def test_unsafe_identifiers_are_refused(warehouse: Warehouse, name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        warehouse.upsert(name, _rows(1))


def test_a_write_that_fails_midway_changes_nothing(warehouse: Warehouse) -> None:
    warehouse.upsert("scored_transactions", _rows(10))
    bad = pl.concat(
        [
            _rows(20, version="2"),
            _rows(1).with_columns(trans_num=pl.lit(None, dtype=pl.String)),
        ]
    )
    with pytest.raises(Exception, match="(?i)null"):
        warehouse.upsert("scored_transactions", bad)
    read = warehouse.read("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
    assert read.height == 10 and set(read["model_version"]) == {"1"}
