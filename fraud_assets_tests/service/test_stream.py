"""The stream path on real brokers (NATS JetStream, Redis Streams, RabbitMQ on this machine):
workers of one consumer group (``python -m decision_api consume``) decide every published
transaction once, whatever is killed, poisoned, promoted or stopped on the way. Counted
against the decision log, never against a worker's own counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import polars as pl
import pytest
import requests

from fraud_assets.lib import decision_log
from fraud_assets.lib.streams import Stream, Topics, open_stream
from fraud_assets.testing import register
from fraud_assets.testing.servers import free_port
from fraud_assets_tests.helpers.service import Deployment, bodies, stop

pytestmark = pytest.mark.integration
BROKERS = {
    "nats": "nats://127.0.0.1:4222",
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
}


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    with contextlib.suppress(OSError), socket.create_connection((parsed.hostname, parsed.port), 2):
        return True
    return False


@pytest.fixture(params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    url = BROKERS[request.param]
    if not reachable(url):
        pytest.skip(
            f"{request.param} is not running on {urlparse(url).netloc}: the stream tests need "
            "a real broker (this machine's kind starts NATS with JetStream, Redis and RabbitMQ)"
        )
    return url


@pytest.fixture
def topics() -> Topics:
    tag = uuid.uuid4().hex[:10]
    return Topics(f"tx-{tag}", f"decided-{tag}", f"dead-{tag}")


@pytest.fixture
def stream_env(deployment: Deployment, broker: str, topics: Topics) -> Deployment:
    """The deployment's environment with the stream path's variables: the broker, the topics
    and this test's own consumer group."""
    env = deployment.env | {
        "FRAUD_STREAM_URL": broker,
        "FRAUD_STREAM_INPUT": topics.input,
        "FRAUD_STREAM_OUTPUT": topics.output,
        "FRAUD_STREAM_DEAD_LETTERS": topics.dead_letters,
        "FRAUD_STREAM_GROUP": f"group-{topics.input}",
        "FRAUD_STREAM_ACK_WAIT_SECONDS": "3",
        "FRAUD_STREAM_BATCH": "100",
    }
    return Deployment(deployment.root, env, deployment.warehouse, deployment.tracking_uri)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


async def _with_stream(url: str, topics: Topics, use: Callable[[Stream], object]) -> object:
    stream = open_stream(url, topics, f"group-{topics.input}", "test")
    await stream.start(consume=False)
    try:
        return await use(stream)
    finally:
        await stream.close()


def publish(url: str, topics: Topics, messages: list[bytes]) -> None:
    run(_with_stream(url, topics, lambda s: s.publish(topics.input, messages)))


def count(url: str, topics: Topics, topic: str) -> int:
    return run(_with_stream(url, topics, lambda s: s.count(topic)))


@contextlib.contextmanager
def worker(env: Deployment, name: str) -> Iterator[subprocess.Popen]:
    """A worker of the group, in its own process, once it is in its group with a champion
    (its metrics answer then)."""
    log, port = env.root / f"worker-{name}.log", free_port()
    env.env["FRAUD_STREAM_METRICS_PORT"] = str(port)
    with env.process(["consume"], log) as proc:
        deadline = time.monotonic() + 90
        while not _answers(f"http://127.0.0.1:{port}/metrics"):
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, f"worker {name} never started"
            time.sleep(0.2)
        yield proc


def _answers(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url, timeout=2).status_code == 200
    return False


def logged(env: Deployment, trans_nums: list[str]) -> pl.DataFrame:
    return decision_log.read_logged(env.warehouse, trans_nums)


