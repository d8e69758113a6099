"""``python -m benchmarks.recovery``: the closed loop detects a wrong champion and recovers on
its own, under ``dagster dev`` against the stand-in, at an accelerated clock.

1. It builds a platform whose champion is wrong for the live traffic: a model (for the same
   feed and feature set, so serving accepts it) trained on an older period whose fraud
   happened in other categories and amounts than the feed's. The card state and training
   data are the feed's own, as they would be after a data refresh.
2. It starts the platform (``make run`` without the app) with labels known at once, the
   monitoring every minute and alerts checked every 15 s, and streams labelled API traffic.
3. It waits for an alert, for the retraining the alert starts, and for a promotion; then it
   lets the new champion score traffic.
4. It prints one JSON line: ``alert_after_s``, ``retrained``, ``promoted_version``,
   ``flag_rate_before``, ``flag_rate_after``, ``ap_before``, ``ap_after``, ``fraud_rate``,
   ``wall_s``, plus the machine.

Nothing is clicked: the loop runs by itself. It asserts nothing; it measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.harness import seed_platform, start_platform, stop, stop_on_sigterm
from benchmarks.machine import describe
from fraud_assets.testing.servers import free_port

#: Fraud of another time: small amounts in other categories (category, share, low, high $).
OLD_FRAUD = (
    ("travel", 0.35, 20.0, 90.0),
    ("kids_pets", 0.25, 10.0, 60.0),
    ("personal_care", 0.2, 5.0, 40.0),
    ("health_fitness", 0.2, 10.0, 50.0),
)


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    from fraud_assets.lib.generator import write_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(frame.drop("").with_row_index("").with_columns(pl.col("").cast(pl.Int64)), path)


def build(root: Path, cards: int) -> None:
    """The feed's data and card state, and a wrong champion, under ``root``."""
    import os

    from fraud_assets.lib.generator import GeneratorConfig, generate_transactions
    from fraud_assets.lib.schema import training_csv_to_canonical
    from fraud_assets.platform import SPLIT

    os.environ["FRAUD_DATA_DIR"] = str(root)
    now = GeneratorConfig(
        n_cards=cards, start=dt.date(2020, 1, 1), end=dt.date(2020, 12, 31), seed=42
    )
    public = generate_transactions(now)
    when = pl.col("trans_date_trans_time").str.to_datetime("%Y-%m-%d %H:%M:%S")
    _write_csv(public.filter(when < SPLIT), root / "source" / "fraudTrain.csv")
    _write_csv(public.filter(when >= SPLIT), root / "source" / "fraudTest.csv")
    old = GeneratorConfig(
        n_cards=cards,
        start=dt.date(2017, 1, 1),
        end=dt.date(2017, 12, 31),
        seed=9,
        fraud_profile=OLD_FRAUD,
    )
    seed_platform(
        root,
        training_csv_to_canonical(public.filter(when < SPLIT)),
        fit_on=training_csv_to_canonical(generate_transactions(old)),
    )


def _scored(db: Path) -> pl.DataFrame:
    if not db.exists():
        return pl.DataFrame()
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute(
                "SELECT model_version, fraud_probability, is_flagged, label_is_fraud, scored_at "
                "FROM scored_transactions"
            ).fetchall()
    except sqlite3.OperationalError:
        return pl.DataFrame()
    return pl.DataFrame(rows, orient="row", schema=["version", "p", "flagged", "label", "at"])


def _first_alert(db: Path) -> str | None:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            row = conn.execute("SELECT min(raised_at) FROM alerts").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _history(root: Path) -> tuple[bool, list[dict]]:
    """Whether a retrained model (not a re-calibrated copy) was promoted, and the history."""
    from fraud_assets.lib import registry

    uri = f"sqlite:///{root / 'mlflow.db'}"
    history = registry.champion_history(uri, "fraud_rf")
    retrained = any(
        "recalibrated_from" not in registry.get_version(uri, "fraud_rf", h["version"]).tags
        for h in history[1:]
    )
    return retrained, history


def _figures(rows: pl.DataFrame) -> dict[str, float]:
    from fraud_assets.lib.metrics import ranking

    if rows.height == 0:
        return {"rows": 0}
    y = rows["label"].fill_null(0).to_numpy()
    ap, _ = ranking(y, rows["p"].to_numpy())
    return {
        "rows": rows.height,
        "flag_rate": float(rows["flagged"].mean()),
        "ap": ap,
        "fraud_rate": float(y.mean()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.recovery", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--cards", type=int, default=300, help="cards in the generated feed (default: %(default)s)"
    )
    parser.add_argument(
        "--rows-per-call",
        type=int,
        default=20,
        help="rows the stand-in serves per API call (default: %(default)s)",
    )
    parser.add_argument(
        "--after-rows",
        type=int,
        default=3000,
        help="rows the new champion scores before measuring (default 3000)",
    )
    parser.add_argument(
        "--timeout-minutes",
        type=float,
        default=40,
        help="give up after this long (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    print(json.dumps({"machine": describe()}), flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fraud-recovery-") as tmp:
        root = Path(tmp)
        build(root, args.cards)
        import os

        os.environ.update(
            FRAUD_LABEL_DELAY_HOURS="0",
            FRAUD_MONITORING_CRON="* * * * *",
            FRAUD_ALERTS_INTERVAL_SECONDS="15",
            FRAUD_RETRAIN_CRON="0 3 1 1 *",  # only the alerts retrain here
            FRAUD_ALERT_WINDOW_MINUTES="30",
        )
        api_port = free_port()
        proc = start_platform(
            root, api_port, free_port(), f"--rows-per-call {args.rows_per_call}", poll_seconds=5
        )
        db = root / "warehouse.db"
        stream_started = time.monotonic()
        result: dict = {"retrained": False, "promoted_version": None, "alert_after_s": None}
        first = pl.DataFrame()
        deadline = stream_started + args.timeout_minutes * 60
        try:
            while time.monotonic() < deadline:
                time.sleep(10)
                if result["alert_after_s"] is None and _first_alert(db):
                    result["alert_after_s"] = round(time.monotonic() - stream_started)
                scored = _scored(db)
                versions = set(scored["version"]) if scored.height else set()
                newer = sorted(v for v in versions if v != "1")
                if not newer:
                    # v1's figures as they stand before the promotion: once the new champion
                    # re-scores an hour's partition, v1's scores of that hour are replaced
                    first = scored
                if newer:
                    result["promoted_version"] = newer[-1]
                    after = scored.filter(pl.col("version") == newer[-1])
                    if after.height >= args.after_rows:
                        break
        finally:
            stop(proc)
        scored = _scored(db)
        before = _figures(first.filter(pl.col("version") == "1")) if first.height else {"rows": 0}
        after = _figures(scored.filter(pl.col("version") == (result["promoted_version"] or "")))
        result["retrained"], result["champion_history"] = _history(root)
    result |= {
        "flag_rate_before": before.get("flag_rate"),
        "flag_rate_after": after.get("flag_rate"),
        "ap_before": before.get("ap"),
        "ap_after": after.get("ap"),
        "fraud_rate": after.get("fraud_rate", before.get("fraud_rate")),
        "rows_before": before["rows"],
        "rows_after": after["rows"],
        "wall_s": round(time.monotonic() - started),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
