"""The stand-in's HTTP app: ``/current-transactions``, training files, and test controls."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, PlainTextResponse, Response

from fraud_assets.lib.api import ENDPOINT, encode_payload
from fraud_assets.lib.schema import TRAINING_CSV_DTYPES

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


@dataclass
class _State:
    frame: pl.DataFrame
    offset: dt.timedelta
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
    """Build the app; its state lives in the closure, one dataset per app."""
    frame, offset = load_replay_frame(config.data)
    state = _State(frame=frame, offset=offset)
    rng = random.Random(config.seed)
    app = FastAPI(title="Transactions API stand-in", docs_url=None, redoc_url=None)

    def next_rows() -> tuple[pl.DataFrame, list[int] | None]:
        """The rows of one call and, in replay mode, their true event times (epoch ms)."""
        with state.lock:
            n = 0 if state.paused else config.rows_per_call
            if config.mode == "random":
                idx = [rng.randrange(state.frame.height) for _ in range(n)]
                return state.frame[idx], None
            if config.rate_per_second > 0 and not state.paused:
                due = int((time.monotonic() - state.started) * config.rate_per_second)
                n = max(0, min(due - state.cursor, config.max_rows_per_call))
            idx = [(state.cursor + i) % state.frame.height for i in range(n)]
            state.cursor += n
            rows = state.frame[idx]
            shifted = rows["event_time"] + state.offset
            return rows, [
                int(t.timestamp() * 1000) for t in shifted.dt.replace_time_zone("UTC").to_list()
            ]

    def pick_fault() -> str | None:
        with state.lock:
            if state.forced:
                return state.forced.popleft()
        if config.fault_rate and rng.random() < config.fault_rate:
            return rng.choice(config.faults)
        return None

    def rate_limited() -> bool:
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

    @app.get(ENDPOINT)
    async def current_transactions() -> Response:
        fault = pick_fault()
        if fault == "429" or rate_limited():
            return PlainTextResponse(
                "Too Many Requests", status_code=429, headers={"Retry-After": "2"}
            )
        if fault == "5xx":
            return PlainTextResponse("upstream exploded", status_code=503)
        if fault == "timeout":
            await asyncio.sleep(config.timeout_seconds)
        if fault == "html":
            return Response(
                "<!DOCTYPE html><html><body><h1>Space is sleeping</h1></body></html>",
                media_type="text/html",
            )
        rows, event_times = next_rows()
        if fault == "wrong_columns":
            rows = rows.rename({"amt": "amount"})
        now = int(time.time() * 1000)
        extra = None if event_times is None else {config.event_time_field: event_times}
        body = _encode(rows, [now] * rows.height, extra, wrong=fault == "wrong_columns")
        if fault == "truncated":
            body = body[: len(body) // 2]
        else:
            now = time.time()
            with state.lock:
                state.served.extend((t, now) for t in rows["trans_num"].to_list())
        return Response(body, media_type="application/json")

    @app.api_route("/files/{name}", methods=["GET", "HEAD"])
    def files(name: str) -> FileResponse:
        if config.files_dir is None or "/" in name or name.startswith("."):
            raise HTTPException(404)
        path = config.files_dir / name
        if not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, media_type="text/csv")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "rows": state.frame.height, "served": len(state.served)}

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

    return app


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
