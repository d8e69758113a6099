"""The stand-in's push mode: its rows sent to the decision service as a card network would.

A thread of the stand-in process runs an event loop that sends ``POST /v1/decisions`` at
``rate`` a second, open loop (a slow answer does not hold up the next send, up to
``concurrency`` in flight). Each push is a new transaction, ``push-<run>-<n>-<source id>``, so
pushed decisions never repeat polled rows. Rows are chosen as the stand-in's mode chooses them:
at random and without an event time (``random``, like the real API, for arrival feeds), or in
time order with their true event time (``replay``). While the service is not ready (503),
refuses the token (401, 403), limits the rate (429) or cannot be reached, pushing pauses with a
growing back-off (or the service's ``Retry-After``); nothing it meets ends the thread. A line a
minute says what was sent and how fast the answers came; ``recent()`` keeps the last pushes
for ``GET /_control/pushed`` (benchmarks).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import httpx
import polars as pl

from fraud_assets.lib.schema import API_COLUMNS

log = logging.getLogger(__name__)

DECISIONS = "/v1/decisions"
#: The fields of a pushed transaction: the API row's, without ``current_time`` (the service's
#: own clock is the arrival).
BODY_FIELDS = tuple(c for c in API_COLUMNS if c != "current_time")
TOKEN_VARIABLE = "FRAUD_STANDIN_PUSH_TOKEN"
MAX_ID = 64
#: Outcomes after which pushing pauses: the service, not the row, is the problem.
PAUSING = frozenset({"not_ready", "unreachable", "refused", "rate_limited", "failed"})


@dataclass(frozen=True)
class PushConfig:
    """Where and how fast to push; ``rate`` 0 pushes nothing."""

    url: str  # the decision service's base URL
    rate: float = 2.0  # decisions a second
    token: str | None = None  # bearer token (read from the environment, never an argument)
    concurrency: int = 16
    timeout_seconds: float = 5.0
    report_seconds: float = 60.0
    min_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 10.0
    keep: int = 100_000  # pushes kept for recent()


class RowSource:
    """Request bodies from the stand-in's rows (``load_replay_frame``'s frame and shift)."""

    def __init__(
        self,
        frame: pl.DataFrame,
        offset: dt.timedelta,
        mode: str,
        seed: int = 0,
        prefix: str = "push",
    ) -> None:
        self.rows = frame.select(*BODY_FIELDS, "event_time")
        self.prefix = prefix
        self.mode, self.offset = mode, offset
        self.rng = random.Random(seed)
        self.run = secrets.token_hex(4)  # tells this process's pushes from a previous one's
        self.count = 0
        self.cursor = 0

    def _index(self) -> int:
        if self.mode == "random":
            return self.rng.randrange(self.rows.height)
        self.cursor += 1
        return (self.cursor - 1) % self.rows.height

    def next_body(self) -> dict[str, object]:
        """The next transaction: a new id, ``cc_num`` as a string (all 19 digits), and in
        replay mode the row's true event time (epoch ms, shifted like the polled feed's)."""
        row = self.rows.row(self._index(), named=True)
        event = row.pop("event_time")
        self.count += 1
        trans_num = f"{self.prefix}-{self.run}-{self.count}-{row['trans_num']}"[:MAX_ID]
        body = row | {"trans_num": trans_num, "cc_num": str(row["cc_num"])}
        if self.mode == "replay":
            shifted = (event + self.offset).replace(tzinfo=dt.UTC)
            body["event_time"] = int(shifted.timestamp() * 1000)
        return body


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (None when there is nothing to rank)."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(math.ceil(q * len(ranked)), 1) - 1]


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


@dataclass
class _Window:
    """What happened since the last report."""

    started: float = field(default_factory=time.monotonic)
    outcomes: Counter = field(default_factory=Counter)
    decisions: Counter = field(default_factory=Counter)
    round_trip_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Pushed:
    """One push, for ``recent()``."""

    trans_num: str
    sent_at: float  # epoch seconds
    outcome: str  # "decided", "not_ready", "unreachable", "refused", "rate_limited", ...
    round_trip_ms: float | None
    server_ms: float | None


class Background:
    """A loop in a daemon thread of the stand-in's process, started and stopped with the app
    (its lifespan); ``rate`` 0 starts nothing. Subclasses give ``_main`` and ``describe``."""

    name = "standin-background"

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.rate <= 0:
            return
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        log.info("%s", self.describe())

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def describe(self) -> str:
        raise NotImplementedError

    def _main(self) -> None:
        raise NotImplementedError


class Pusher(Background):
    """Pushes ``source``'s transactions to the service in a thread of its own (see module)."""

    name = "standin-push"

    def __init__(self, config: PushConfig, source: RowSource) -> None:
        super().__init__(config.rate)
        self.config, self.source = config, source
        self.totals: Counter = Counter()
        self._window = _Window()
        self._recent: deque[Pushed] = deque(maxlen=config.keep)
        self._lock = threading.Lock()
        self.backoff = 0.0
        self.resume_at = 0.0  # time.monotonic() before which nothing is sent
        self.failing: str | None = None  # why pushing pauses, while it does
        #: One push at a time until the service has answered (at the start, after a failure):
        #: a service that is not ready gets one try per back-off, not a burst at the rate.
        self.probing = True

    # --- the thread ----------------------------------------------------------------------------
    def describe(self) -> str:
        return f"pushing {self.config.rate:.4g} decisions a second to {self.url}"

    @property
    def url(self) -> str:
        return self.config.url.rstrip("/") + DECISIONS

    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                asyncio.run(self._run())
            except Exception:  # noqa: BLE001 - never end the thread: start the loop again
                log.exception("the push loop failed; starting it again in 1 s")
                self._stop.wait(1.0)

    async def _run(self) -> None:
        cfg = self.config
        headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=8)
        async with httpx.AsyncClient(
            headers=headers, timeout=cfg.timeout_seconds, limits=limits
        ) as client:
            inflight: set[asyncio.Task] = set()
            interval = 1.0 / cfg.rate
            next_at = report_at = time.monotonic()
            report_at += cfg.report_seconds
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= report_at:
                    self.report()
                    report_at = now + cfg.report_seconds
                wait = max(self.resume_at, next_at) - now
                if wait > 0:
                    await asyncio.sleep(min(wait, 0.2))
                    continue
                if inflight and (self.probing or len(inflight) >= cfg.concurrency):
                    await asyncio.wait(inflight, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
                    continue
                task = asyncio.create_task(self._push(client))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                # After a pause or a stall, carry on at the rate: no burst to catch up.
                next_at = max(next_at + interval, now - interval)
            if inflight:
                await asyncio.wait(inflight, timeout=cfg.timeout_seconds)

    # --- one push ------------------------------------------------------------------------------
    async def _push(self, client: httpx.AsyncClient) -> None:
        try:
            body = self.source.next_body()
        except Exception:  # noqa: BLE001 - a row that cannot be read: say so, go on
            log.exception("could not make a push body")
            return
        sent_at, started = time.time(), time.perf_counter()
        try:
            resp = await client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            self._done(body, sent_at, "unreachable", None, None)
            self._pause("unreachable", f"{self.url} unreachable ({type(exc).__name__})", None)
            return
        except Exception as exc:  # noqa: BLE001 - whatever it is, the next push still goes
            self._done(body, sent_at, "failed", None, None)
            self._pause("failed", f"the push could not be sent ({type(exc).__name__})", None)
            return
        round_trip = (time.perf_counter() - started) * 1000
        try:
            self._answered(body, sent_at, resp, round_trip)
        except Exception:  # noqa: BLE001 - an answer we cannot read
            self._done(body, sent_at, "failed", round_trip, None)
            self._pause("failed", f"unreadable answer (HTTP {resp.status_code})", None)

    def _answered(
        self, body: dict, sent_at: float, resp: httpx.Response, round_trip: float
    ) -> None:
        status = resp.status_code
        if status == 200:
            answer = resp.json()
            self._done(body, sent_at, "decided", round_trip, answer.get("server_ms"))
            with self._lock:
                self._window.decisions[str(answer.get("decision"))] += 1
            self._recovered()
            return
        outcome, why = _failure(status, _detail(resp))
        self._done(body, sent_at, outcome, round_trip, None)
        if outcome in PAUSING:
            self._pause(outcome, why, _retry_after(resp))
        elif self.failing != outcome:
            self.failing = outcome
            log.warning("the decision service refused a push: %s", why)

    def _done(
        self,
        body: dict,
        sent_at: float,
        outcome: str,
        round_trip: float | None,
        server_ms: float | None,
    ) -> None:
        with self._lock:
            self.totals[outcome] += 1
            self._window.outcomes[outcome] += 1
            if outcome == "decided":
                self._window.round_trip_ms.append(round_trip)
                if server_ms is not None:
                    self._window.server_ms.append(float(server_ms))
            self._recent.append(
                Pushed(str(body["trans_num"]), sent_at, outcome, round_trip, server_ms)
            )

    def _pause(self, outcome: str, why: str, retry_after: float | None) -> None:
        cfg = self.config
        self.backoff = min(max(self.backoff * 2, cfg.min_backoff_seconds), cfg.max_backoff_seconds)
        wait = self.backoff if retry_after is None else min(max(retry_after, 0.0), 60.0)
        self.resume_at = max(self.resume_at, time.monotonic() + wait)
        self.probing = True
        if self.failing != outcome:
            hint = ""
            if outcome == "refused":
                hint = f" (set {TOKEN_VARIABLE} to a token of `python -m decision_api token`)"
            log.warning("%s%s: pushing pauses, next try in %.1f s", why, hint, wait)
            self.failing = outcome

    def _recovered(self) -> None:
        self.backoff, self.probing = 0.0, False
        if self.failing is not None:
            log.info("the decision service answers again: pushing at %.4g/s", self.config.rate)
            self.failing = None

    # --- what it did ---------------------------------------------------------------------------
    def report(self) -> str:
        """Log (and return) what was sent since the last report and how fast it was answered."""
        with self._lock:
            w, self._window = self._window, _Window()
            decided_in_all = self.totals["decided"]
        seconds = max(time.monotonic() - w.started, 1e-9)
        sent = sum(w.outcomes.values())
        others = ", ".join(f"{n} {k}" for k, n in sorted(w.outcomes.items()) if k != "decided")
        decisions = ", ".join(f"{n} {k}" for k, n in sorted(w.decisions.items()))
        line = (
            f"pushed {sent} in the last {seconds:.0f} s ({sent / seconds:.2f}/s) to {self.url}: "
            f"{w.outcomes['decided']} decided ({decisions or 'none'})"
            f"{'; ' + others if others else ''}; round trip p50 "
            f"{_ms(quantile(w.round_trip_ms, 0.5))} p99 {_ms(quantile(w.round_trip_ms, 0.99))}, "
            f"server p50 {_ms(quantile(w.server_ms, 0.5))} p99 {_ms(quantile(w.server_ms, 0.99))}"
            f"; {decided_in_all} decided in all"
        )
        if self.failing in PAUSING:
            line += f"; paused ({self.failing})"
        log.info("%s", line)
        return line

    def recent(self) -> list[Pushed]:
        with self._lock:
            return list(self._recent)


def _failure(status: int, detail: str) -> tuple[str, str]:
    if status == 503:
        return (
            "not_ready",
            f"the decision service is not ready ({detail.removeprefix('not ready: ')})",
        )
    if status == 429:
        return "rate_limited", "the decision service limits this client's rate"
    if status in (401, 403):
        return "refused", f"the decision service refused the token (HTTP {status}: {detail})"
    if status >= 500:
        return "failed", f"the decision service failed (HTTP {status}: {detail})"
    return "rejected", f"HTTP {status}: {detail}"


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = resp.text
    return str(detail)[:300]


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["retry-after"])
    except (KeyError, ValueError):
        return None
