"""How long a transaction the stand-in pushes takes to be decided and in the decision log, and
then to be in scored_transactions, under `make run` (``python -m fraud_assets.platform``,
without the app: it plays no part in either path).

The platform makes its demo data and trains its first model by itself; once the decision
service answers, the pushes sent during ``--seconds`` are timed:

- decided and logged: ``logged_at - arrived_at`` of each push's decision_log row (the service's
  own clock, arrival to the committed log write), and the client's round trip (the stand-in's
  ``GET /_control/pushed``);
- imported: from ``logged_at`` to when the row is first seen in scored_transactions (polled
  every ``--poll-seconds``, which bounds the figure's resolution), against the goal of one
  decisions_sensor tick plus one import run (the runs' own create-to-end times, from Dagster).

Prints one JSON object (the machine included). Usage:
python -m benchmarks.push_latency [--push-rate 2] [--seconds 120] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.harness import start, stop, stop_on_sigterm
from benchmarks.machine import describe
from fraud_assets.lib.clock import utc_now
from fraud_assets.testing.servers import free_port

SENSOR = "decisions_sensor"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quantiles(values: list[float], unit: str) -> dict[str, float | int]:
    """n, p50, p99 (nearest rank) and max of ``values``."""
    if not values:
        return {"n": 0}
    ranked = sorted(values)

    def at(q: float) -> float:
        return round(ranked[max(math.ceil(q * len(ranked)), 1) - 1], 3)

    return {"n": len(ranked), f"p50_{unit}": at(0.5), f"p99_{unit}": at(0.99), f"max_{unit}": at(1)}


class Platform:
    """``make run`` without the app, its state in ``root``, on free ports."""

    def __init__(self, root: Path, push_rate: float) -> None:
        self.root = root
        self.api, self.service, self.dagster = free_port(), free_port(), free_port()
        env = {**os.environ, "FRAUD_DATA_DIR": str(root)}
        cmd = [
            sys.executable,
            "-m",
            "fraud_assets.platform",
            "--no-app",
            "--api-port",
            str(self.api),
            "--decision-port",
            str(self.service),
            "--dagster-port",
            str(self.dagster),
            "--push-rate",
            f"{push_rate:g}",
        ]
        self.proc = start(cmd, env, root / "platform.log")

    @property
    def standin(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    def pushed(self) -> dict[str, list]:
        return requests.get(f"{self.standin}/_control/pushed", timeout=30).json()

    def wait_for_decisions(self, seconds: float) -> None:
        """Until the stand-in's pushes are being decided (the first model trains first)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the platform stopped; see {self.root / 'platform.log'}")
            try:
                if "decided" in self.pushed()["outcome"]:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        raise RuntimeError(f"no pushed decision within {seconds:.0f} s; see {self.root}/logs")


def warehouse(root: Path):  # noqa: ANN201
    from fraud_assets.lib.warehouse import Warehouse

    url = os.environ.get("FRAUD_DATABASE_URL") or f"sqlite:///{root / 'warehouse.db'}"
    return Warehouse(url, schema=os.environ.get("FRAUD_DATABASE_SCHEMA", "public"))


def imported_since(wh, since: dt.datetime) -> list[str]:  # noqa: ANN001
    """trans_num of the service's decisions in scored_transactions decided from ``since``."""
    import polars as pl

    param = since if wh.postgres else f"{since:%Y-%m-%d %H:%M:%S}.000"
    rows = wh.query(
        "SELECT trans_num FROM {t:scored_transactions} WHERE decided_by = 'service' "
        "AND scored_at >= ?",
        {"trans_num": pl.String},
        [param],
    )
    return rows["trans_num"].to_list()


def watch_imports(
    wh,  # noqa: ANN001
    since: dt.datetime,
    until: float,
    poll: float,
    seen: dict[str, dt.datetime],
    timed: set[str] | None = None,
) -> None:
    """Note in ``seen`` when each service decision from ``since`` is first in
    scored_transactions (naive UTC), every ``poll`` seconds until ``until``
    (time.monotonic()), or until every one of ``timed`` is seen."""
    while time.monotonic() < until and (timed is None or not timed <= seen.keys()):
        now = utc_now()
        for trans_num in imported_since(wh, since):
            seen.setdefault(trans_num, now)
        time.sleep(poll)


def logged_rows(wh, trans_nums: list[str]):  # noqa: ANN001, ANN201
    from fraud_assets.lib.decision_log import read_logged

    return read_logged(wh, trans_nums).select("trans_num", "arrived_at", "logged_at", "server_ms")


