"""Loading landed payloads: each parsed once whatever its outcome, rows written exactly once,
conflicts recorded, the batch capped, and nothing stranded."""

import datetime as dt

import polars as pl
import pytest

from fraud_assets.lib.ingest import (
    CONFLICTS_TABLE,
    LEDGER_TABLE,
    LIVE_TABLE,
    ingest_hour,
    stranded_keys,
)
from fraud_assets.lib.landing import (
    CONFLICTS_SCHEMA,
    LANDING_PREFIX,
    LEDGER_SCHEMA,
    QUARANTINE_PREFIX,
    Feed,
    hour_of,
    landing_key,
)
from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA
from fraud_assets.lib.storage import LocalObjectStore
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets_tests.helpers.payloads import ARRIVED, HOSTILE_BODIES, body_of, with_value

HOUR = hour_of(ARRIVED)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def parts(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "sqlite":
        wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    else:
        wh = Warehouse(request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema"))
    return LocalObjectStore(tmp_path / "objects"), wh


def land(store, bodies: list[bytes], start: int = 0) -> list[str]:  # noqa: ANN001
    keys = []
    for i, body in enumerate(bodies, start):
        key = landing_key(ARRIVED + dt.timedelta(seconds=i))
        store.put_bytes(key, body)
        keys.append(key)
    return keys


def ingest(store, wh, max_payloads: int = 100):  # noqa: ANN001, ANN201
    return ingest_hour(store, wh, HOUR, Feed(), Limits(), max_payloads, now=ARRIVED)


def tn(c: str) -> str:
    return c * 32


def test_every_payload_is_parsed_once_whatever_its_outcome(parts) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 1.0, tn("a"))]), HOSTILE_BODIES["deep-nesting"]])
    first = ingest(store, wh)
    assert first.payloads_read == 2 and first.rows_written == 1 and len(first.rejects) == 1
    quarantined = list(store.list(QUARANTINE_PREFIX))
    again = ingest(store, wh)
    assert again.payloads_read == 0 and again.rows_written == 0 and not again.rejects
    assert list(store.list(QUARANTINE_PREFIX)) == quarantined  # not re-quarantined
    ledger = wh.read(LEDGER_TABLE, LEDGER_SCHEMA).sort("payload_key")
    assert ledger["outcome"].to_list() == ["loaded", "rejected"]


def test_rows_written_counts_only_rows_actually_inserted(parts) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 1.0, tn("a")), with_value("amt", 2.0, tn("b"))])])
    assert ingest(store, wh).rows_written == 2
    land(store, [body_of([with_value("amt", 1.0, tn("a")), with_value("amt", 3.0, tn("c"))])], 5)
    report = ingest(store, wh)
    assert report.rows_valid == 2 and report.rows_written == 1  # "a" was already there
    assert wh.count(LIVE_TABLE) == 3


def test_a_conflict_with_a_stored_row_is_recorded_and_the_stored_row_kept(parts) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 10.0, tn("d"))])])
    ingest(store, wh)
    land(store, [body_of([with_value("amt", 999.0, tn("d"))])], 3)
    report = ingest(store, wh)
    assert report.conflicts == 1 and report.rows_written == 0
    live = wh.read(LIVE_TABLE, LIVE_TRANSACTIONS_SCHEMA)
    assert live["amt"].to_list() == [10.0]
    [conflict] = wh.read(CONFLICTS_TABLE, CONFLICTS_SCHEMA).rows(named=True)
    assert conflict["trans_num"] == tn("d")
    ingest(store, wh)  # nothing new: the conflict is recorded once
    assert wh.count(CONFLICTS_TABLE) == 1


def test_a_run_takes_at_most_its_cap_and_the_next_run_the_rest(parts) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 1.0, f"{i:032x}")]) for i in range(5)])
    first = ingest(store, wh, max_payloads=2)
    assert first.payloads_read == 2 and first.payloads_left == 3
    second = ingest(store, wh, max_payloads=10)
    assert second.payloads_read == 3 and second.payloads_left == 0
    assert wh.count(LIVE_TABLE) == 5


def test_reconciliation_finds_landed_payloads_no_ledger_accounts_for(parts) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 1.0, tn("e"))])])
    later = ARRIVED + dt.timedelta(hours=1)
    assert stranded_keys(store, wh, LANDING_PREFIX, later) == {HOUR: 1}
    assert stranded_keys(store, wh, LANDING_PREFIX, ARRIVED - dt.timedelta(minutes=1)) == {}
    ingest(store, wh)
    assert stranded_keys(store, wh, LANDING_PREFIX, later) == {}


def test_a_failing_store_write_leaves_nothing_half_done(parts, monkeypatch) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 1.0, tn("f"))]), HOSTILE_BODIES["not-json"]])

    def broken(key: str, data: bytes) -> None:
        raise ConnectionError("object store went away")

    monkeypatch.setattr(store, "put_bytes", broken)
    with pytest.raises(ConnectionError):
        ingest(store, wh)
    assert wh.count(LIVE_TABLE) == 0 and wh.count(LEDGER_TABLE) == 0
    monkeypatch.undo()
    report = ingest(store, wh)  # the retry redoes it all
    assert report.rows_written == 1 and len(report.rejects) == 1
    assert pl.Series(list(store.list(QUARANTINE_PREFIX))).len() == 1


def test_a_stored_row_hashed_the_old_way_is_no_false_conflict_after_an_upgrade(parts) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 10.0, tn("a"))])])
    ingest(store, wh)
    with wh.dialect.connect() as conn:  # as a row written before the hash scheme changed
        conn.execute(f"UPDATE {wh.dialect.table(LIVE_TABLE)} SET row_hash = 'deadbeef'")
    land(store, [body_of([with_value("amt", 10.0, tn("a"))])], 3)
    land(store, [body_of([with_value("amt", 11.0, tn("a"))])], 6)
    report = ingest(store, wh)
    assert report.conflicts == 1 and report.rows_written == 0  # only the changed amount


def test_a_stray_object_in_a_landing_hour_is_ledgered_and_reconciled(parts) -> None:  # noqa: ANN001
    store, wh = parts
    land(store, [body_of([with_value("amt", 1.0, tn("b"))])])
    stray = f"{LANDING_PREFIX}/hour={HOUR[:13]}/README"
    store.put_bytes(stray, b"notes from an operator")
    assert stranded_keys(store, wh, LANDING_PREFIX, ARRIVED) == {HOUR: 1}
    report = ingest(store, wh)
    assert report.rows_written == 1 and [r.payload_key for r in report.rejects] == [stray]
    assert stranded_keys(store, wh, LANDING_PREFIX, ARRIVED + dt.timedelta(hours=1)) == {}


def test_a_local_file_whose_name_is_not_utf8_is_no_object_key(tmp_path) -> None:  # noqa: ANN001
    import os

    store = LocalObjectStore(tmp_path / "objects")
    land(store, [body_of([with_value("amt", 1.0, tn("c"))])])
    hour_dir = os.fsencode(tmp_path / "objects" / LANDING_PREFIX / f"hour={HOUR[:13]}")
    with open(hour_dir + b"/\xff\xfe.json", "wb") as fh:  # what a stray copy could leave
        fh.write(b"{}")
    keys = list(store.list(LANDING_PREFIX))
    assert len(keys) == 1 and all(k.isprintable() for k in keys)
