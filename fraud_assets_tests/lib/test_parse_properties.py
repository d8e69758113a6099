"""Property-based: whatever a batch of landed payloads holds, nothing escapes ``parse_payloads``,
every payload is ledgered exactly once, and the good payloads beside hostile ones always load.

``make test`` runs a bounded number of examples; ``make test-props`` runs the long profile
(HYPOTHESIS_PROFILE=long, 100,000 examples).
"""

from __future__ import annotations

import datetime as dt
import json
import math

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.lib.ingest import LEDGER_TABLE, LIVE_TABLE, ingest_hour
from fraud_assets.lib.landing import LEDGER_SCHEMA, Feed, hour_of, hour_prefix, parse_payloads
from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.schema import API_COLUMNS, LIVE_TRANSACTIONS_SCHEMA
from fraud_assets.lib.storage import LocalObjectStore
from fraud_assets.lib.warehouse import Warehouse

ARRIVED = dt.datetime(2024, 10, 28, 16, 58, 5)
ARRIVED_MS = int(ARRIVED.replace(tzinfo=dt.UTC).timestamp() * 1000)
HOUR = hour_of(ARRIVED)
GOOD = {
    "cc_num": 4497913965512794052,
    "merchant": "fraud_Berge, Kautzer and Harris",
    "category": "personal_care",
    "amt": 60.16,
    "first": "Scott",
    "last": "Edwards",
    "gender": "M",
    "street": "838 Amy Street Suite 107",
    "city": "Pembroke",
    "state": "NC",
    "zip": 28372,
    "lat": 34.6902,
    "long": -79.1834,
    "city_pop": 14783,
    "job": "Hospital doctor",
    "dob": "1955-11-07",
    "trans_num": "3cb54a489fb351f73a7db98f6c7bb1ad",
    "merch_lat": 34.38451,
    "merch_long": -78.621062,
    "is_fraud": 0,
    "current_time": ARRIVED_MS,
    "event_time": ARRIVED_MS - 60_000,
}
OUTCOMES = {"loaded", "partly loaded", "rejected"}

# Every character, surrogates and controls included: hostile text is the point.
any_text = st.text(st.characters(codec=None, categories=None), max_size=30)
digits = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    digits,
    st.sampled_from(["1900-01-01", "0001-01-01", "9999-12-31", "2024-02-30", "1e300", "M"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner),
    max_leaves=12,
)


@st.composite
def hostile_row(draw: st.DrawFn, columns: list[str]) -> list:
    """A row that is mostly good, with some fields swapped for hostile values."""
    row = [GOOD[c] if c in GOOD else draw(json_values) for c in columns]
    if not row:
        return draw(st.lists(json_values, max_size=2))
    for i in draw(st.sets(st.integers(0, len(columns) - 1), max_size=len(columns))):
        row[i] = draw(json_values)
    if draw(st.booleans()):
        row = row[: draw(st.integers(0, len(row)))]
    return row