def import_runs(root: Path, since: float) -> list[float]:
    """Create-to-end seconds of the decisions sensor's successful runs created from
    ``since`` (epoch seconds)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        records = instance.get_run_records(
            filters=dg.RunsFilter(
                tags={"dagster/sensor_name": SENSOR}, statuses=[dg.DagsterRunStatus.SUCCESS]
            )
        )
    return [
        r.end_time - r.create_timestamp.timestamp()
        for r in records
        if r.end_time and r.create_timestamp.timestamp() >= since
    ]


def measure(plat: Platform, args: argparse.Namespace) -> dict[str, object]:
    plat.wait_for_decisions(args.ready_seconds)
    say(f"decisions flow; warming up {args.warmup:.0f} s, then timing {args.seconds:.0f} s")
    time.sleep(args.warmup)
    wh = warehouse(plat.root)
    started, started_utc = time.time(), utc_now()
    seen: dict[str, dt.datetime] = {}
    watch_imports(wh, started_utc, time.monotonic() + args.seconds, args.poll_seconds, seen)
    pushed = plat.pushed()
    sent = [
        (t, rtt)
        for t, at, outcome, rtt in zip(
            pushed["trans_num"],
            pushed["sent_at"],
            pushed["outcome"],
            pushed["round_trip_ms"],
            strict=True,
        )
        if outcome == "decided" and started <= at <= started + args.seconds
    ]
    timed = {t for t, _ in sent}
    say(f"{len(timed)} pushes decided in the window; waiting for their import")
    deadline = time.monotonic() + args.import_timeout
    watch_imports(wh, started_utc, deadline, args.poll_seconds, seen, timed)
    logged = logged_rows(wh, sorted(timed))
    decided_ms = [
        (row["logged_at"] - row["arrived_at"]).total_seconds() * 1000
        for row in logged.iter_rows(named=True)
    ]
    imported_s = [
        (seen[row["trans_num"]] - row["logged_at"]).total_seconds()
        for row in logged.iter_rows(named=True)
        if row["trans_num"] in seen
    ]
    runs = import_runs(plat.root, started)
    tick = float(os.environ.get("FRAUD_DECISIONS_SENSOR_SECONDS", "5"))
    run_figures = quantiles(runs, "s")
    goal = tick + run_figures.get("p50_s", math.inf)
    imported = quantiles(imported_s, "s")
    return {
        "push_rate_per_s": args.push_rate,
        "seconds_timed": args.seconds,
        "decided": len(timed),
        "logged": logged.height,
        "decided_and_logged": {
            "logged_at_minus_arrived_at": quantiles(decided_ms, "ms"),
            "server_ms": quantiles(logged["server_ms"].drop_nulls().to_list(), "ms"),
            "client_round_trip": quantiles([rtt for _, rtt in sent], "ms"),
            "goal_p99_ms": 1000,
            "goal_met": bool(decided_ms) and quantiles(decided_ms, "ms")["p99_ms"] <= 1000,
        },
        "in_scored_transactions": {
            "logged_at_to_imported": imported,
            "not_imported": len(timed) - len(imported_s),
            "poll_resolution_s": args.poll_seconds,
            "sensor_tick_s": tick,
            "import_run_create_to_end": run_figures,
            "goal_s": round(goal, 2),
            "goal_met_at_p50": imported.get("p50_s", math.inf) <= goal,
            "goal_met_at_p99": imported.get("p99_s", math.inf) <= goal,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.push_latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--push-rate", type=float, default=2.0, help="pushes a second (%(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=120, help="how long pushes are timed (%(default)s)"
    )
    parser.add_argument("--warmup", type=float, default=15, help="seconds first (%(default)s)")
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=0.25,
        help="how often scored_transactions is read (%(default)s)",
    )
    parser.add_argument(
        "--ready-seconds",
        type=float,
        default=900,
        help="how long the first model may take to train (%(default)s)",
    )
    parser.add_argument(
        "--import-timeout",
        type=float,
        default=180,
        help="how long to wait for the timed pushes' import (%(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="the platform's state (kept; a trained one starts at once); default: a fresh "
        "temporary directory",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="fraud-push-") as tmp:
        root = (args.data_dir or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        plat = Platform(root, args.push_rate)
        try:
            figures = measure(plat, args)
        finally:
            stop(plat.proc)
    out = {"benchmark": "push_latency", "machine": describe(), **figures}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
