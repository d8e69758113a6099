"""The transactions API contract: exact parsing, and a client that copes with a flaky server."""

import datetime as dt
import json
import time

import polars as pl
import pytest
import requests

from fraud_assets.lib.api import ApiUnavailable, TransactionsClient, encode_payload
from fraud_assets.lib.payloads import PayloadError, parse_payload
from fraud_assets_tests.helpers.payloads import REAL_BODY, REAL_INNER


def test_real_sample_payload_parses_without_loss() -> None:
    row = parse_payload(REAL_BODY).row(0, named=True)
    assert row["cc_num"] == "4497913965512794052"  # all 19 digits, no float rounding
    assert row["event_time"] == dt.datetime(2024, 10, 28, 16, 58, 4, 25000)  # from epoch ms
    assert row["amt"] == 60.16 and row["zip"] == 28372 and row["is_fraud"] == 0
    assert row["merchant"] == "fraud_Berge, Kautzer and Harris"
    assert row["trans_num"] == "3cb54a489fb351f73a7db98f6c7bb1ad"


def test_encoding_matches_the_real_wire_format_byte_for_byte() -> None:
    parsed = parse_payload(REAL_BODY)
    api_rows = parsed.with_columns(pl.col("is_fraud").cast(pl.Int64))
    assert encode_payload(api_rows, [301199], [1730134684025]) == REAL_BODY


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<!DOCTYPE html><html>Space is sleeping</html>", "not JSON"),
        (REAL_BODY[: len(REAL_BODY) // 2], "not JSON"),
        (json.dumps(REAL_INNER.replace('"amt"', '"amount"')).encode(), "lacks columns: amt"),
        (json.dumps(json.dumps({"rows": []})).encode(), "'columns' must be a list"),
        (json.dumps(REAL_INNER.replace("1730134684025", '"2024-10-28"')).encode(), "current_time"),
        (json.dumps(REAL_INNER.replace("60.16", '"sixty"')).encode(), "do not fit"),
        (
            json.dumps(REAL_INNER.replace(",0,1730134684025]", ",1730134684025]")).encode(),
            "row length does not match",
        ),
    ],
    ids=[
        "html",
        "truncated",
        "wrong-columns",
        "not-split",
        "time-as-text",
        "bad-amount",
        "short-row",
    ],
)
def test_malformed_payloads_raise_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_payload(body)


def _force(url: str, kinds: str) -> None:
    requests.post(f"{url}/_control/faults", params={"kinds": kinds}, timeout=5).raise_for_status()


@pytest.mark.integration
def test_client_fetches_real_contract_rows_from_the_standin(standin_url: str) -> None:
    client = TransactionsClient(standin_url, min_interval_seconds=0)
    payload = client.fetch()
    assert isinstance(json.loads(payload.body), str)  # double-encoded, like the real API
    rows = parse_payload(payload.body)
    assert rows.height == 3 and rows["trans_num"].str.len_chars().to_list() == [32] * 3


@pytest.mark.integration
def test_client_retries_server_errors_then_succeeds(standin_url: str) -> None:
    _force(standin_url, "5xx,5xx")
    payload = TransactionsClient(standin_url, min_interval_seconds=0, max_attempts=3).fetch()
    assert parse_payload(payload.body).height == 3


@pytest.mark.integration
def test_client_honours_retry_after_on_429(standin_url: str) -> None:
    _force(standin_url, "429")
    started = time.monotonic()
    TransactionsClient(standin_url, min_interval_seconds=0).fetch()
    assert time.monotonic() - started >= 2.0  # the stand-in says Retry-After: 2


@pytest.mark.integration
def test_client_retries_a_timeout(standin_url: str) -> None:
    _force(standin_url, "timeout")
    client = TransactionsClient(standin_url, timeout_seconds=0.5, min_interval_seconds=0)
    assert parse_payload(client.fetch().body).height == 3


@pytest.mark.integration
def test_client_gives_up_with_a_clear_error_when_the_api_stays_down(standin_url: str) -> None:
    _force(standin_url, "5xx,5xx")
    client = TransactionsClient(standin_url, min_interval_seconds=0, max_attempts=2)
    with pytest.raises(ApiUnavailable, match="server error 503.*after 2 attempts"):
        client.fetch()


def test_client_reports_an_unreachable_api() -> None:
    client = TransactionsClient("http://127.0.0.1:9", min_interval_seconds=0, max_attempts=1)
    with pytest.raises(ApiUnavailable, match="ConnectionError"):
        client.fetch()


