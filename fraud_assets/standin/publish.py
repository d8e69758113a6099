"""The stand-in's publish mode: its rows published to a broker's topic, as a card network's
authorization log would carry them, for ``python -m decision_api consume`` to decide.

A thread of the stand-in process runs an event loop that publishes, every ``tick`` seconds,
the transactions due at ``rate`` a second (in one broker call, at most ``max_batch``). Each
message is the JSON body of ``POST /v1/decisions`` (``push.RowSource``: random rows without an
event time, or rows in time order with their true event time in replay mode), under a new id
``pub-<run>-<n>-<source id>``. The broker comes from ``lib/streams.py``, so every scheme the
consumer takes works here. While the broker cannot be reached or refuses a publish, the
messages in hand are kept and sent again after a growing back-off, on a new connection: a
message is never skipped, and one sent twice is a repeat the decision log absorbs. There is
no burst to catch up after a pause. A line a minute says what was published.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from fraud_assets.lib.redaction import redact
from fraud_assets.lib.streams import Stream, Topics, open_stream
from fraud_assets.standin.push import Background, RowSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishConfig:
    """Where and how fast to publish; ``url`` comes from the environment (it may hold a
    password), never from the command line."""

    url: str
    topic: str = "transactions"
    rate: float = 5.0  # transactions a second
    tick: float = 0.1  # seconds between broker calls
    max_batch: int = 1000
    report_seconds: float = 60.0
    min_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 10.0
    keep: int = 100_000  # published ids kept for recent()


class Publisher(Background):
    """Publishes ``source``'s transactions to the broker in a thread of its own (see module)."""

    name = "standin-publish"

    def __init__(self, config: PublishConfig, source: RowSource) -> None:
        super().__init__(config.rate)
        self.config, self.source = config, source
        self.published = 0
        self.failures = 0
        self.failing: str | None = None
        self._pending: list[tuple[str, bytes]] = []
        self._recent: deque[tuple[str, float]] = deque(maxlen=config.keep)
        self._lock = threading.Lock()

    def describe(self) -> str:
        cfg = self.config
        where = f"{redact(cfg.url)}, topic {cfg.topic}"
        return f"publishing {cfg.rate:.4g} transactions a second to {where}"

    def recent(self) -> list[tuple[str, float]]:
        """The latest published ids with when the broker took them (epoch s), in order."""
        with self._lock:
            return list(self._recent)

    def _main(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                asyncio.run(self._session())
                return
            except Exception as exc:  # noqa: BLE001 - a broker that is down: wait, reconnect
                self.failures += 1
                cfg = self.config
                backoff = min(max(backoff * 2, cfg.min_backoff_seconds), cfg.max_backoff_seconds)
                why = redact(f"{type(exc).__name__}: {exc}")[:300]
                if self.failing != why:
                    log.warning("publishing pauses (%s); next try in %.1f s", why, backoff)
                    self.failing = why
                self._stop.wait(backoff)

    async def _session(self) -> None:
        """One connection: publish at the rate until stopped (raises when the broker fails)."""
        cfg = self.config
        stream = open_stream(cfg.url, Topics(input=cfg.topic), "standin", "standin-publisher")
        try:
            await stream.start(consume=False)
            await self._publish_at_rate(stream)
        finally:
            await _close_quietly(stream)

    async def _publish_at_rate(self, stream: Stream) -> None:
        cfg = self.config
        started, due_before = time.monotonic(), 0  # a new session starts at the rate, no burst
        report_at = started + cfg.report_seconds
        reported = self.published
        while not self._stop.is_set():
            now = time.monotonic()
            due = int((now - started) * cfg.rate)
            while len(self._pending) < cfg.max_batch and due_before < due:
                self._pending.append(self._next())
                due_before += 1
            if self._pending:
                await stream.publish(cfg.topic, [body for _, body in self._pending])
                self._published(self._pending)
                self._pending = []
            if now >= report_at:
                self._report(self.published - reported, now - report_at + cfg.report_seconds)
                reported, report_at = self.published, now + cfg.report_seconds
            await asyncio.sleep(cfg.tick)

    def _next(self) -> tuple[str, bytes]:
        body = self.source.next_body()
        return str(body["trans_num"]), json.dumps(body).encode()

    def _published(self, sent: list[tuple[str, bytes]]) -> None:
        at = time.time()
        with self._lock:
            self._recent.extend((trans_num, at) for trans_num, _ in sent)
            self.published += len(sent)
        if self.failing is not None:
            log.info("the broker takes messages again: publishing at %.4g/s", self.config.rate)
            self.failing = None

    def _report(self, count: int, seconds: float) -> None:
        log.info(
            "published %d in the last %.0f s (%.2f/s) to topic %s; %d in all",
            count,
            seconds,
            count / max(seconds, 1e-9),
            self.config.topic,
            self.published,
        )


async def _close_quietly(stream: Stream) -> None:
    try:
        await stream.close()
    except Exception:  # noqa: BLE001 - a connection that is already gone
        log.debug("closing the broker connection failed", exc_info=True)
