"""The stand-in's push mode: its rows sent to the decision service at a rate, as a card network
would, against a recording stand-in of the service over real HTTP."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.testclient import TestClient

from decision_api.models import Transaction
from fraud_assets.standin.__main__ import _parser, push_config
from fraud_assets.standin.app import StandinConfig, create_app, load_replay_frame
from fraud_assets.standin.push import PushConfig
from fraud_assets.testing.servers import free_port, serve_app
from fraud_assets_tests.helpers.data import Dataset
from fraud_assets_tests.helpers.waiting import wait_until


@dataclass
class FakeService:
    """Answers POST /v1/decisions like the decision service, recording what it got; ``status``
    other than 200 answers that instead (503: not ready)."""

    status: int = 200
    retry_after: str | None = None
    garbage: bool = False  # answer 200 with a body that is not a decision
    bodies: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/decisions")
        async def decide(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self.times.append(time.monotonic())
                self.headers.append(dict(request.headers))
                if self.status != 200:
                    headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                    return JSONResponse({"detail": "not ready"}, self.status, headers=headers)
                self.bodies.append(body)
            if self.garbage:
                return HTMLResponse("<html>Space is sleeping</html>")
            answer = {"trans_num": body["trans_num"], "decision": "approve", "server_ms": 1.5}
            return JSONResponse(answer)

        return app

    def calls(self) -> int:
        with self.lock:
            return len(self.times)


Served = tuple[FakeService, str]


@pytest.fixture
def service() -> Iterator[Served]:
    fake = FakeService()
    with serve_app(fake.app()) as url:
        yield fake, url


def pushing(dataset: Dataset, url: str, mode: str = "random", **push) -> TestClient:
    """A stand-in (entered as a context: its lifespan runs the pusher) pushing to ``url``."""
    options = {"rate": 40.0, "min_backoff_seconds": 0.4, "max_backoff_seconds": 0.8} | push
    config = StandinConfig(data=dataset.test_csv, mode=mode, push=PushConfig(url=url, **options))
    return TestClient(create_app(config))


def test_push_sends_api_rows_at_the_rate_each_a_new_transaction(
    dataset: Dataset, service: Served
) -> None:
    fake, url = service
    source = set(pl.read_csv(dataset.test_csv, columns=["trans_num"])["trans_num"])
    with pushing(dataset, url, rate=40.0) as client:
        time.sleep(1.5)
        client.app.state.pusher.stop()  # and the pushes in flight are answered
        pushed = client.get("/_control/pushed").json()
    received = len(fake.bodies)
    assert 40 <= received <= 75  # 40 a second for 1.5 s, give or take the start
    for body in fake.bodies:
        Transaction.model_validate(body)  # the service's own request model accepts it
        assert isinstance(body["cc_num"], str) and "event_time" not in body
        run, n, original = body["trans_num"].removeprefix("push-").split("-", 2)
        assert original in source
    ids = [b["trans_num"] for b in fake.bodies]
    assert len(set(ids)) == len(ids) and not set(ids) & source
    assert sorted(ids) == sorted(pushed["trans_num"])  # every push is listed
    decided = [i for i, o in enumerate(pushed["outcome"]) if o == "decided"]
    assert decided and all(pushed["server_ms"][i] == 1.5 for i in decided)
    assert all(pushed["round_trip_ms"][i] > 0 for i in decided)


def test_push_in_replay_mode_sends_rows_in_time_order_with_their_event_time(
    dataset, service
) -> None:
    fake, url = service
    frame, offset = load_replay_frame(dataset.test_csv)
    with pushing(dataset, url, mode="replay", rate=40.0):
        wait_until(lambda: len(fake.bodies) >= 20, seconds=10, every=0.05)
    bodies = fake.bodies[:20]
    times = [b["event_time"] for b in bodies]
    assert times == sorted(times)
    expected = [
        int((t + offset).replace(tzinfo=dt.UTC).timestamp() * 1000)
        for t in frame["event_time"].head(20)
    ]
    assert times == expected
    assert [b["trans_num"].split("-", 3)[-1] for b in bodies] == frame["trans_num"][:20].to_list()
    Transaction.model_validate(bodies[0])


def test_push_backs_off_while_the_service_is_not_ready_then_resumes(
    dataset: Dataset, service: Served
) -> None:
    fake, url = service
    fake.status = 503
    with pushing(dataset, url, rate=100.0, min_backoff_seconds=0.3, max_backoff_seconds=0.6):
        time.sleep(2.0)
        refused = fake.calls()
        assert 2 <= refused <= 12  # a try per back-off, not 200 at the rate
        fake.status = 200
        wait_until(lambda: len(fake.bodies) >= 30, seconds=5, every=0.05)


def test_push_honours_retry_after(dataset: Dataset, service: Served) -> None:
    fake, url = service
    fake.status, fake.retry_after = 429, "1"
    with pushing(dataset, url, rate=100.0, min_backoff_seconds=0.05, max_backoff_seconds=0.05):
        time.sleep(1.5)
        calls = fake.calls()
    assert 1 <= calls <= 4  # about one a second, whatever the back-off says


def test_push_never_crashes_when_the_service_is_unreachable(dataset: Dataset) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with pushing(dataset, nobody, rate=50.0) as client:
        time.sleep(1.5)
        pusher = client.app.state.pusher
        assert pusher.alive()
        assert pusher.totals["unreachable"] <= 8  # backing off, not 75 tries
        assert client.get("/current-transactions").status_code == 200  # the poll path serves


def test_push_survives_answers_it_cannot_read(dataset: Dataset, service: Served) -> None:
    fake, url = service
    fake.garbage = True
    with pushing(dataset, url, rate=50.0) as client:
        time.sleep(1.5)
        pusher = client.app.state.pusher
        assert pusher.alive() and pusher.failing == "failed"
        assert 1 <= pusher.totals["failed"] <= 8  # backing off meanwhile
        fake.garbage = False
        wait_until(lambda: pusher.totals["decided"] >= 10, seconds=5, every=0.05)


def test_push_token_comes_from_the_environment_as_a_bearer(
    dataset: Dataset, service: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = service
    monkeypatch.setenv("FRAUD_STANDIN_PUSH_TOKEN", "s3cret-token")
    args = _parser().parse_args(["--data", str(dataset.test_csv), "--push-url", url])
    config = push_config(args)
    assert config.token == "s3cret-token" and config.rate == 2.0
    assert "s3cret-token" not in repr(vars(args))  # it never was an argument
    standin = StandinConfig(data=dataset.test_csv, push=config)
    with TestClient(create_app(standin)):
        wait_until(lambda: len(fake.bodies) >= 1, seconds=10, every=0.05)
    assert fake.headers[0]["authorization"] == "Bearer s3cret-token"


def test_push_is_off_without_a_url_or_at_rate_zero(dataset: Dataset) -> None:
    parse = _parser().parse_args
    assert push_config(parse(["--data", str(dataset.test_csv)])) is None
    off = parse(["--data", "x.csv", "--push-url", "http://127.0.0.1:1", "--push-rate", "0"])
    assert push_config(off) is None
    with TestClient(create_app(StandinConfig(data=dataset.test_csv))) as client:
        assert client.app.state.pusher is None
        assert client.get("/_control/pushed").json()["trans_num"] == []


def test_push_logs_what_it_sent_and_how_fast_the_answers_were(
    dataset: Dataset, service: Served, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = service
    caplog.set_level(logging.INFO, logger="fraud_assets.standin.push")
    with pushing(dataset, url, rate=40.0, report_seconds=0.5):
        wait_until(lambda: "approve)" in caplog.text, seconds=10, every=0.05)
    line = next(r.getMessage() for r in caplog.records if "approve)" in r.getMessage())
    assert line.startswith("pushed ") and f"to {url}/v1/decisions" in line
    assert "round trip p50 " in line and " ms p99 " in line and "server p50 1.5 ms" in line
