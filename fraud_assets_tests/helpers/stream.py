"""Helpers of the stream path's tests: the brokers, publishing and counting through
``lib/streams.py``, a worker process, and the decision log read back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator

import polars as pl

from fraud_assets.lib import decision_log
from fraud_assets.lib.streams import Stream, Topics, open_stream
from fraud_assets.testing.servers import free_port, wait_answering
from fraud_assets_tests.helpers.service import Deployment, bodies
from fraud_assets_tests.helpers.waiting import wait_until

BROKERS = {
    "nats": "nats://127.0.0.1:4222",
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
}


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


async def with_stream(url: str, topics: Topics, use: Callable[[Stream], object]) -> object:
    stream = open_stream(url, topics, f"group-{topics.input}", "test")
    await stream.start(consume=False)
    try:
        return await use(stream)
    finally:
        await stream.close()


def publish(url: str, topics: Topics, messages: list[bytes]) -> None:
    run(with_stream(url, topics, lambda s: s.publish(topics.input, messages)))


def count(url: str, topics: Topics, topic: str) -> int:
    return run(with_stream(url, topics, lambda s: s.count(topic)))


@contextlib.contextmanager
def worker(env: Deployment, name: str) -> Iterator[subprocess.Popen]:
    """A worker of the group, in its own process, once it is in its group with a champion
    (its metrics answer then)."""
    log, port = env.root / f"worker-{name}.log", free_port()
    env.env["FRAUD_STREAM_METRICS_PORT"] = str(port)
    with env.process(["consume"], log) as proc:
        wait_answering(f"http://127.0.0.1:{port}/metrics", proc, log, 90, f"worker {name}")
        yield proc


def wait_serving(env: Deployment, name: str, version: str, seconds: float = 60) -> None:
    """Until worker ``name`` says (in its log) that it serves champion ``version``."""
    log = env.root / f"worker-{name}.log"
    wait_until(lambda: f"serving champion v{version}\n" in log.read_text(), seconds, every=0.1)


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


def messages(rows: pl.DataFrame, copies: int, tag: str) -> tuple[list[bytes], list[str]]:
    work = bodies(rows, copies, tag)
    return [json.dumps(b).encode() for b in work], [b["trans_num"] for b in work]
