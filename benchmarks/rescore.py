"""``python -m benchmarks.rescore``: re-scoring 30 days after a champion change, as one run.

It builds a platform whose warehouse holds 30 days of hourly live partitions (720 hours, about
200,000 rows, already scored by champion v1), promotes a second champion, then runs
``scoring_job`` once over the whole partition range (the single-run backfill policy), and
checks every row is scored by the new champion exactly once. Prints the machine and one JSON
line: partitions, rows, wall_s, rows_per_s, duplicates, unscored. Goal: 10 minutes or less.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.harness import stop_on_sigterm
from benchmarks.machine import describe

HOURS = 720


def build(root: Path, rows: int) -> tuple[list[str], str]:
    """History, champion v1, and ``rows`` live rows over 720 hours scored by v1."""
    from fraud_assets.lib.generator import GeneratorConfig, generate_transactions
    from fraud_assets.lib.ingest import ensure_tables
    from fraud_assets.lib.landing import row_hash
    from fraud_assets.lib.model import TrainParams, train
    from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA, training_csv_to_canonical
    from fraud_assets.lib.warehouse import Warehouse
    from fraud_assets.testing import register, seed_champion

    os.environ["FRAUD_DATA_DIR"] = str(root)
    data = training_csv_to_canonical(
        generate_transactions(
            GeneratorConfig(
                n_cards=600, start=dt.date(2020, 1, 1), end=dt.date(2020, 12, 31), seed=4
            )
        )
    )
    cut = dt.datetime(2020, 6, 21)
    history = data.filter(pl.col("event_time") < cut)
    seeded = seed_champion(root, history)
    live = data.filter(pl.col("event_time") >= cut).head(rows)
    start = dt.datetime(2026, 10, 1)
    arrived = [
        start + dt.timedelta(seconds=int(i * HOURS * 3600 / live.height))
        for i in range(live.height)
    ]
    live = (
        live.with_columns(
            arrived_at=pl.Series(arrived, dtype=pl.Datetime("ms")),
        )
        .with_columns(
            event_time=pl.col("arrived_at"),
            batch_hour=pl.col("arrived_at").dt.strftime("%Y-%m-%d-%H:00"),
            event_time_source=pl.lit("arrival"),
            payload_key=pl.lit("benchmark"),
        )
        .with_columns(row_hash=row_hash())
        .select(list(LIVE_TRANSACTIONS_SCHEMA))
    )
    wh = Warehouse(f"sqlite:///{root / 'warehouse.db'}")
    ensure_tables(wh)
    wh.upsert("live_transactions", live, update=False)
    # a second champion, what the re-scoring is for (the set-up run promotes v1 back first)
    fs_result = train(history, _fs(), TrainParams(n_jobs=2, random_state=11))
    version = register(fs_result, root, seeded.tracking_uri, "the second champion")
    hours = sorted(set(live["batch_hour"]))
    return hours, version


def _fs():  # noqa: ANN202
    from fraud_assets.lib.features import for_semantics

    return for_semantics("arrival")


def rescore(root: Path, hours: list[str], version: str) -> dict:
    """One run of scoring_job over the whole range, with ``version`` as champion."""
    os.environ["FRAUD_DATA_DIR"] = str(root)
    from fraud_assets.definitions import build_resources, defs
    from fraud_assets.lib import registry

    registry.promote(f"sqlite:///{root / 'mlflow.db'}", "fraud_rf", version, "benchmark", "now")
    started = time.perf_counter()
    result = defs.get_job_def("scoring_job").execute_in_process(
        tags={
            "dagster/asset_partition_range_start": hours[0],
            "dagster/asset_partition_range_end": hours[-1],
        },
        resources=build_resources(),
    )
    wall = time.perf_counter() - started
    assert result.success
    with sqlite3.connect(root / "warehouse.db") as conn:
        total, distinct, stale = conn.execute(
            "SELECT count(*), count(DISTINCT trans_num), "
            "sum(CASE WHEN model_version = ? THEN 0 ELSE 1 END) FROM scored_transactions",
            (version,),
        ).fetchone()
        live = conn.execute("SELECT count(*) FROM live_transactions").fetchone()[0]
    return {
        "partitions": len(hours),
        "rows": live,
        "wall_s": round(wall, 1),
        "rows_per_s": round(total / wall),
        "duplicates": total - distinct,
        "unscored": live - (total - stale),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rescore", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=200_000,
        help="live rows spread over the 720 hourly partitions (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    print(json.dumps({"machine": describe()}), flush=True)
    with tempfile.TemporaryDirectory(prefix="fraud-rescore-") as tmp:
        root = Path(tmp)
        hours, version = build(root, args.rows)
        first = rescore(root, hours, "1")  # set-up: everything scored by champion v1
        print(json.dumps({"set_up_with_v1": first}), flush=True)
        figures = rescore(root, hours, version)
    figures["goal_met"] = figures["wall_s"] <= 600 and not figures["duplicates"]
    print(json.dumps(figures), flush=True)
    return figures


if __name__ == "__main__":
    main()
