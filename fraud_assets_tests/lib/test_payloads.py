"""Hostile and malformed payloads: each is set aside with its reason, never blocks a good one,
and nothing is coerced with loss."""

import datetime as dt
import json

import pytest

from fraud_assets.lib.landing import Feed, landing_key, parse_payloads, quarantine_key
from fraud_assets.lib.payloads import Limits, PayloadError, decode_body, parse_body
from fraud_assets_tests.helpers.payloads import (
    ARRIVED,
    BAD_ROWS,
    COLUMNS,
    GOOD_ROW,
    HOSTILE_BODIES,
    body_of,
    with_value,
)


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_hostile_body_raises_only_a_payload_error(name: str) -> None:
    with pytest.raises(PayloadError):
        decode_body(HOSTILE_BODIES[name])


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


EVENT_COLUMNS = [*COLUMNS, "event_time"]


@pytest.mark.parametrize(
    ("event_time", "reason"),
    [
        ("0001-01-01T00:00:00", "before 1900"),
        ("1899-12-31 23:59:59", "before 1900"),
        (-2_300_000_000_000, "between 1900 and 9999"),
        ("\u0662\u0660\u0662\u0664-10-28T16:00:00", "not an ISO date-time"),
        ("2024-10-28T16:00:00\x00", "not an ISO date-time"),
        (1.5e12, "integer epoch milliseconds"),
    ],
)
def test_an_implausible_event_time_is_set_aside(event_time: object, reason: str) -> None:
    body = body_of(
        [[*GOOD_ROW, event_time], [*with_value("trans_num", "f" * 32), 1]], EVENT_COLUMNS
    )
    parsed = parse_body(body, ARRIVED, "event_time")
    assert [r.row for r in parsed.rejects][:1] == [0] and reason in parsed.rejects[0].reason


def test_a_string_that_cannot_be_utf8_never_blocks_the_batch() -> None:
    """The outside review's case: valid JSON text holding a lone surrogate once raised
    UnicodeEncodeError out of parse_payloads and lost the whole batch, at every retry."""
    hostile = json.dumps(
        json.dumps({"columns": COLUMNS, "data": [with_value("first", "\ud800", "e" * 32)]})
    ).encode()
    keys = [landing_key(ARRIVED + dt.timedelta(seconds=i)) for i in range(2)]
    batch = parse_payloads(
        [(keys[0], hostile), (keys[1], body_of([with_value("trans_num", "a" * 32)]))]
    )
    assert batch.rows["trans_num"].to_list() == ["a" * 32]
    outcomes = dict(zip(batch.ledger["payload_key"], batch.ledger["outcome"], strict=True))
    assert outcomes == {keys[0]: "rejected", keys[1]: "loaded"}


def test_a_stray_object_under_a_landing_hour_is_ledgered_not_fatal() -> None:
    stray = "landing/transactions/hour=2024-10-28-16/notes.txt"
    good = landing_key(ARRIVED)
    batch = parse_payloads(
        [(stray, b"hello"), (good, body_of([GOOD_ROW]))], hour="2024-10-28-16:00"
    )
    outcomes = dict(zip(batch.ledger["payload_key"], batch.ledger["outcome"], strict=True))
    assert outcomes == {stray: "rejected", good: "loaded"}
    assert "not a landed payload" in batch.rejects[0].reason
    assert set(batch.ledger["batch_hour"]) == {"2024-10-28-16:00"}


CONTENT = [c for c in COLUMNS if c not in ("current_time",)]
CHANGED = {
    "cc_num": 4000123412341234,
    "merchant": "fraud_Other",
    "category": "travel",
    "amt": 61.0,
    "first": "Sam",
    "last": "Edward",
    "gender": "F",
    "street": "839 Amy Street",
    "city": "Lumberton",
    "state": "SC",
    "zip": 28373,
    "lat": 34.7,
    "long": -79.2,
    "city_pop": 14784,
    "job": "Nurse",
    "dob": "1955-11-08",
    "merch_lat": 34.4,
    "merch_long": -78.7,
    "is_fraud": 1,
}


@pytest.mark.parametrize("column", sorted(CHANGED))
def test_a_repeat_that_differs_in_any_content_column_is_a_conflict(column: str) -> None:
    keys = [landing_key(ARRIVED + dt.timedelta(seconds=i)) for i in range(2)]
    first = body_of([with_value("trans_num", "d" * 32)])
    other = body_of([with_value(column, CHANGED[column], "d" * 32)])
    batch = parse_payloads(list(zip(keys, [first, other], strict=True)))
    assert batch.conflicts.height == 1, column


def test_for_payload_feeds_a_different_event_time_is_a_conflict_for_arrival_feeds_not() -> None:
    keys = [landing_key(ARRIVED + dt.timedelta(seconds=i)) for i in range(2)]
    rows = [[*GOOD_ROW, 1_730_000_000_000], [*GOOD_ROW, 1_730_000_060_000]]
    bodies = [body_of([r], EVENT_COLUMNS) for r in rows]
    payload = parse_payloads(list(zip(keys, bodies, strict=True)), Feed("payload"))
    assert payload.conflicts.height == 1
    # The same two calls under arrival semantics: the event time is the arrival itself.
    arrival = parse_payloads(list(zip(keys, bodies, strict=True)), Feed("arrival"))
    assert arrival.conflicts.height == 0 and arrival.duplicates == 1


def test_the_row_hash_cannot_be_fooled_by_separators_inside_fields() -> None:
    import polars as pl

    from fraud_assets.lib.landing import row_hash

    frame = pl.DataFrame(
        {"a": ["x\x1fy", "x", None, "", "-", "1:x"], "b": ["z", "y\x1fz", "", None, None, None]}
    )
    hashes = frame.select(h=row_hash(("a", "b")))["h"].to_list()
    assert len(set(hashes)) == len(hashes)


def test_a_key_no_store_could_hold_is_still_ledgered_not_raised() -> None:
    key = "landing/transactions/hour=2024-10-28-16/\udcff.json"  # a non-UTF-8 file name
    batch = parse_payloads([(key, b"x"), (landing_key(ARRIVED), body_of([GOOD_ROW]))])
    assert batch.ledger.height == 2 and batch.rows.height == 1


def test_the_untypable_characters_are_the_control_categories_and_the_bidi_overrides() -> None:
    """The one compiled class ``check_string`` searches equals what ``unicodedata`` says."""
    import unicodedata

    from fraud_assets.lib.payloads import _BIDI, _UNTYPABLE

    every = (chr(i) for i in range(0x110000))
    wanted = {c for c in every if unicodedata.category(c) in ("Cc", "Zl", "Zp")} | _BIDI
    found = {chr(i) for i in range(0x110000) if _UNTYPABLE.fullmatch(chr(i))}
    assert found == wanted
    assert len(wanted) == 76
