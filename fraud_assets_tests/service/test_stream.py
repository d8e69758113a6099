"""The stream path's delivery on real brokers (NATS JetStream, Redis Streams, RabbitMQ on this
machine): a worker of a consumer group (``python -m decision_api consume``) decides every
published transaction once, whatever is killed, poisoned or stopped on the way. Counted
against the decision log, never against a worker's own counters. (Fixtures: ``conftest.py``;
the group, promotion, Dagster and the stand-in: ``test_stream_operations.py``.)"""

from __future__ import annotations

import json
import signal

import pytest

from fraud_assets.lib.streams import Topics
from fraud_assets_tests.helpers.service import Deployment, stop
from fraud_assets_tests.helpers.stream import (
    count,
    logged,
    messages,
    publish,
    run,
    wait_logged,
    with_stream,
    worker,
)
from fraud_assets_tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


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
    left = run(with_stream(broker, topics, lambda s: s.lag()))
    assert decided < len(ids) and left == len(ids) - decided  # nothing decided is redelivered
    assert count(broker, topics, topics.output) == decided
