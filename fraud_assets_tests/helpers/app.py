"""What the web app's tests share: warehouse rows to show, and logins made as the docs say."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os

import polars as pl

from fraud_assets.lib.schema import (
    ALERTS_SCHEMA,
    FEATURE_DRIFT_SCHEMA,
    LIVE_PERFORMANCE_SCHEMA,
    SCORED_TRANSACTIONS_SCHEMA,
)
from fraud_assets.lib.warehouse import Warehouse

T0 = dt.datetime(2024, 5, 1, 12, 0)


def scored_frame() -> pl.DataFrame:
    """Five scored rows: three flagged (one a missed label), two passed (one a missed fraud)."""
    rows = [
        # trans_num, minutes after T0, category, amt, probability, flagged, label
        ("a", 0, "shopping_net", 900.0, 0.91, True, 1),
        ("b", 30, "grocery_pos", 40.0, 0.75, True, 0),
        ("c", 60 * 30, "shopping_net", 300.0, 0.60, True, None),
        ("d", 60 * 30 + 5, "travel", 20.0, 0.10, False, 1),
        ("e", 60 * 30 + 9, "travel", 10.0, 0.02, False, 0),
    ]
    return pl.DataFrame(
        [
            {
                "trans_num": t,
                "event_time": T0 + dt.timedelta(minutes=m),
                "cc_num": "4000123412341234",
                "merchant": "m",
                "category": c,
                "amt": a,
                "event_time_source": "arrival",
                "arrived_at": T0 + dt.timedelta(minutes=m),
                "fraud_probability": p,
                "expected_loss": p * a,
                "is_flagged": f,
                "threshold": 0.5,
                "model_name": "fraud_rf",
                "model_version": "3" if t != "e" else "4",
                "feature_set_version": "arrival-v1",
                "feed_semantics": "arrival",
                "scored_at": T0 + dt.timedelta(minutes=m + 1),
                "label_is_fraud": y,
                "batch_hour": "h",
                "decided_by": "poll",
            }
            for t, m, c, a, p, f, y in rows
        ],
        schema=SCORED_TRANSACTIONS_SCHEMA,
    )


def stored(wh: Warehouse, scored: pl.DataFrame) -> Warehouse:
    wh.ensure_table("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
    wh.upsert("scored_transactions", scored)
    return wh


def monitoring_rows(wh: Warehouse) -> None:
    """Two days of live performance for two versions, two drift runs, three alerts."""
    at = dt.datetime(2024, 5, 3, 6, 0)
    perf = [
        (day, version, 1000, 900, 6, 12, p, r, 0.4, 0.012, 0.006, 250.0, at)
        for day, version, p, r in [
            ("2024-05-01", "3", 0.5, 0.6),
            ("2024-05-02", "3", 0.4, None),
            ("2024-05-02", "4", 0.7, 0.8),
        ]
    ]
    wh.ensure_table("live_performance", LIVE_PERFORMANCE_SCHEMA, key="perf_key")
    wh.upsert(
        "live_performance",
        pl.DataFrame(
            [(f"{r[0]}/{r[1]}", *r) for r in perf], schema=LIVE_PERFORMANCE_SCHEMA, orient="row"
        ),
        key="perf_key",
    )
    drift = [
        ("run-1/amt", at - dt.timedelta(days=1), "3", "amt", 0.31, True, 500, 400),
        ("run-2/amt", at, "4", "amt", 0.05, False, 500, 400),
        ("run-2/hour", at, "4", "hour", 0.27, True, 500, 400),
        ("run-2/category", at, "4", "category", 0.12, False, 500, 400),
    ]
    wh.ensure_table("feature_drift", FEATURE_DRIFT_SCHEMA, key="drift_key")
    wh.upsert(
        "feature_drift",
        pl.DataFrame(drift, schema=FEATURE_DRIFT_SCHEMA, orient="row"),
        key="drift_key",
    )
    alerts = [
        (f"cond{i}/w{i}", f"cond{i}", at, at + dt.timedelta(hours=i), sev, msg, "log", True)
        for i, sev, msg in [
            (1, "warn", "flag rate up"),
            (2, "critical", "webhook https://u:hunter22@hooks.example/x failed"),
            (3, "warn", "drift in hour"),
        ]
    ]
    wh.ensure_table("alerts", ALERTS_SCHEMA, key="alert_key")
    wh.upsert("alerts", pl.DataFrame(alerts, schema=ALERTS_SCHEMA, orient="row"), key="alert_key")


FAST = 1000  # iterations: tests need not be slow; production entries use 600,000


def docs_entry(name: str, password: str, iterations: int = FAST) -> str:
    """An entry made the way docs/deploy.md shows, with the standard library only."""
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"{name}:pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(key).decode()}"