def wait_logged(env: Deployment, trans_nums: list[str], seconds: float = 90) -> pl.DataFrame:
    """The log's rows of ``trans_nums`` once all are there (or what is there at the deadline)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = logged(env, trans_nums)
        if rows.height >= len(trans_nums) or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def wait_until(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def messages(rows: pl.DataFrame, copies: int, tag: str) -> tuple[list[bytes], list[str]]:
    work = bodies(rows, copies, tag)
    return [json.dumps(b).encode() for b in work], [b["trans_num"] for b in work]


def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,  # noqa: ANN001
) -> None:
    sent, ids = messages(halves[1].head(300), 2, "k")
    publish(broker, topics, sent)
    with worker(stream_env, "a") as first:
        wait_until(lambda: logged(stream_env, ids).height >= 100)
        stop(first, signal.SIGKILL)  # mid-stream: a batch in hand, decided or not, unacked
    with worker(stream_env, "b"):
        rows = wait_logged(stream_env, ids)
    assert rows.height == len(ids) and rows["trans_num"].is_unique().all()
    assert set(rows["decided_by"]) == {"stream"}
    assert count(broker, topics, topics.dead_letters) == 0


def test_a_poison_message_is_dead_lettered_and_the_stream_goes_on(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,  # noqa: ANN001
) -> None:
    good, ids = messages(halves[1].head(40), 1, "p")
    body = json.loads(good[0])
    poison = [
        b"not json at all",
        json.dumps(body | {"trans_num": "p-bad-amount", "amt": 1e300}).encode(),
        json.dumps(body | {"trans_num": "p-bad-field", "first": "Sc\u001bott"}).encode(),
        json.dumps({"trans_num": "p-missing"}).encode(),
    ]
    publish(broker, topics, good[:20] + poison + good[20:])
    with worker(stream_env, "a"):
        rows = wait_logged(stream_env, ids)
        wait_until(lambda: count(broker, topics, topics.dead_letters) == len(poison))
    assert rows.height == len(ids)
    assert logged(stream_env, ["p-bad-amount", "p-bad-field", "p-missing"]).height == 0


@pytest.mark.parametrize("broker", ["nats", "redis"], indirect=True)
def test_two_workers_share_the_stream_and_neither_decides_what_the_other_did(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,  # noqa: ANN001
) -> None:
    sent, ids = messages(halves[1].head(300), 2, "s")
    with worker(stream_env, "a"), worker(stream_env, "b"):  # both in the group, then the stream
        publish(broker, topics, sent)
        rows = wait_logged(stream_env, ids)
        wait_until(lambda: count(broker, topics, topics.output) >= len(ids))
        published = count(broker, topics, topics.output)
    assert rows.height == len(ids) and rows["trans_num"].is_unique().all()
    assert rows["client"].n_unique() == 2  # both workers decided some
    assert published == len(ids)  # one decision published per transaction: none twice


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_champion_promoted_mid_stream_takes_over_with_no_gap(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,
    models,  # noqa: ANN001
) -> None:
    first_half, ids_a = messages(halves[1].head(200), 1, "a")
    second_half, ids_b = messages(halves[1].head(200), 1, "b")
    with worker(stream_env, "a"):
        publish(broker, topics, first_half)
        wait_logged(stream_env, ids_a)
        second = register(models["arrival-b"], stream_env.root, stream_env.tracking_uri, "b")
        time.sleep(1.5)  # the refresh interval, and a margin
        publish(broker, topics, second_half)
        rows = wait_logged(stream_env, ids_a + ids_b)
    assert rows.height == len(ids_a) + len(ids_b)  # no gap: every one decided
    versions = dict(zip(rows["trans_num"], rows["model_version"], strict=True))
    assert {versions[t] for t in ids_b} == {second}
    assert len({versions[t] for t in ids_a}) == 1 and second not in {versions[t] for t in ids_a}


@pytest.mark.parametrize("broker", ["nats", "rabbitmq"], indirect=True)
def test_a_graceful_stop_acknowledges_everything_it_decided(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,  # noqa: ANN001
) -> None:
    sent, ids = messages(halves[1].head(400), 5, "g")
    publish(broker, topics, sent)
    with worker(stream_env, "a") as proc:
        wait_until(lambda: logged(stream_env, ids).height >= 200)
        assert stop(proc, signal.SIGTERM) == 0  # it finishes its batch and exits cleanly
    decided = logged(stream_env, ids).height
    left = run(_with_stream(broker, topics, lambda s: s.lag()))
    assert decided < len(ids) and left == len(ids) - decided  # nothing decided is redelivered
    assert count(broker, topics, topics.output) == decided


@pytest.mark.parametrize("broker", ["nats", "redis"], indirect=True)
def test_dagster_sees_the_streams_lag_and_dead_letters_and_its_checks_say_so(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,  # noqa: ANN001
) -> None:
    import dagster as dg

    from fraud_assets.defs.resources import StreamResource, WarehouseResource
    from fraud_assets.defs.scoring.stream import (
        dead_letters_under_rate,
        stream_lag_under_bound,
        stream_sensor,
    )

    sent, _ = messages(halves[1].head(50), 1, "o")
    publish(broker, topics, sent)
    run(_with_stream(broker, topics, lambda s: s.publish(topics.dead_letters, [b"{}"] * 2)))
    wh = stream_env.warehouse
    resources = {
        "stream": StreamResource(
            url=broker, input=topics.input, output=topics.output,
            dead_letters=topics.dead_letters, group=f"group-{topics.input}",
            lag_bound=10, dead_letter_rate=0.5,
        ),
        "warehouse": WarehouseResource(url=wh.url, db_schema=wh.schema),
    }  # fmt: skip
    with dg.build_sensor_context(resources=resources) as context:
        result = stream_sensor(30)(context)
    [observation] = result.asset_events
    assert observation.metadata["consumer_lag"].value == 50
    assert observation.metadata["dead_letters"].value == 2
    lag = stream_lag_under_bound(**resources)  # 50 waiting, against a bound of 10
    dead = dead_letters_under_rate(**resources)  # 2 dead of 2 seen, against half
    assert not lag.passed and "50 transactions wait" in lag.metadata["reason"].value
    assert not dead.passed and lag.asset_key == dead.asset_key == observation.asset_key