def test_client_keeps_to_its_call_rate() -> None:
    client = TransactionsClient("http://127.0.0.1:9", min_interval_seconds=0.3, max_attempts=1)
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(ApiUnavailable):
            client.fetch()
    assert time.monotonic() - started >= 0.6


def test_standin_replays_at_the_configured_rate(dataset) -> None:
    """Rows are due at 50/s from the app's start: each call serves what fell due since the last
    one, bounded by clock readings taken around it (no assumption about how long a sleep or a
    call takes on a loaded machine)."""
    from fastapi.testclient import TestClient

    from fraud_assets.standin.app import StandinConfig, create_app

    rate = 50
    config = StandinConfig(data=dataset.test_csv, mode="replay", rate_per_second=rate)
    before_start = time.monotonic()
    client = TestClient(create_app(config))
    after_start = time.monotonic()
    frames, served_before = [], 0
    for _ in range(2):
        time.sleep(0.4)
        call_start = time.monotonic()
        frame = parse_payload(client.get("/current-transactions").content, "event_time")
        call_end = time.monotonic()
        lowest = int((call_start - after_start) * rate) - served_before
        highest = int((call_end - before_start) * rate) - served_before
        assert lowest <= frame.height <= highest and frame.height > 0
        served_before += frame.height
        frames.append(frame)
    first, second = frames
    assert not set(first["trans_num"]) & set(second["trans_num"])  # nothing served twice
    assert first["event_time"].max() <= second["event_time"].min()  # in event-time order
    served = client.get("/_control/served").json()
    assert served["trans_num"] == [*first["trans_num"], *second["trans_num"]]


def test_standin_by_default_behaves_like_the_real_api(dataset) -> None:
    """Random rows, current_time = the server's clock, and no true event time anywhere."""
    from fastapi.testclient import TestClient

    from fraud_assets.standin.app import StandinConfig, create_app

    client = TestClient(create_app(StandinConfig(data=dataset.test_csv, rows_per_call=50)))
    before = time.time() * 1000
    body = client.get("/current-transactions").content
    inner = json.loads(json.loads(body))
    assert inner["columns"][-1] == "current_time" and "event_time" not in inner["columns"]
    assert "trans_date_trans_time" not in inner["columns"] and "unix_time" not in inner["columns"]
    now_ms = {row[-1] for row in inner["data"]}
    assert len(now_ms) == 1 and before - 1000 <= now_ms.pop() <= time.time() * 1000 + 1000
    assert inner["index"] != sorted(inner["index"])  # drawn at random, not in file order


def test_standin_emulates_the_rate_limit_with_429(dataset) -> None:
    from fastapi.testclient import TestClient

    from fraud_assets.standin.app import StandinConfig, create_app

    client = TestClient(create_app(StandinConfig(data=dataset.test_csv, rate_limit_per_minute=3)))
    statuses = [client.get("/current-transactions").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert client.get("/current-transactions").headers["Retry-After"] == "2"


def _slow_app(delay: float, body: bytes = b'"{}"', status: int = 200, headers=None):  # noqa: ANN001, ANN202
    import asyncio

    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()

    @app.get("/current-transactions")
    async def current() -> Response:
        await asyncio.sleep(delay)
        return Response(body, status_code=status, headers=headers or {})

    return app


def test_a_fetch_never_outlasts_its_budget() -> None:
    from fraud_assets.testing.servers import serve_app

    with serve_app(_slow_app(5.0)) as url:
        client = TransactionsClient(
            url, timeout_seconds=10, min_interval_seconds=0, budget_seconds=2.0, max_attempts=5
        )
        started = time.monotonic()
        with pytest.raises(ApiUnavailable):
            client.fetch()
        assert time.monotonic() - started < 3.5


def test_a_long_retry_after_ends_the_fetch_instead_of_blocking() -> None:
    from fraud_assets.testing.servers import serve_app

    app = _slow_app(0, b"slow down", 429, {"Retry-After": "120"})
    with serve_app(app) as url:
        client = TransactionsClient(url, min_interval_seconds=0, budget_seconds=10)
        started = time.monotonic()
        with pytest.raises(ApiUnavailable, match="budget"):
            client.fetch()
        assert time.monotonic() - started < 2


def test_client_refuses_a_body_over_the_cap() -> None:
    from fraud_assets.testing.servers import serve_app

    with serve_app(_slow_app(0, b"x" * 200_000)) as url:
        client = TransactionsClient(url, min_interval_seconds=0, max_body_bytes=50_000)
        with pytest.raises(ApiUnavailable, match="cap|over the"):
            client.fetch()
