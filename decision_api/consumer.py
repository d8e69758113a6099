"""The decision service's stream mode: transactions consumed from a broker in a consumer group,
decided through the same path as ``POST /v1/decisions`` (``lib/deciding.py``: the champion,
the card state, the decision log), each decision published to the output topic.

A batch at a time, at most ``batch`` messages in flight (backpressure): every message is
parsed and checked on its own, and a bad one goes to the dead-letter topic with its reason
while the others go on; the good ones are decided together and logged before anything is
published or acknowledged; the batch is acknowledged last. A crash anywhere means
redelivery, and a redelivered transaction is a repeat in the log, never a second decision.
A message that cannot be decided while others in its batch can (or that came back too many
times) is dead-lettered too, so nothing blocks its partition. SIGTERM finishes the batch in
hand, acknowledges it, and exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from decision_api.models import Transaction
from fraud_assets.lib import deciding
from fraud_assets.lib.champion import NotReady
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.deciding import Decider, Decision, RowChecker
from fraud_assets.lib.payloads import PayloadError
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.streams import Message, Stream

log = logging.getLogger(__name__)

#: A message delivered this many times without being decided is dead-lettered.
MAX_ATTEMPTS = 5
#: End-to-end latency buckets: from the broker's publish time to the decision's publication.
E2E_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def consumer_name() -> str:
    """This worker's name in the group: host and process."""
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamMetrics:
    """What a stream worker exposes for Prometheus."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.decided = Counter("fraud_stream_decisions_total", "Decided, by outcome.",
                               ["decision"], registry=r)  # fmt: skip
        self.dead = Counter("fraud_stream_dead_letters_total", "Messages dead-lettered.",
                            registry=r)  # fmt: skip
        self.batches = Histogram("fraud_stream_batch_size", "Messages per batch.",
                                 buckets=(1, 10, 50, 100, 200, 500, 1000), registry=r)  # fmt: skip
        self.latency = Histogram("fraud_stream_end_to_end_seconds",
                                 "From publication of a transaction to that of its decision.",
                                 buckets=E2E_BUCKETS, registry=r)  # fmt: skip
        self.lag = Gauge("fraud_stream_lag", "Input messages the group has not acknowledged.",
                         registry=r)  # fmt: skip


@dataclass
class Parsed:
    requests: list[deciding.Request]
    accepted: list[Message]
    rejected: list[tuple[Message, str]]


class StreamConsumer:
    """One worker of the group (see the module)."""

    def __init__(
        self,
        stream: Stream,
        decider: Decider,
        checker: RowChecker,
        batch: int = 200,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.stream, self.decider, self.checker, self.batch = stream, decider, checker, batch
        self.metrics = metrics or StreamMetrics()
        self.stop = asyncio.Event()

    async def run(self, start: bool = True) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand and close."""
        if start:
            await self.stream.start()
        try:
            while not self.stop.is_set():
                if not self.decider.champion.status().ready:
                    await asyncio.sleep(0.5)  # no champion yet: leave the messages queued
                    continue
                messages = await self.stream.fetch(self.batch, timeout=0.5)
                if messages:
                    await self._handle_or_wait(messages)
        finally:
            await self.stream.close()
            await self.decider.warehouse.aclose()

    async def _handle_or_wait(self, messages: list[Message]) -> None:
        try:
            await self.handle(messages)
        except Exception as exc:  # noqa: BLE001 - the platform's fault: back off, retry later
            log.warning("batch of %d left for redelivery: %s", len(messages), redact(exc))
            await self.stream.release(messages)
            await asyncio.sleep(1.0)

    async def handle(self, messages: list[Message]) -> None:
        """Decide, log, publish, acknowledge one batch."""
        self.metrics.batches.observe(len(messages))
        parsed = self.parse(messages)
        decided, undecided, leftover = await self._decide(parsed)
        dead = parsed.rejected + undecided
        if decided:
            await self.stream.publish(
                self.stream.topics.output, [_decision_body(d) for _, d in decided]
            )
        if dead:
            await self.stream.publish(
                self.stream.topics.dead_letters, [_dead(m, r) for m, r in dead]
            )
            self.metrics.dead.inc(len(dead))
        await self.stream.ack([m for m, _ in decided] + [m for m, _ in dead])
        if leftover:
            await self.stream.release(leftover)
        now = time.time()
        for message, decision in decided:
            self.metrics.decided.labels(decision.decision).inc()
            if message.published_at:
                self.metrics.latency.observe(max(now - message.published_at, 0.0))

    def parse(self, messages: Sequence[Message]) -> Parsed:
        """Each message on its own, as the HTTP path checks a request body."""
        arrived, received = utc_now(), time.perf_counter()
        out = Parsed([], [], [])
        for message in messages:
            try:
                values = Transaction.model_validate_json(message.body).model_dump(exclude_none=True)
                row = self.checker.check(values, arrived)
            except PayloadError as exc:
                out.rejected.append((message, f"{exc.field or 'body'}: {exc}"))
                continue
            except Exception as exc:  # noqa: BLE001 - a malformed message is its own fault
                out.rejected.append((message, _validation_reason(exc)))
                continue
            out.requests.append(deciding.Request(row, self.stream.consumer, received, arrived))
            out.accepted.append(message)
        return out

    async def _decide(
        self, parsed: Parsed
    ) -> tuple[list[tuple[Message, Decision]], list[tuple[Message, str]], list[Message]]:
        """``(decided, dead, left for redelivery)`` of the accepted messages. On a failure,
        each is decided on its own: one that still fails while others pass, or that came back
        too often, is dead; if every one fails, the failure is the platform's (the log is
        down, say) and they are left for redelivery."""
        if not parsed.requests:
            return [], [], []
        try:
            decisions = await self.decider.decide_async(parsed.requests)
            return list(zip(parsed.accepted, decisions, strict=True)), [], []
        except NotReady:
            raise
        except Exception as exc:  # noqa: BLE001 - find out whether it is one message's fault
            log.warning("a batch could not be decided (%s); deciding one by one", redact(exc))
        decided, failed = [], []
        for request, message in zip(parsed.requests, parsed.accepted, strict=True):
            try:
                [decision] = await self.decider.decide_async([request])
                decided.append((message, decision))
            except NotReady:
                raise
            except Exception as exc:  # noqa: BLE001 - kept with its reason
                failed.append((message, f"could not be decided: {type(exc).__name__}"))
        dead = [(m, r) for m, r in failed if decided or (m.attempts or 0) >= MAX_ATTEMPTS]
        leftover = [m for m, _ in failed if all(m is not d for d, _ in dead)]
        return decided, dead, leftover


