"""Latency from the stand-in serving a transaction to its scored row being in the warehouse,
under `dagster dev`, against an empty Dagster run triggered the same way (the floor).

Usage: python -m benchmarks.live_latency [--transactions 100] [--rows-per-call 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import requests

from benchmarks.harness import ROOT, start, start_platform, stop, stop_on_sigterm
from benchmarks.machine import print_machine
from fraud_assets.platform import ensure_demo_data, wait_http
from fraud_assets.testing.servers import free_port

TICK = 5


def _served(api: str) -> dict[str, float]:
    body = requests.get(f"{api}/_control/served", timeout=10).json()
    return dict(zip(body["trans_num"], body["served_at"], strict=True))


def _quantiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "n": len(values),
        "p50_s": round(q[49], 2),
        "p95_s": round(q[94], 2),
        "max_s": round(max(values), 2),
    }


def empty_floor(root: Path, test_csv: Path, want: int, rows_per_call: int) -> dict[str, float]:
    home = root / "home"
    home.mkdir(parents=True)
    shutil.copyfile(ROOT / "deploy" / "dagster.local.yaml", home / "dagster.yaml")
    api = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "TRANSACTIONS_API_URL": api}
    py = sys.executable
    standin = start(
        [
            py,
            "-m",
            "fraud_assets.standin",
            "--data",
            str(test_csv),
            "--port",
            api.rsplit(":", 1)[1],
            "--rows-per-call",
            str(rows_per_call),
        ],
        env,
        root / "standin.log",
    )
    web_port = free_port()
    dagster = start(
        [
            py,
            "-m",
            "dagster",
            "dev",
            "-f",
            str(ROOT / "benchmarks" / "empty_location.py"),
            "-p",
            str(web_port),
        ],
        env,
        root / "dagster.log",
    )
    try:
        # Open the instance only once dagster dev has created its storage.
        if not wait_http(f"http://127.0.0.1:{web_port}/server_info", 180):
            raise RuntimeError(f"dagster dev did not start; see {root / 'dagster.log'}")
        deadline = time.monotonic() + 600
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while time.monotonic() < deadline:
                records = instance.get_run_records(
                    filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])
                )
                done = sum(len(r.dagster_run.tags["bench/trans_nums"].split(",")) for r in records)
                if done >= want:
                    break
                time.sleep(2)
            served = _served(api)
            latencies = [
                r.end_time - served[tn]
                for r in records
                for tn in r.dagster_run.tags["bench/trans_nums"].split(",")
            ]
    finally:
        stop(dagster, standin)
    return _quantiles(latencies)


def platform_latency(root: Path, want: int, rows_per_call: int) -> dict[str, float]:
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    proc = start_platform(root, api_port, free_port(), f"--rows-per-call {rows_per_call}", TICK)
    db = root / "warehouse.db"
    seen: dict[str, float] = {}
    ready = None
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as conn:
                        rows = conn.execute("SELECT trans_num FROM scored_transactions").fetchall()
                except sqlite3.OperationalError:
                    rows = []
                now = time.time()
                for (tn,) in rows:
                    seen.setdefault(tn, now)
                if rows and ready is None:
                    ready = now
            if ready is not None:
                served = _served(api)
                fresh = [tn for tn, at in served.items() if at > ready + 1]
                if sum(tn in seen for tn in fresh) >= want:
                    break
            time.sleep(0.25)
        served = _served(api)
    finally:
        stop(proc)
    if ready is None:
        raise RuntimeError(f"no scored row; see {root / 'platform.log'}")
    return _quantiles([seen[tn] - at for tn, at in served.items() if at > ready + 1 and tn in seen])


def large_history(root: Path, rows: int) -> None:
    """The platform's source files with ``rows`` training rows (983 cards, as the public
    files), its card state and a champion, so ``make run`` scores at once."""
    import datetime as dt

    import polars as pl

    from benchmarks.harness import card_sample, seed_platform
    from fraud_assets.lib.generator import GeneratorConfig, generate_transactions, write_csv
    from fraud_assets.lib.schema import training_csv_to_canonical

    days = int(rows / (983 * 2.0))
    start = dt.date(2019, 1, 1)
    split = start + dt.timedelta(days=days)
    public = generate_transactions(
        GeneratorConfig(n_cards=983, start=start, end=split + dt.timedelta(days=30), seed=8)
    )
    when = pl.col("trans_date_trans_time").str.to_datetime("%Y-%m-%d %H:%M:%S")
    source = root / "source"
    source.mkdir(parents=True, exist_ok=True)
    cut = dt.datetime.combine(split, dt.time())
    for name, part in (
        ("fraudTrain.csv", public.filter(when < cut)),
        ("fraudTest.csv", public.filter(when >= cut)),
    ):
        write_csv(
            part.drop("").with_row_index("").with_columns(pl.col("").cast(pl.Int64)), source / name
        )
    history = training_csv_to_canonical(public.filter(when < cut))
    seed_platform(root, history, fit_on=card_sample(history, 100_000))
    print(f"history: {history.height:,} training rows", flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--transactions",
        type=int,
        default=100,
        help="transactions timed per phase (default: %(default)s)",
    )
    parser.add_argument(
        "--rows-per-call",
        type=int,
        default=5,
        help="rows the stand-in serves per API call (default: %(default)s)",
    )
    parser.add_argument(
        "--history-rows",
        type=int,
        default=0,
        help="seed the platform with this many training rows and a champion instead of "
        "letting make run generate demo data and train (e.g. 1350000)",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    print_machine()
    with tempfile.TemporaryDirectory(prefix="fraud-latency-") as tmp:
        root = Path(tmp)
        _, test_csv = ensure_demo_data(root / "empty" / "source")
        empty = empty_floor(root / "empty", test_csv, args.transactions, args.rows_per_call)
        print("empty run:", json.dumps(empty), flush=True)
        if args.history_rows:
            large_history(root / "platform", args.history_rows)
        scored = platform_latency(root / "platform", args.transactions, args.rows_per_call)
    goal = TICK + 1.5 * empty["p95_s"]
    figures = {
        "history_rows": args.history_rows or "demo",
        "sensor_interval_s": TICK,
        "rows_per_call": args.rows_per_call,
        "empty_run": empty,
        "scored_row": scored,
        "goal_p95_s": round(goal, 2),
        "goal_met": scored["p95_s"] <= goal,
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
