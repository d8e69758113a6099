"""Warehouse writes are keyed and idempotent, on SQLite and on a real PostgreSQL."""

import asyncio
import datetime as dt

import polars as pl
import pytest

from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import TableWrite, Warehouse, schema_version


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
            "decided_by": ["poll"] * n,
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


def test_a_new_column_in_the_schema_is_added_to_an_existing_table(warehouse: Warehouse) -> None:
    old = {c: t for c, t in SCORED_TRANSACTIONS_SCHEMA.items() if c != "expected_loss"}
    warehouse.ensure_table("old_scores", old)
    warehouse.upsert("old_scores", _rows(3).drop("expected_loss"))
    warehouse.ensure_table("old_scores", SCORED_TRANSACTIONS_SCHEMA)  # the upgrade
    assert warehouse.upsert("old_scores", _rows(4)) == 4  # upserts with the new column work
    back = warehouse.read("old_scores", SCORED_TRANSACTIONS_SCHEMA).sort("trans_num")
    assert (
        back.height == 4 and back["expected_loss"].to_list() == _rows(4)["expected_loss"].to_list()
    )
    assert warehouse.schema_versions()["old_scores"] == schema_version(SCORED_TRANSACTIONS_SCHEMA)


def test_writes_to_several_tables_land_together_or_not_at_all(warehouse: Warehouse) -> None:
    warehouse.ensure_table("other_scores", SCORED_TRANSACTIONS_SCHEMA)
    good = TableWrite("scored_transactions", _rows(5))
    bad = TableWrite("other_scores", _rows(1).with_columns(trans_num=pl.lit(None, pl.String)))
    with pytest.raises(Exception, match="(?i)null"):
        warehouse.write([good, bad])
    assert warehouse.count("scored_transactions") == 0  # the first write was rolled back
    written = warehouse.write([good, TableWrite("other_scores", _rows(2))])
    assert written == {"scored_transactions": 5, "other_scores": 2}


def test_keep_first_writes_count_only_new_rows(warehouse: Warehouse) -> None:
    assert warehouse.upsert("scored_transactions", _rows(5), update=False) == 5
    assert warehouse.upsert("scored_transactions", _rows(8), update=False) == 3


def test_aggregates_run_in_sql_on_either_dialect(warehouse: Warehouse) -> None:
    warehouse.upsert("scored_transactions", _rows(10))
    got = warehouse.query(
        'SELECT count(*), sum(CASE WHEN "is_flagged" THEN 1 ELSE 0 END) '
        'FROM {t:scored_transactions} WHERE "amt" >= ?',
        {"n": pl.Int64, "flagged": pl.Int64},
        [5.0],
    )
    assert got.row(0) == (5, 2)


def test_insert_new_stores_only_new_keys_and_says_which_they_were(warehouse: Warehouse) -> None:
    schema = {"trans_num": pl.String(), "amt": pl.Float64(), "at": pl.Datetime("ms")}
    warehouse.ensure_table("log", schema)
    at = dt.datetime(2026, 11, 28, 10, 0, 0, 123000)
    first = pl.DataFrame({"trans_num": ["a", "b"], "amt": [1.0, 2.0], "at": [at, at]}, schema)
    assert warehouse.insert_new("log", first) == {"a", "b"}
    again = pl.DataFrame(
        {"trans_num": ["b", "c", "c"], "amt": [9.0, 3.0, 4.0], "at": [at, at, at]}, schema
    )
    assert warehouse.insert_new("log", again) == {"c"}  # b is kept as it was; c once
    rows = warehouse.read("log", schema).sort("trans_num")
    assert rows.rows() == [("a", 1.0, at), ("b", 2.0, at), ("c", 3.0, at)]
    many = pl.DataFrame({"trans_num": [f"m{i}" for i in range(12_000)], "amt": 1.0, "at": at})
    assert len(warehouse.insert_new("log", many.cast(schema))) == 12_000  # past any one statement


#: Values a log row may hold at their edges: what JSON has no number for, the shortest and
#: longest floats, text that JSON must escape, and nulls.
EDGE_FLOATS = [0.1, -0.0, 1e-300, 1.7976931348623157e308, 5e-324, float("inf"), float("-inf")]
EDGE_TEXTS = ['a "quoted" \\ back\\slash', "tab\there", "ünïcödé ✓ 🃏", "", '{"json": [1]}']


def test_insert_new_rows_keeps_every_value_exactly_both_ways(warehouse: Warehouse) -> None:
    """Through the one-statement insert (PostgreSQL: the rows as one JSON parameter) and its
    asynchronous twin, every value comes back as it went in."""
    schema = {
        "trans_num": pl.String(),
        "x": pl.Float64(),
        "text": pl.String(),
        "n": pl.Int64(),
        "flag": pl.Boolean(),
        "at": pl.Datetime("ms"),
    }
    warehouse.ensure_table("edges", schema)
    at = dt.datetime(2026, 12, 6, 23, 59, 59, 999000)
    rows = [
        (f"f{i}", x, EDGE_TEXTS[i % len(EDGE_TEXTS)], 2**62 - i, i % 2 == 0, at)
        for i, x in enumerate(EDGE_FLOATS)
    ]
    rows.append(("nulls", None, None, None, None, None))
    rows.append(("nan", float("nan"), "n", -(2**62), False, dt.datetime(1900, 1, 1)))
    half = len(rows) // 2
    assert warehouse.insert_new_rows("edges", list(schema), rows[:half]) == {
        r[0] for r in rows[:half]
    }

    async def on_a_loop() -> set[str]:  # as the service does: its pool closed with the loop
        try:
            return await warehouse.insert_new_rows_async("edges", list(schema), rows[half - 1 :])
        finally:
            await warehouse.aclose()

    new = asyncio.run(on_a_loop())
    assert new == {r[0] for r in rows[half:]}  # the one stored already is not new
    back = dict((r[0], r) for r in warehouse.read("edges", schema).rows())
    assert len(back) == len(rows)
    for row in rows:
        got = back[row[0]]
        assert got[2:] == row[2:], row
        if row[1] != row[1]:  # NaN: SQLite itself stores it as NULL
            assert (got[1] != got[1]) if warehouse.postgres else got[1] is None
        elif warehouse.postgres:  # the sign of zero too (SQLite stores -0.0 as 0)
            assert str(got[1]) == str(row[1]), row
        else:
            assert got[1] == row[1], row
