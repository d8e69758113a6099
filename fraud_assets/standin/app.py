"""The stand-in's HTTP app: ``/current-transactions``, training files, test controls, and the
optional pushing of rows to the decision service (``push.py``) and publishing of rows to a
broker (``publish.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, PlainTextResponse, Response

from fraud_assets.lib.api import ENDPOINT, encode_payload
from fraud_assets.lib.schema import TRAINING_CSV_DTYPES
from fraud_assets.standin.publish import PublishConfig, Publisher
from fraud_assets.standin.push import PushConfig, Pusher, RowSource

FAULTS = ("5xx", "timeout", "html", "truncated", "wrong_columns", "429")


@dataclass
class StandinConfig:
    """How the stand-in behaves; every field is a command-line option too."""

    data: Path
    files_dir: Path | None = None
    rows_per_call: int = 1
    #: Replay speed in rows per second of wall time (replay mode): each call then returns every
    #: row that became due since the previous call, at most ``max_rows_per_call``.
    rate_per_second: float = 0.0
    max_rows_per_call: int = 5000
    #: "random": the real API (random rows, current_time = now, no true event time);
    #: "replay": an event-time feed (rows in time order, each with its true event time in
    #: ``event_time_field``, shifted by whole weeks to the present).
    mode: str = "random"
    event_time_field: str = "event_time"
    rate_limit_per_minute: int = 0  # 0 disables the emulated limit
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULTS
    timeout_seconds: float = 40.0
    seed: int = 0
    #: Also push rows to the decision service (``push.py``); None: poll only.
    push: PushConfig | None = None
    #: Also publish rows to a broker's topic (``publish.py``); None: none.
    publish: PublishConfig | None = None


@dataclass
class _State:
    frame: pl.DataFrame
    offset: dt.timedelta
    rng: random.Random
    cursor: int = 0
    started: float = field(default_factory=time.monotonic)
    paused: bool = False
    calls: deque = field(default_factory=deque)
    forced: deque = field(default_factory=deque)
    served: list[tuple[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_replay_frame(path: Path) -> tuple[pl.DataFrame, dt.timedelta]:
    """Read a public-layout CSV, sorted by event time, and the whole-week shift that moves its
    last day to this week (so hour of day and weekday stay as generated)."""
    raw = pl.read_csv(path, schema_overrides=TRAINING_CSV_DTYPES, infer_schema_length=0)
    frame = raw.with_columns(
        event_time=pl.col("trans_date_trans_time").str.to_datetime(
            "%Y-%m-%d %H:%M:%S", time_unit="ms"
        )
    ).sort("event_time", "")
    last = frame["event_time"].max()
    weeks = (dt.datetime.now() - last).days // 7
    return frame, dt.timedelta(weeks=max(weeks, 0))


def create_app(config: StandinConfig) -> FastAPI:
    """Build the app; its state lives in the closures, one dataset per app. With
    ``config.push`` (``config.publish``) set, a thread of the app's process pushes rows to the
    decision service (publishes rows to the broker) while the app runs (its lifespan)."""
    frame, offset = load_replay_frame(config.data)
    state = _State(frame=frame, offset=offset, rng=random.Random(config.seed))
    pusher, publisher = _pusher(config, state), _publisher(config, state)
    app = FastAPI(
        title="Transactions API stand-in",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(pusher, publisher),
    )
    app.state.pusher, app.state.publisher = pusher, publisher
    _feed_route(app, config, state)
    _files_route(app, config)
    _health_route(app, state, pusher, publisher)
    _control_routes(app, state, pusher)
    _published_route(app, publisher)
    return app


def _pusher(config: StandinConfig, state: _State) -> Pusher | None:
    if config.push is None or config.push.rate <= 0:
        return None
    source = RowSource(state.frame, state.offset, config.mode, seed=config.seed + 1)
    return Pusher(config.push, source)


def _publisher(config: StandinConfig, state: _State) -> Publisher | None:
    if config.publish is None or config.publish.rate <= 0:
        return None
    source = RowSource(state.frame, state.offset, config.mode, seed=config.seed + 2, prefix="pub")
    return Publisher(config.publish, source)


def _lifespan(*workers: Pusher | Publisher | None):  # noqa: ANN202
    running = [w for w in workers if w is not None]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for worker in running:
            worker.start()
        try:
            yield
        finally:
            for worker in running:
                await asyncio.to_thread(worker.stop)

    return lifespan


def next_rows(config: StandinConfig, state: _State) -> tuple[pl.DataFrame, list[int] | None]:
    """The rows of one call and, in replay mode, their true event times (epoch ms)."""
    with state.lock:
        n = 0 if state.paused else config.rows_per_call
        if config.mode == "random":
            idx = [state.rng.randrange(state.frame.height) for _ in range(n)]
            return state.frame[idx], None
        if config.rate_per_second > 0 and not state.paused:
            due = int((time.monotonic() - state.started) * config.rate_per_second)
            n = max(0, min(due - state.cursor, config.max_rows_per_call))
        idx = [(state.cursor + i) % state.frame.height for i in range(n)]
        state.cursor += n
        rows = state.frame[idx]
    shifted = rows["event_time"] + state.offset
    return rows, [int(t.timestamp() * 1000) for t in shifted.dt.replace_time_zone("UTC").to_list()]


def pick_fault(config: StandinConfig, state: _State) -> str | None:
    """The fault of this call: a queued one first, else one drawn at ``fault_rate``."""
    with state.lock:
        if state.forced:
            return state.forced.popleft()
        if config.fault_rate and state.rng.random() < config.fault_rate:
            return state.rng.choice(config.faults)
    return None


def rate_limited(config: StandinConfig, state: _State) -> bool:
    """Whether this call is over the emulated limit (calls in the last minute)."""
    if not config.rate_limit_per_minute:
        return False
    now = time.monotonic()
    with state.lock:
        while state.calls and state.calls[0] < now - 60:
            state.calls.popleft()
        if len(state.calls) >= config.rate_limit_per_minute:
            return True
        state.calls.append(now)
    return False


def _fault_response(fault: str | None) -> Response | None:
    """The answer of a fault that replaces the payload (None: serve rows)."""
    if fault == "429":
        return PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": "2"})
    if fault == "5xx":
        return PlainTextResponse("upstream exploded", status_code=503)
    if fault == "html":
        return Response(
            "<!DOCTYPE html><html><body><h1>Space is sleeping</h1></body></html>",
            media_type="text/html",
        )
    return None


def _feed_route(app: FastAPI, config: StandinConfig, state: _State) -> None:
    @app.get(ENDPOINT)
    async def current_transactions() -> Response:
        fault = pick_fault(config, state)
        if fault != "429" and rate_limited(config, state):
            fault = "429"
        if fault == "timeout":
            await asyncio.sleep(config.timeout_seconds)
        refused = _fault_response(fault)
        if refused is not None:
            return refused
        rows, event_times = next_rows(config, state)
        if fault == "wrong_columns":
            rows = rows.rename({"amt": "amount"})
        now = int(time.time() * 1000)
        extra = None if event_times is None else {config.event_time_field: event_times}
        body = _encode(rows, [now] * rows.height, extra, wrong=fault == "wrong_columns")
        if fault == "truncated":
            return Response(body[: len(body) // 2], media_type="application/json")
        served_at = time.time()
        with state.lock:
            state.served.extend((t, served_at) for t in rows["trans_num"].to_list())
        return Response(body, media_type="application/json")


def _files_route(app: FastAPI, config: StandinConfig) -> None:
    @app.api_route("/files/{name}", methods=["GET", "HEAD"])
    def files(name: str) -> FileResponse:
        if config.files_dir is None or "/" in name or name.startswith("."):
            raise HTTPException(404)
        path = config.files_dir / name
        if not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, media_type="text/csv")


def _health_route(
    app: FastAPI, state: _State, pusher: Pusher | None, publisher: Publisher | None
) -> None:
    @app.get("/health")
    def health() -> dict:
        body = {"status": "ok", "rows": state.frame.height, "served": len(state.served)}
        if pusher is not None:
            body["push"] = {"url": pusher.url, "alive": pusher.alive(), **pusher.totals}
        if publisher is not None:
            body["publish"] = {
                "topic": publisher.config.topic,
                "alive": publisher.alive(),
                "published": publisher.published,
                "failures": publisher.failures,
            }
        return body


def _published_route(app: FastAPI, publisher: Publisher | None) -> None:
    @app.get("/_control/published")
    def published() -> dict:
        """The latest published transactions (up to 100,000), in order: id, and when the
        broker took it (epoch s)."""
        recent = publisher.recent() if publisher is not None else []
        return {"trans_num": [t for t, _ in recent], "published_at": [a for _, a in recent]}


def _control_routes(app: FastAPI, state: _State, pusher: Pusher | None) -> None:
    @app.post("/_control/faults")
    def force_faults(kinds: str) -> dict:
        """Queue faults for the next calls, in order (comma-separated kinds)."""
        queued = [k for k in kinds.split(",") if k]
        unknown = [k for k in queued if k not in FAULTS]
        if unknown:
            raise HTTPException(400, f"unknown faults {unknown}; choose from {FAULTS}")
        with state.lock:
            state.forced.extend(queued)
        return {"queued": queued}

    @app.post("/_control/pause")
    def pause() -> dict:
        """Stop serving rows (calls then return an empty frame); for benchmarks."""
        with state.lock:
            state.paused = True
            return {"paused": True, "served": len(state.served)}

    @app.get("/_control/served")
    def served() -> dict:
        """Every row served so far, in order, with the wall-clock time it was served."""
        with state.lock:
            return {
                "trans_num": [t for t, _ in state.served],
                "served_at": [s for _, s in state.served],
            }

    @app.get("/_control/pushed")
    def pushed() -> dict:
        """The latest pushes (up to 100,000), in order: id, when sent (epoch s), outcome,
        client round trip and the service's own time (ms; null unless decided)."""
        recent = pusher.recent() if pusher is not None else []
        return {
            "trans_num": [p.trans_num for p in recent],
            "sent_at": [p.sent_at for p in recent],
            "outcome": [p.outcome for p in recent],
            "round_trip_ms": [p.round_trip_ms for p in recent],
            "server_ms": [p.server_ms for p in recent],
        }


def _encode(
    rows: pl.DataFrame, times: list[int], extra: dict[str, list[int]] | None, wrong: bool
) -> bytes:
    if not wrong:
        return encode_payload(rows, rows[""].to_list(), times, extra)
    import json

    inner = json.dumps(
        {
            "columns": rows.columns,
            "index": rows[""].to_list(),
            "data": [list(map(str, r)) for r in rows.iter_rows()],
        }
    )
    return json.dumps(inner).encode()