@st.composite
def hostile_body(draw: st.DrawFn) -> bytes:
    """Split frames with hostile rows and columns, other JSON, or raw bytes."""
    kind = draw(st.sampled_from(["frame", "frame", "frame", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        doc = draw(json_values)
    else:
        columns = [*API_COLUMNS, "event_time"]
        if draw(st.booleans()):
            columns = draw(st.permutations(columns))
        if draw(st.booleans()):
            columns = columns[: draw(st.integers(0, len(columns)))] + draw(
                st.lists(any_text, max_size=2)
            )
        rows = draw(st.lists(hostile_row(columns), max_size=4))
        doc = {"columns": columns, "index": list(range(len(rows))), "data": rows}
    text = json.dumps(doc, allow_nan=True)
    encoded = json.dumps(text) if draw(st.booleans()) else text
    return encoded.encode("utf-8", "surrogatepass")


def good_body(trans_num: str) -> bytes:
    columns = [*API_COLUMNS, "event_time"]
    row = [trans_num if c == "trans_num" else GOOD[c] for c in columns]
    return json.dumps(json.dumps({"columns": columns, "index": [0], "data": [row]})).encode()


def key_at(ms: int, tail: str) -> str:
    return f"{hour_prefix(HOUR)}{ms:013d}-{tail}.json"


# Object keys are UTF-8 text (a local store never lists a file name that is not): anything else.
key_text = st.text(st.characters(codec="utf-8"), max_size=30)
stray_keys = st.one_of(
    key_text.map(lambda name: f"{hour_prefix(HOUR)}{name}"),
    key_text.map(lambda name: f"{hour_prefix(HOUR)}sub/{name}.json"),
    st.integers(0, 10**15).map(lambda n: f"{hour_prefix(HOUR)}{n}-x.json"),
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """A batch of hostile payloads (some under stray keys) and good ones: the good ones by
    key, with their trans_num."""
    payloads: dict[str, bytes] = {}
    good: dict[str, str] = {}
    for i in range(draw(st.integers(0, 6))):
        key = draw(stray_keys) if draw(st.booleans()) else key_at(ARRIVED_MS + i, f"h{i}")
        payloads[key] = draw(hostile_body())
    for i in range(draw(st.integers(1, 3))):
        key, trans_num = key_at(ARRIVED_MS + 100 + i, f"g{i}"), f"good{i:028d}"
        payloads[key] = good_body(trans_num)
        good[key] = trans_num
    return list(payloads.items()), good


FEEDS = st.sampled_from([Feed("arrival"), Feed("payload", "event_time")])


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=batches(), feed=FEEDS)
def test_no_input_escapes_and_every_payload_is_ledgered_once(batch, feed: Feed) -> None:  # noqa: ANN001
    payloads, good = batch
    parsed = parse_payloads(payloads, feed, Limits(), ARRIVED, hour=HOUR)
    ledger = parsed.ledger
    assert sorted(ledger["payload_key"]) == sorted(k for k, _ in payloads)
    assert set(ledger["outcome"]) <= OUTCOMES
    outcome = dict(zip(ledger["payload_key"], ledger["outcome"], strict=True))
    loaded = set(parsed.rows["trans_num"])
    for key, trans_num in good.items():
        assert outcome[key] == "loaded", key
        assert trans_num in loaded
    for entry in ledger.iter_rows(named=True):
        assert (entry["outcome"] == "loaded") == (entry["rows_rejected"] == 0)
        assert entry["outcome"] == "loaded" or entry["reason"]
    assert parsed.rows.schema == LIVE_TRANSACTIONS_SCHEMA
    assert parsed.rows["trans_num"].n_unique() == parsed.rows.height
    for amount in parsed.rows["amt"]:
        assert math.isfinite(amount) and 0 <= amount <= Limits().max_amount


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=batches(), feed=FEEDS)
def test_whatever_parses_is_stored_and_every_payload_is_accounted_for(
    tmp_path_factory, batch, feed: Feed
) -> None:  # noqa: ANN001
    payloads, good = batch
    root = tmp_path_factory.mktemp("props")
    store, wh = LocalObjectStore(root / "objects"), Warehouse(f"sqlite:///{root / 'wh.db'}")
    landed = []
    for key, body in payloads:
        try:
            store.put_bytes(key, body)
        except (OSError, ValueError):
            continue  # a name the file system refuses can never be landed, nor listed
        landed.append(key)
    report = ingest_hour(store, wh, HOUR, feed, Limits(), 100, now=ARRIVED)
    ledger = wh.read(LEDGER_TABLE, LEDGER_SCHEMA)
    assert report.payloads_left == 0
    assert set(ledger["payload_key"]) == set(store.list(hour_prefix(HOUR)))
    stored = set(wh.read(LIVE_TABLE, LIVE_TRANSACTIONS_SCHEMA)["trans_num"])
    assert {good[k] for k in landed if k in good} <= stored
    again = ingest_hour(store, wh, HOUR, feed, Limits(), 100, now=ARRIVED)
    assert again.payloads_read == 0 and again.rows_written == 0


form_values = st.one_of(scalars, st.floats(-1e12, 1e12).map(str), st.dates().map(str))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.fixed_dictionaries(
        {
            name: form_values
            for name in (
                "amount",
                "category",
                "merchant_lat",
                "merchant_long",
                "cardholder_lat",
                "cardholder_long",
                "date_of_birth",
                "transaction_time",
                "card_number",
                "gender",
                "city_population",
            )
        }
    )
)
def test_the_manual_form_gives_a_clear_error_or_a_row_the_features_can_read(fields) -> None:  # noqa: ANN001
    from app_gradio.scoring import InvalidTransaction, parse_form
    from fraud_assets.lib.features import for_semantics

    try:
        tx = parse_form(**fields, now=ARRIVED)
    except InvalidTransaction as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    frame = tx.to_frame()
    assert 0 <= frame["amt"][0] <= Limits().max_amount
    for semantics in ("arrival", "payload"):
        fs = for_semantics(semantics)
        features = fs.serving_features(frame, fs.build_state(frame.head(0)))
        assert features.height == 1


@st.composite
def hostile_request(draw: st.DrawFn) -> bytes:
    """A decision request body: mostly good fields, some hostile, some missing or extra."""
    body = {c: GOOD[c] for c in API_COLUMNS if c != "current_time"} | {"cc_num": "4497913965"}
    for name in draw(st.sets(st.sampled_from([*body, "event_time", "current_time"]))):
        body[name] = draw(json_values)
    for name in draw(st.sets(st.sampled_from(sorted(body)), max_size=2)):
        body.pop(name, None)
    text = json.dumps(body, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(body=hostile_request(), feed=FEEDS)
def test_a_decision_request_gets_a_clear_error_or_a_row_the_serving_path_reads(
    body: bytes, feed: Feed
) -> None:
    """What the decision service and the stream worker do with a body (its model, then the
    live path's row checks): a ValidationError or a PayloadError with a reason, or a row
    within the live path's bounds that both feature sets can read. Never another exception."""
    from pydantic import ValidationError

    from decision_api.models import Transaction
    from fraud_assets.lib.deciding import RowChecker
    from fraud_assets.lib.features import for_semantics
    from fraud_assets.lib.payloads import PayloadError
    from fraud_assets.lib.schema import TRANSACTION_SCHEMA

    field = feed.event_time_field if feed.semantics == "payload" else None
    checker = RowChecker(Limits(), field)
    try:
        values = Transaction.model_validate_json(body).model_dump(exclude_none=True)
        row = checker.check(values, ARRIVED)
    except ValidationError as exc:
        assert exc.errors() and all(e["msg"] for e in exc.errors())
        return
    except PayloadError as exc:
        assert str(exc)
        return
    assert 0 <= row["amt"] <= Limits().max_amount
    frame = pl.DataFrame([{c: row.get(c) for c in TRANSACTION_SCHEMA}], schema=TRANSACTION_SCHEMA)
    fs = for_semantics(feed.semantics)
    assert fs.serving_features(frame, fs.build_state(frame.head(0))).height == 1
