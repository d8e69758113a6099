"""End-to-end scoring throughput (parse -> features -> predict -> write) against the model's
raw ``predict_proba`` on the same rows, in one run.

Usage: python -m benchmarks.scoring_throughput [--rows 100000] [--url sqlite:///… | postgresql://…]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.harness import stop_on_sigterm
from benchmarks.machine import print_machine
from fraud_assets.lib.api import encode_payload
from fraud_assets.lib.evaluation import serving_model
from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.generator import GeneratorConfig, generate_transactions
from fraud_assets.lib.landing import landing_key, parse_payloads
from fraud_assets.lib.model import TrainParams, train
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA, training_csv_to_canonical
from fraud_assets.lib.serving import FrameState, score_rows
from fraud_assets.lib.warehouse import Warehouse

SPLIT = dt.datetime(2020, 5, 1)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=100_000, help="transactions (default: %(default)s)"
    )
    parser.add_argument(
        "--rows-per-payload",
        type=int,
        default=100,
        help="rows per API payload (default: %(default)s)",
    )
    parser.add_argument("--url", help="warehouse URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    print_machine()

    public = generate_transactions(
        GeneratorConfig(n_cards=800, start=dt.date(2020, 1, 1), end=dt.date(2020, 7, 15), seed=3)
    )
    data = training_csv_to_canonical(public)
    history = data.filter(pl.col("event_time") < SPLIT)
    live_public = public.filter(
        pl.col("trans_date_trans_time").str.to_datetime("%Y-%m-%d %H:%M:%S") >= SPLIT
    ).head(args.rows)
    fs = for_semantics("arrival")
    model = train(history, fs, TrainParams())
    state = FrameState(fs.build_state(history))
    print(f"training rows {history.height}, live rows {live_public.height}")

    # The API's own wire format, in payloads of --rows-per-payload rows.
    epoch_ms = live_public["unix_time"].cast(pl.Int64) * 1000
    now = dt.datetime(2026, 11, 28, 12)
    payloads = []
    for start in range(0, live_public.height, args.rows_per_payload):
        chunk = live_public.slice(start, args.rows_per_payload)
        body = encode_payload(
            chunk, chunk[""].to_list(), epoch_ms.slice(start, args.rows_per_payload).to_list()
        )
        payloads.append((landing_key(now + dt.timedelta(milliseconds=start)), body))

    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(args.url or f"sqlite:///{Path(tmp) / 'bench.db'}", schema="bench")
        wh.ensure_table("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
        t = {"start": time.perf_counter()}
        batch = parse_payloads(payloads).rows
        t["parsed"] = time.perf_counter()
        scored = score_rows(
            batch, state, serving_model(model), semantics="arrival", batch_hour="bench"
        ).scored
        t["scored"] = time.perf_counter()
        wh.upsert("scored_transactions", scored)
        t["written"] = time.perf_counter()
        assert wh.count("scored_transactions") == batch.height

    cards = batch["cc_num"].unique().to_list()
    x = fs.matrix(fs.serving_features(batch, state.state_for(fs, cards)))
    t0 = time.perf_counter()
    model.pipeline.predict_proba(x)
    raw_s = time.perf_counter() - t0

    n = batch.height
    total = t["written"] - t["start"]
    figures = {
        "rows": n,
        "parse_s": round(t["parsed"] - t["start"], 3),
        "features_predict_s": round(t["scored"] - t["parsed"], 3),
        "write_s": round(t["written"] - t["scored"], 3),
        "end_to_end_rows_per_s": round(n / total),
        "raw_predict_proba_rows_per_s": round(n / raw_s),
        "ratio": round((n / total) / (n / raw_s), 2),
        "warehouse": "postgresql" if wh.postgres else "sqlite",
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