def _validation_reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first.get('loc', ()))) or 'body'}: {first.get('msg', '')}"
    return f"body: not a transaction ({type(exc).__name__})"


def _decision_body(d: Decision) -> bytes:
    return json.dumps(
        {
            "trans_num": d.trans_num,
            "decision": d.decision,
            "fraud_probability": d.fraud_probability,
            "threshold": d.threshold,
            "expected_loss": d.expected_loss,
            "model_name": d.model_name,
            "model_version": d.model_version,
            "feature_set_version": d.feature_set_version,
            "feed_semantics": d.feed_semantics,
            "server_ms": d.server_ms,
            "repeated": d.repeated,
        }
    ).encode()


def _dead(message: Message, reason: str) -> bytes:
    body = message.body[:100_000].decode("utf-8", "replace")
    return json.dumps({"reason": reason[:500], "body": body}).encode()


def install_stop(consumer: StreamConsumer) -> None:
    """SIGTERM and SIGINT set ``consumer.stop``: the batch in hand finishes, then it exits."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.stop.set)


def build_consumer(settings, metrics: StreamMetrics | None = None) -> tuple[StreamConsumer, object]:  # noqa: ANN001
    """A worker from the settings (FRAUD_STREAM_*), and the decision parts it follows."""
    from decision_api.app import deciding_parts
    from fraud_assets.lib.streams import open_stream

    parts = deciding_parts(settings, "stream")
    stream = open_stream(
        settings.stream_url,
        settings.stream_topics(),
        settings.stream_group,
        consumer_name(),
        settings.stream_ack_wait_seconds,
    )
    consumer = StreamConsumer(stream, parts.decider, parts.checker, settings.stream_batch, metrics)
    return consumer, parts


async def serve_stream(settings, metrics_host: str | None = None) -> None:  # noqa: ANN001
    """Run one worker until SIGTERM: the champion followed, metrics on ``metrics_host``
    (default FRAUD_STREAM_METRICS_HOST, itself 127.0.0.1 by default)."""
    import threading

    from prometheus_client import start_http_server

    from decision_api.app import follow, refresh, settle_heap

    consumer, parts = build_consumer(settings)
    stop = threading.Event()
    await asyncio.to_thread(refresh, parts)
    follow(parts, settings.decision_refresh_seconds, stop)
    settle_heap()
    await consumer.stream.start()
    # Metrics answer once the worker is in its group with a champion: a readiness signal too.
    host = metrics_host or settings.stream_metrics_host
    start_http_server(settings.stream_metrics_port, host, consumer.metrics.registry)
    install_stop(consumer)
    lag = asyncio.create_task(_watch_lag(consumer))
    try:
        await consumer.run(start=False)
    finally:
        stop.set()
        lag.cancel()


async def _watch_lag(consumer: StreamConsumer, every: float = 5.0) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            consumer.metrics.lag.set(await consumer.stream.lag())
        except Exception as exc:  # noqa: BLE001 - a gauge, not a reason to stop deciding
            log.debug("lag unreadable: %s", redact(exc))
