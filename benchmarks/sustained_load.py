"""Sustained load: the stand-in serves a steady rate (default 20 transactions/s) for a while
(default 10 minutes) to the whole platform under `dagster dev`; then serving stops and the
platform drains. Reports rows served and scored, duplicates, lost rows and the maximum backlog.

Usage: python -m benchmarks.sustained_load [--rate 20] [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.harness import start_platform, stop, stop_on_sigterm
from benchmarks.machine import print_machine
from fraud_assets.testing.servers import free_port


def _scored(db: Path) -> tuple[int, int, set[str]]:
    """(rows, distinct trans_num, trans_nums) in scored_transactions."""
    if not db.exists():
        return 0, 0, set()
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            rows = [r[0] for r in conn.execute("SELECT trans_num FROM scored_transactions")]
    except sqlite3.OperationalError:
        return 0, 0, set()
    return len(rows), len(set(rows)), set(rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="transactions per second")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="measured window (default: %(default)s)"
    )
    parser.add_argument(
        "--drain-minutes",
        type=float,
        default=5.0,
        help="wait this long for the backlog to drain (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    print_machine()
    with tempfile.TemporaryDirectory(prefix="fraud-load-") as tmp:
        root = Path(tmp)
        api_port = free_port()
        api = f"http://127.0.0.1:{api_port}"
        proc = start_platform(root, api_port, free_port(), f"--mode replay --rate {args.rate}")
        db = root / "warehouse.db"
        try:
            # The stand-in serves from its start; the load window opens once scoring works.
            deadline = time.monotonic() + 900
            while _scored(db)[0] == 0:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"platform never scored; see {root / 'platform.log'}")
                time.sleep(2)
            started = time.monotonic()
            max_backlog, samples = 0, []
            while time.monotonic() - started < args.minutes * 60:
                served = requests.get(f"{api}/health", timeout=10).json()["served"]
                backlog = served - _scored(db)[1]
                max_backlog = max(max_backlog, backlog)
                samples.append((round(time.monotonic() - started), served, backlog))
                time.sleep(2)
            paused = requests.post(f"{api}/_control/pause", timeout=10).json()
            drain_started = time.monotonic()
            served_ids = set(requests.get(f"{api}/_control/served", timeout=30).json()["trans_num"])
            while time.monotonic() - drain_started < args.drain_minutes * 60:
                if served_ids <= _scored(db)[2]:
                    break
                time.sleep(2)
            drain_s = time.monotonic() - drain_started
            rows, distinct, scored_ids = _scored(db)
        finally:
            stop(proc)
    figures = {
        "rate_per_s": args.rate,
        "minutes": args.minutes,
        "rows_served": paused["served"],
        "distinct_served": len(served_ids),
        "rows_scored": rows,
        "duplicates": rows - distinct,
        "lost": len(served_ids - scored_ids),
        "max_backlog_rows": max_backlog,
        "drain_seconds": round(drain_s, 1),
        "backlog_samples_every_10": samples[::5][:60],
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
