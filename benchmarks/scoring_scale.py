"""``python -m benchmarks.scoring_scale``: does a scoring micro-batch cost more when the
training history is larger?

One scoring run (``live_transactions`` + ``scored_transactions`` for one hour holding 10 landed
API payloads of one transaction each) is timed end to end, in a fresh process, against a
platform whose training history has 50,000 rows and against one with 1,350,000 rows (the
public fraudTrain.csv's size), on the same machine in the same run. The card state is built
from the whole history; the champion (the same for both) is trained on a 50,000-row sample,
since the model's size does not grow with history. A warm-up run of another hour comes first,
so the model is in the local cache as it is in steady state.

Prints the machine and one JSON line: small_rows, large_rows, small_s, large_s, ratio,
small_rss_mb, large_rss_mb (peak RSS of the scoring process). Goals: ratio <= 1.2, RSS growth
<= 200 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import card_sample, seed_platform, stop_on_sigterm
from benchmarks.machine import describe

CARDS = 983  # as in the public files


def _history(rows: int, seed: int):  # noqa: ANN202
    from fraud_assets.lib.generator import GeneratorConfig, generate_transactions
    from fraud_assets.lib.schema import training_csv_to_canonical

    days = max(int(rows / (CARDS * 2.0)), 1)
    start = dt.date(2019, 1, 1)
    config = GeneratorConfig(
        n_cards=CARDS, start=start, end=start + dt.timedelta(days=days), seed=seed
    )
    return training_csv_to_canonical(generate_transactions(config))


def setup(root: Path, rows: int) -> None:
    history = _history(rows, seed=3)
    # the same champion for both sizes: trained on its own data, whatever the history
    model_data = _history(300_000, seed=7)
    seed_platform(root, history, fit_on=card_sample(model_data, 60_000))
    (root / "rows.txt").write_text(str(history.height))
    history.sample(n=20, seed=1).write_parquet(root / "probe.parquet")


def measure(root: Path) -> dict:
    """In a fresh process: land 10 payloads into an hour and time its scoring run."""
    import resource
    import time

    import dagster as dg
    import polars as pl

    os.environ["FRAUD_DATA_DIR"] = str(root)
    from fraud_assets.definitions import build_resources, defs
    from fraud_assets.lib.api import encode_payload
    from fraud_assets.lib.evaluation import api_row
    from fraud_assets.lib.landing import landing_key
    from fraud_assets.lib.storage import LocalObjectStore

    rows = api_row(pl.read_parquet(root / "probe.parquet"))  # 20 known cards' rows
    store = LocalObjectStore(root / "objects")
    resources = build_resources()
    assets = [defs.get_assets_def(k) for k in ("live_transactions", "scored_transactions")]
    timings = []
    for i, hour in enumerate((dt.datetime(2026, 11, 28, 10), dt.datetime(2026, 11, 28, 11))):
        for j in range(10):
            arrived = hour + dt.timedelta(seconds=j)
            ms = int(arrived.replace(tzinfo=dt.UTC).timestamp() * 1000)
            store.put_bytes(landing_key(arrived), encode_payload(rows[i * 10 + j], [j], [ms]))
        started = time.perf_counter()
        result = dg.materialize(
            assets, partition_key=hour.strftime("%Y-%m-%d-%H:00"), resources=resources
        )
        timings.append(time.perf_counter() - started)
        assert result.success
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": timings[-1], "warmup_seconds": timings[0], "rss_mb": rss}


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.scoring_scale", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scoring_scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--small",
        type=int,
        default=50_000,
        help="training rows of the small history (default: %(default)s)",
    )
    parser.add_argument(
        "--large",
        type=int,
        default=1_350_000,
        help="training rows of the large history (default: %(default)s)",
    )
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stop_on_sigterm()
    if args.setup:
        setup(Path(args.setup), args.rows)
        print(json.dumps({"ok": True}))
        return {}
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return {}
    print(json.dumps({"machine": describe()}), flush=True)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fraud-scale-") as tmp:
        for name, rows in (("small", args.small), ("large", args.large)):
            root = Path(tmp) / name
            root.mkdir()
            _child(["--setup", str(root), "--rows", str(rows)])
            got = _child(["--measure", str(root)])
            figures[f"{name}_rows"] = int((root / "rows.txt").read_text())
            figures[f"{name}_s"] = round(got["seconds"], 3)
            figures[f"{name}_warmup_s"] = round(got["warmup_seconds"], 3)
            figures[f"{name}_rss_mb"] = round(got["rss_mb"], 1)
    figures["ratio"] = round(figures["large_s"] / figures["small_s"], 3)
    figures["rss_growth_mb"] = round(figures["large_rss_mb"] - figures["small_rss_mb"], 1)
    figures["goals_met"] = figures["ratio"] <= 1.2 and figures["rss_growth_mb"] <= 200
    print(json.dumps(figures), flush=True)
    return figures


if __name__ == "__main__":
    main()
