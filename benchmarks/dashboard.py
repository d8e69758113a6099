"""Dashboard refresh under concurrent sessions, on a million scored rows in PostgreSQL.

Fills a throwaway schema (in FRAUD_BENCH_DATABASE_URL, else the local ``test`` database) with
``--rows`` scored transactions over ``--days`` days, through ``Warehouse.upsert`` (COPY) in
chunks, into a table made as the scoring asset makes it. Then launches the app in its own
process on loopback against it and drives ``--sessions`` gradio_client sessions, each calling
``/dashboard`` back to back for ``--seconds``. The app process records the time spent inside
each ``/dashboard`` handler and each snapshot computation that reached the database; this
process records client round trips. Prints one JSON object; asserts nothing.

Usage: python -m benchmarks.dashboard [--rows 1000000] [--days 30] [--sessions 10]
       [--seconds 60] [--time-range all] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.harness import stop_on_sigterm
from benchmarks.machine import describe
from fraud_assets.lib.schema import ANALYST_LABELS_SCHEMA, CATEGORIES, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
GOAL_SECONDS = 1.0
#: As the warehouse IO manager creates it (fraud_assets/defs/io_managers.py).
INDEXES = ["batch_hour", "cc_num"]
END = dt.datetime(2026, 3, 31, 23, 0)


def scored_chunk(
    rng: np.random.Generator, first: int, start: dt.datetime, offsets_ms: np.ndarray
) -> pl.DataFrame:
    """Scored rows at ``start + offsets``, keyed from ``first``: about 1.5% flagged, delayed
    labels on all but the last day, two model versions (the newer for the last ten days)."""
    n = len(offsets_ms)
    return (
        pl.DataFrame(
            {
                "n": np.arange(first, first + n),
                "offset": offsets_ms,
                "cc_num": rng.integers(4 * 10**15, 5 * 10**15, n).astype(str),
                "merchant": np.char.add("fraud_Merchant ", rng.integers(0, 700, n).astype(str)),
                "category": rng.choice(np.array(CATEGORIES), n),
                "amt": rng.lognormal(3.6, 1.1, n).round(2),
                "fraud_probability": rng.beta(0.35, 9.0, n),
                "draw": rng.random(n),
            }
        )
        .with_columns(
            trans_num=pl.lit("bench-") + pl.col("n").cast(pl.String),
            event_time=pl.lit(start) + pl.duration(milliseconds=pl.col("offset")),
        )
        .with_columns(
            event_time_source=pl.lit("arrival"),
            arrived_at=pl.col("event_time"),
            expected_loss=pl.col("fraud_probability") * pl.col("amt"),
            is_flagged=pl.col("fraud_probability") * pl.col("amt") >= 20.0,
            threshold=20.0 / pl.col("amt"),
            model_name=pl.lit("fraud_rf"),
            model_version=pl.when(pl.col("event_time") < END - dt.timedelta(days=10))
            .then(pl.lit("7"))
            .otherwise(pl.lit("8")),
            feature_set_version=pl.lit("v2"),
            feed_semantics=pl.lit("arrival"),
            scored_at=pl.col("event_time") + pl.duration(seconds=2),
            label_is_fraud=pl.when(pl.col("event_time") < END - dt.timedelta(days=1)).then(
                (pl.col("draw") < pl.col("fraud_probability") * 0.2).cast(pl.Int8)
            ),
            batch_hour=pl.col("event_time").dt.strftime("%Y-%m-%d-%H:00"),
            decided_by=pl.lit("poll"),
        )
        .select(list(SCORED_TRANSACTIONS_SCHEMA))
        .cast(SCORED_TRANSACTIONS_SCHEMA)
    )


def fill(wh: Warehouse, rows: int, days: int, chunk: int, seed: int = 0) -> dict[str, float]:
    """Write the rows in time order (as they would have arrived), then vacuum and analyze the
    table as autovacuum would have by then."""
    rng = np.random.default_rng(seed)
    start = END - dt.timedelta(days=days)
    offsets = np.sort(rng.integers(0, days * 86_400_000, rows))
    wh.ensure_table("scored_transactions", SCORED_TRANSACTIONS_SCHEMA, indexes=INDEXES)
    started = time.perf_counter()
    for first in range(0, rows, chunk):
        wh.upsert(
            "scored_transactions",
            scored_chunk(rng, first, start, offsets[first : first + chunk]),
        )
    load_s = time.perf_counter() - started
    labelled = [f"bench-{i}" for i in range(0, rows, max(rows // 1000, 1))]
    labels = pl.DataFrame(
        {"trans_num": labelled, "is_fraud": 1, "analyst": "bench", "labelled_at": END},
        schema=ANALYST_LABELS_SCHEMA,
    )
    wh.ensure_table("analyst_labels", ANALYST_LABELS_SCHEMA)
    wh.upsert("analyst_labels", labels)
    import psycopg

    with psycopg.connect(wh.dialect.url, autocommit=True) as conn:
        conn.execute(f'VACUUM ANALYZE "{wh.schema}"."scored_transactions"')
        size = conn.execute(
            "SELECT pg_total_relation_size(%s)", (f'"{wh.schema}"."scored_transactions"',)
        ).fetchone()[0]
    return {"load_seconds": round(load_s, 1), "table_mb": round(size / 2**20, 1)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(env: dict[str, str], port: int, ready, stop, results) -> None:  # noqa: ANN001
    """Child process: the app as deployed (loopback, no login), recording its timings."""
    os.environ.update(env)
    from app_gradio.app import build_app, launch
    from app_gradio.config import warehouse
    from app_gradio.dashboard import Dashboard
    from fraud_assets.settings import load_settings

    dashboard = Dashboard(warehouse, load_settings().app_snapshot_seconds, record=True)
    app = build_app(dashboard=dashboard)
    launch(app, server_port=port, prevent_thread_lock=True, quiet=True)
    ready.set()
    stop.wait()
    timings = dashboard.timings
    results.put(
        {
            "handler": timings.handler,
            "aggregates": timings.aggregates,
            "flagged": timings.flagged,
            "computations": dashboard.cache.computations,
        }
    )
    app.close()


def figures(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def drive(url: str, sessions: int, seconds: float, time_range: str) -> dict[str, object]:
    """``sessions`` clients calling /dashboard back to back until the time is up."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(sessions)]
    round_trips: list[list[float]] = [[] for _ in clients]
    errors: list[str] = []
    barrier = threading.Barrier(sessions)

    def session(i: int) -> None:
        barrier.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                clients[i].predict(time_range, "all", 0, 0, api_name="/dashboard")
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            round_trips[i].append(time.perf_counter() - started)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    flat = [s for per in round_trips for s in per]
    return {
        "round_trip": figures(flat),
        "calls_per_session": [len(r) for r in round_trips],
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def single_refreshes(wh_factory, repeats: int = 3) -> dict[str, dict[str, float]]:  # noqa: ANN001
    """One uncached refresh (aggregates and the default flagged list) per time range, alone:
    what the first session after an interval, or a new filter, waits for."""
    from app_gradio import data
    from app_gradio.dashboard import Dashboard

    out = {}
    for time_range in data.TIME_RANGES:
        took = []
        for _ in range(repeats):
            dash = Dashboard(wh_factory, ttl=3600)
            started = time.perf_counter()
            dash.aggregates(time_range)
            dash.flagged(time_range)
            took.append(time.perf_counter() - started)
            dash.close()
        out[time_range] = figures(took)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="scored rows seeded (default: %(default)s)"
    )
    parser.add_argument(
        "--days", type=int, default=30, help="days the rows span (default: %(default)s)"
    )
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per upsert")
    parser.add_argument(
        "--sessions",
        type=int,
        default=10,
        help="concurrent browser sessions (default: %(default)s)",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="per session")
    parser.add_argument("--time-range", default="all", help="the sessions' dashboard filter")
    parser.add_argument(
        "--snapshot-seconds",
        type=float,
        default=None,
        help="FRAUD_APP_SNAPSHOT_SECONDS for the app (default: the setting's)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args(argv)
    stop_on_sigterm()

    import multiprocessing as mp

    import psycopg

    from fraud_assets.settings import load_settings

    url = os.environ.get("FRAUD_BENCH_DATABASE_URL") or DEFAULT_URL
    schema = f"bench_dash_{uuid.uuid4().hex[:8]}"
    wh = Warehouse(url, schema=schema)
    snapshot_s = args.snapshot_seconds or load_settings().app_snapshot_seconds
    result: dict[str, object] = {
        "benchmark": "dashboard",
        "rows": args.rows,
        "days": args.days,
        "sessions": args.sessions,
        "seconds_per_session": args.seconds,
        "time_range": args.time_range,
        "snapshot_seconds": snapshot_s,
    }
    try:
        result |= fill(wh, args.rows, args.days, args.chunk)
        print(f"filled {args.rows:,} rows in {result['load_seconds']} s", flush=True)
        result["single_refresh_by_time_range"] = single_refreshes(lambda: wh)

        with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
            env = {
                "FRAUD_DATABASE_URL": url,
                "FRAUD_DATABASE_SCHEMA": schema,
                "FRAUD_DATA_DIR": str(Path(tmp)),
                "FRAUD_APP_SNAPSHOT_SECONDS": str(snapshot_s),
                # Every session comes from 127.0.0.1, one client to the limiter: lift the
                # limit (the limiter still runs) so that it measures the dashboard.
                "FRAUD_APP_RATE_LIMIT_PER_MINUTE": str(10**9),
                "FRAUD_APP_REFRESH_SECONDS": "3600",
                "GRADIO_SERVER_NAME": "127.0.0.1",
                "GRADIO_ANALYTICS_ENABLED": "False",
            }
            ctx = mp.get_context("spawn")
            ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
            port = free_port()
            server = ctx.Process(target=serve, args=(env, port, ready, stop, results))
            server.start()
            try:
                if not ready.wait(180):
                    raise RuntimeError("the app did not start within 180 s")
                from gradio_client import Client

                started = time.perf_counter()
                Client(f"http://127.0.0.1:{port}", verbose=False).predict(
                    args.time_range, "all", 0, 0, api_name="/dashboard"
                )
                result["first_call_seconds"] = round(time.perf_counter() - started, 3)
                result |= drive(
                    f"http://127.0.0.1:{port}", args.sessions, args.seconds, args.time_range
                )
            except BaseException:  # SIGTERM included (stop_on_sigterm): stop the app too
                stop.set()
                server.join(timeout=30)
                if server.is_alive():
                    server.terminate()
                raise
            stop.set()
            timings = results.get(timeout=120)
            server.join(timeout=60)
        # Less the first, cold call (timed above): the figures are the steady state.
        result["handler"] = figures(timings["handler"][1:])
        result["computed_aggregates"] = figures(timings["aggregates"][1:])
        result["computed_flagged_list"] = figures(timings["flagged"][1:])
        result["snapshot_computations"] = timings["computations"]
        p95 = result["handler"].get("p95_ms", float("inf")) / 1000
        result["goal"] = {
            "text": "refresh p95 <= 1 s server-side with 10 concurrent sessions",
            "handler_p95_ms": round(p95 * 1000, 2),
            "met": bool(p95 <= GOAL_SECONDS and args.sessions >= 10 and not result["errors"]),
        }
        result["machine"] = describe()
    finally:
        wh.close()
        if not args.keep:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
