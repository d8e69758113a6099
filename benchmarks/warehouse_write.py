"""Writing scored rows to PostgreSQL: the warehouse's COPY upsert against pandas ``to_sql``.

Usage: python -m benchmarks.warehouse_write [--rows 100000] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import uuid

import numpy as np
import polars as pl
import psycopg
from psycopg import sql
from sqlalchemy import create_engine

from benchmarks.harness import stop_on_sigterm
from benchmarks.machine import print_machine
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse


def scored_rows(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 11, 28)
    proba = rng.random(n)
    return pl.DataFrame(
        {
            "trans_num": [uuid.UUID(int=int(x)).hex for x in rng.integers(0, 2**62, n)],
            "event_time": [start + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 3600, n)],
            "cc_num": [str(x) for x in rng.integers(10**15, 10**16, n)],
            "merchant": ["fraud_Kirlin and Sons"] * n,
            "category": ["personal_care"] * n,
            "amt": rng.lognormal(3.5, 1.0, n).round(2),
            "event_time_source": ["arrival"] * n,
            "arrived_at": [start] * n,
            "fraud_probability": proba,
            "expected_loss": proba * 40,
            "is_flagged": proba > 0.9,
            "threshold": [0.9] * n,
            "model_name": ["fraud_rf"] * n,
            "model_version": ["1"] * n,
            "feature_set_version": ["arrival-v1"] * n,
            "feed_semantics": ["arrival"] * n,
            "scored_at": [start] * n,
            "label_is_fraud": rng.integers(0, 2, n),
            "batch_hour": ["2026-11-28-00:00"] * n,
            "decided_by": ["poll"] * n,
        },
        schema=SCORED_TRANSACTIONS_SCHEMA,
    ).unique("trans_num")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=100_000, help="rows written (default: %(default)s)"
    )
    parser.add_argument(
        "--url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server to write to (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    print_machine()
    frame = scored_rows(args.rows)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    wh = Warehouse(args.url, schema=schema)
    wh.ensure_table("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
    try:
        t0 = time.perf_counter()
        wh.upsert("scored_transactions", frame)
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        wh.upsert("scored_transactions", frame)  # the same batch again: every row conflicts
        recopy_s = time.perf_counter() - t0
        assert wh.count("scored_transactions") == frame.height

        pdf = frame.to_pandas()
        to_sql_s = {}
        # SQLAlchemy's default driver for postgresql:// is psycopg2; psycopg 3 pipelines inserts.
        for driver in ("psycopg2", "psycopg"):
            engine = create_engine(args.url.replace("postgresql://", f"postgresql+{driver}://", 1))
            t0 = time.perf_counter()
            pdf.to_sql(f"to_sql_{driver}", engine, schema=schema, if_exists="append", index=False)
            to_sql_s[driver] = time.perf_counter() - t0
            engine.dispose()
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    figures = {
        "rows": frame.height,
        "copy_upsert_rows_per_s": round(frame.height / copy_s),
        "copy_upsert_again_rows_per_s": round(frame.height / recopy_s),
        "to_sql_psycopg2_rows_per_s": round(frame.height / to_sql_s["psycopg2"]),
        "to_sql_psycopg3_rows_per_s": round(frame.height / to_sql_s["psycopg"]),
        "speedup_vs_to_sql_psycopg2": round(to_sql_s["psycopg2"] / copy_s, 1),
        "speedup_vs_to_sql_psycopg3": round(to_sql_s["psycopg"] / copy_s, 1),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
