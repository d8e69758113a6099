"""Hostile and malformed payloads: each is set aside with its reason, never blocks a good one,
and nothing is coerced with loss."""

import datetime as dt
import json

import pytest

from fraud_assets.lib.landing import Feed, landing_key, parse_payloads, quarantine_key
from fraud_assets.lib.payloads import Limits, PayloadError, decode_body, parse_body
from fraud_assets_tests.test_api import REAL_INNER

ARRIVED = dt.datetime(2024, 10, 28, 16, 58, 5)
COLUMNS = json.loads(REAL_INNER)["columns"]
GOOD_ROW = json.loads(REAL_INNER)["data"][0]


def body_of(rows: list[list], columns: list = COLUMNS) -> bytes:
    return json.dumps(
        json.dumps({"columns": columns, "index": [0] * len(rows), "data": rows})
    ).encode()


def with_value(column: str, value: object, trans_num: str | None = None) -> list:
    row = list(GOOD_ROW)
    row[COLUMNS.index(column)] = value
    if trans_num:
        row[COLUMNS.index("trans_num")] = trans_num
    return row


HOSTILE_BODIES = {
    "columns-is-an-object": json.dumps(json.dumps({"columns": {"a": 1}, "data": []})).encode(),
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "data-is-a-string": json.dumps(json.dumps({"columns": COLUMNS, "data": "x"})).encode(),
    "not-json": b"\xff\xfe garbage",
    "bare-number": b"42",
    "repeated-column": json.dumps(json.dumps({"columns": ["a", "a"], "data": []})).encode(),
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_hostile_body_raises_only_a_payload_error(name: str) -> None:
    with pytest.raises(PayloadError):
        decode_body(HOSTILE_BODIES[name])


BAD_ROWS = {
    "trans_num-300-chars": (with_value("trans_num", "a" * 300), "trans_num"),
    "trans_num-with-NUL": (with_value("trans_num", "ab\x00cd"), "trans_num"),
    "trans_num-path": (with_value("trans_num", "../../etc/passwd"), "trans_num"),
    "NUL-in-a-string": (with_value("city", "Pem\x00broke"), "NUL"),
    "huge-string": (with_value("street", "x" * 5000), "longer than"),
    "amount-inf": (with_value("amt", float("inf")), "finite"),
    "amount-1e300": (with_value("amt", 1e300), "outside"),
    "amount-negative": (with_value("amt", -1.0), "outside"),
    "amount-true": (with_value("amt", True), "finite number"),
    "zip-1.7": (with_value("zip", 1.7), "whole number"),
    "is_fraud-7": (with_value("is_fraud", 7), "outside 0..1"),
    "gender-Z": (with_value("gender", "Z"), "gender must be one of F, M"),
    "category-unknown": (with_value("category", "casino"), "category"),
    "dob-not-a-date": (with_value("dob", "1955-13-45"), "real YYYY-MM-DD"),
    "year-10000": (with_value("current_time", 253_402_300_800_001), "between 1970 and 9999"),
    "current_time-1938": (with_value("current_time", -1_000_000_000_000), "between 1970"),
    "current_time-far-from-arrival": (with_value("current_time", 1_600_000_000_000), "more than"),
    "lat-out-of-range": (with_value("lat", 123.0), "outside"),
    "cc_num-letters": (with_value("cc_num", "4000abc"), "cc_num"),
    "city_pop-text": (with_value("city_pop", "many"), "whole number"),
}


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_a_bad_row_is_set_aside_with_its_reason_and_the_good_row_kept(name: str) -> None:
    bad, reason = BAD_ROWS[name]
    good = with_value("trans_num", "f" * 32)
    parsed = parse_body(body_of([bad, good]), ARRIVED)
    assert [r["trans_num"] for r in parsed.rows] == ["f" * 32]
    [reject] = parsed.rejects
    assert reject.row == 0 and reason in reject.reason


def test_whole_numbers_in_float_form_are_kept_without_loss() -> None:
    parsed = parse_body(body_of([with_value("zip", 28372.0)]), ARRIVED)
    assert parsed.rows[0]["zip"] == 28372 and not parsed.rejects


def test_arrival_feeds_take_the_arrival_as_event_time_payload_feeds_their_field() -> None:
    arrival = parse_body(body_of([GOOD_ROW]), ARRIVED)
    assert arrival.rows[0]["event_time"] == ARRIVED
    columns = [*COLUMNS, "event_time"]
    body = body_of([[*GOOD_ROW, 1_592_000_000_000]], columns)
    payload = parse_body(body, ARRIVED, "event_time")
    assert payload.rows[0]["event_time"] == dt.datetime(2020, 6, 12, 22, 13, 20)
    with pytest.raises(PayloadError, match="lacks columns: event_time"):
        parse_body(body_of([GOOD_ROW]), ARRIVED, "event_time")
    future = body_of([[*GOOD_ROW, 1_900_000_000_000]], columns)
    assert "future" in parse_body(future, ARRIVED, "event_time").rejects[0].reason


def test_a_poison_payload_never_blocks_the_good_payloads_beside_it() -> None:
    good_keys = [landing_key(ARRIVED + dt.timedelta(seconds=i)) for i in range(3)]
    payloads = [
        (good_keys[0], body_of([with_value("trans_num", "a" * 32)])),
        (landing_key(ARRIVED), HOSTILE_BODIES["deep-nesting"]),
        (landing_key(ARRIVED), HOSTILE_BODIES["columns-is-an-object"]),
        (good_keys[1], body_of([with_value("trans_num", "b" * 32)])),
        (landing_key(ARRIVED), body_of([with_value("amt", float("nan"))])),
        (good_keys[2], body_of([with_value("trans_num", "c" * 32)])),
    ]
    batch = parse_payloads(payloads, Feed(), Limits())
    assert sorted(batch.rows["trans_num"]) == ["a" * 32, "b" * 32, "c" * 32]
    assert len(batch.rejects) == 3
    assert batch.ledger.height == 6 and set(batch.ledger["payload_key"]) == {k for k, _ in payloads}
    outcomes = dict(zip(batch.ledger["payload_key"], batch.ledger["outcome"], strict=True))
    assert [outcomes[k] for k in good_keys] == ["loaded"] * 3


def test_quarantine_keys_are_hashes_never_payload_content() -> None:
    key = landing_key(ARRIVED)
    q = quarantine_key(key, 0)
    assert q.startswith("quarantine/transactions/hour=2024-10-28-16/")
    name = q.rsplit("/", 1)[-1]
    assert len(name) == len("0" * 32 + ".json") and set(name[:-5]) <= set("0123456789abcdef")
    assert quarantine_key(key, 0) == q != quarantine_key(key, 1)


def test_a_repeat_with_other_content_is_a_conflict_and_the_first_copy_is_kept() -> None:
    first = body_of([with_value("amt", 10.0, "d" * 32)])
    repeat = body_of([with_value("amt", 10.0, "d" * 32)])
    changed = body_of([with_value("amt", 999.0, "d" * 32)])
    keys = [landing_key(ARRIVED + dt.timedelta(seconds=i)) for i in range(3)]
    batch = parse_payloads(list(zip(keys, [first, repeat, changed], strict=True)))
    assert batch.rows.height == 1 and batch.rows["amt"][0] == 10.0
    assert batch.duplicates == 2
    [conflict] = batch.conflicts.rows(named=True)
    assert conflict["trans_num"] == "d" * 32
    assert (
        conflict["kept_payload_key"] == keys[0] and conflict["conflicting_payload_key"] == keys[2]
    )
