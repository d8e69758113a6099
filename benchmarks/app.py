"""Benchmark: manual-score latency through gradio_client, against raw single-row predict.

``python -m benchmarks.app`` builds a throwaway platform (generated data, a RandomForest
with the production hyperparameters registered as champion in a local MLflow store, live
history in a SQLite warehouse), launches the app on loopback and calls ``/score`` N times.
``--existing`` benchmarks the platform the environment points at instead. It prints figures;
it asserts nothing. The last line is the figures as JSON; the machine is printed as JSON too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.harness import stop_on_sigterm
from fraud_assets.testing.servers import free_port


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return (
        f"p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  "
        f"mean {statistics.fmean(ms):6.2f} ms  (n={len(ms)})"
    )


def build_platform(root: Path, n_cards: int) -> pl.DataFrame:
    """Generated data, a champion model and its card state under ``root``
    (``fraud_assets.testing.seed_champion``); returns the data."""
    from fraud_assets.lib.generator import GeneratorConfig, generate_transactions
    from fraud_assets.lib.model import TrainParams
    from fraud_assets.lib.schema import training_csv_to_canonical
    from fraud_assets.testing import seed_champion

    os.environ["FRAUD_DATA_DIR"] = str(root)
    for name in ("FRAUD_DATABASE_URL", "MLFLOW_TRACKING_URI", "FRAUD_S3_BUCKET"):
        os.environ.pop(name, None)
    semantics = os.environ.get("FRAUD_FEED_SEMANTICS") or "arrival"
    cfg = GeneratorConfig(
        n_cards=n_cards, start=dt.date(2020, 1, 1), end=dt.date(2020, 5, 1), seed=5
    )
    frame = training_csv_to_canonical(generate_transactions(cfg)).sort("event_time")
    started = time.perf_counter()
    # production hyperparameters
    seed_champion(root, frame, semantics=semantics, params=TrainParams())
    seconds = time.perf_counter() - started
    print(f"seeded a champion trained on {frame.height:,} rows in {seconds:.1f} s")
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.app", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--calls", type=int, default=500, help="timed calls (default: %(default)s)")
    parser.add_argument(
        "--warmup", type=int, default=30, help="untimed calls first (default: %(default)s)"
    )
    parser.add_argument(
        "--cards", type=int, default=300, help="cards in the generated data (default: %(default)s)"
    )
    parser.add_argument(
        "--existing",
        action="store_true",
        help="benchmark the platform the environment points at (default: a throwaway one)",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # One client makes every call: lift the per-client limit (the limiter still runs).
    os.environ["FRAUD_APP_RATE_LIMIT_PER_MINUTE"] = str(10**9)
    with tempfile.TemporaryDirectory(prefix="app-bench-") as tmp:
        if args.existing:
            from app_gradio.config import warehouse
            from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA

            rows = warehouse().read("live_transactions", LIVE_TRANSACTIONS_SCHEMA, limit=1)
            card = rows["cc_num"][0] if rows.height else ""
        else:
            frame = build_platform(Path(tmp), args.cards)
            card = frame["cc_num"].value_counts(sort=True)["cc_num"][0]
        run(args, card)


def serve(port: int, ready, stop, timings) -> None:  # noqa: ANN001 - multiprocessing objects
    """Child process: the app as deployed, recording each score's server-side seconds."""
    from app_gradio.app import build_app, launch, make_scorer

    scorer = make_scorer()
    seconds: list[float] = []
    score = scorer.score

    def timed_score(tx):  # noqa: ANN001, ANN202
        result = score(tx)
        seconds.append(result.seconds)
        return result

    scorer.score = timed_score  # type: ignore[method-assign]
    app = build_app(scorer)
    launch(app, server_port=port, prevent_thread_lock=True, quiet=True)
    ready.set()
    stop.wait()
    timings.put(seconds)
    app.close()


def run(args: argparse.Namespace, card: str) -> None:
    """Launch the app in its own process, time ``/score`` through gradio_client from this
    one, then time raw predicts of the same model here; print everything."""
    import multiprocessing as mp

    from gradio_client import Client

    from app_gradio import config
    from app_gradio.app import make_scorer
    from app_gradio.scoring import parse_form

    form = {
        "amount": 742.18,
        "category": "shopping_net",
        "merchant_lat": 41.2,
        "merchant_long": -73.5,
        "cardholder_lat": 40.7,
        "cardholder_long": -74.0,
        "date_of_birth": "1961-03-02",
        "transaction_time": "2020-04-20 02:15:00",
        "card_number": card,
    }
    ctx = mp.get_context("spawn")
    ready, stop, timings = ctx.Event(), ctx.Event(), ctx.Queue()
    port = free_port()
    server = ctx.Process(target=serve, args=(port, ready, stop, timings))
    server.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("the app did not start within 120 s")
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        for _ in range(args.warmup):
            client.predict(**form, api_name="/score")
        round_trip = []
        for _ in range(args.calls):
            started = time.perf_counter()
            client.predict(**form, api_name="/score")
            round_trip.append(time.perf_counter() - started)
    except BaseException:  # SIGTERM included (stop_on_sigterm): stop the app too
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()
        raise
    stop.set()
    server_side = timings.get(timeout=60)[args.warmup :]
    server.join(timeout=30)

    from fraud_assets.lib.card_state import WarehouseState
    from fraud_assets.lib.model import predict_raw

    scorer = make_scorer()
    loaded = scorer.model()
    model = loaded.model
    pipeline = model.pipeline
    tx = parse_form(**form)
    cards = [tx.card_number or ""]
    state = WarehouseState(config.warehouse())
    features = model.feature_set.serving_features(
        tx.to_frame(), state.state_for(model.feature_set, cards)
    )
    x = model.feature_set.matrix(features)
    raw, served, lookup, shap_s = [], [], [], []
    for _ in range(args.calls):
        started = time.perf_counter()
        pipeline.predict_proba(x)
        raw.append(time.perf_counter() - started)
    for _ in range(args.calls):
        started = time.perf_counter()
        predict_raw(pipeline, model.feature_set, features)
        served.append(time.perf_counter() - started)
    for _ in range(args.calls):
        started = time.perf_counter()
        state.state_for(model.feature_set, cards)
        lookup.append(time.perf_counter() - started)
    for _ in range(args.calls):
        started = time.perf_counter()
        loaded.explainer.explain(features)
        shap_s.append(time.perf_counter() - started)
    clf = pipeline.named_steps["model"]

    p99_server = float(np.percentile(server_side, 99))
    p50_raw = float(np.percentile(raw, 50))
    from benchmarks.machine import describe

    print(json.dumps({"machine": describe()}))
    print(
        f"model: {loaded.info.name} v{loaded.info.version} ({loaded.info.semantics} feeds), "
        f"{getattr(clf, 'n_estimators', '?')} trees, max_depth {getattr(clf, 'max_depth', '?')}"
    )
    print(f"/score via gradio_client, round trip    {percentiles(round_trip)}")
    print(f"/score server side (lookup..decision)   {percentiles(server_side)}")
    print(f"raw predict_proba, 1 row, n_jobs=1      {percentiles(raw)}")
    print(f"served predict (predict_raw), 1 row     {percentiles(served)}")
    print(f"card-state lookup by card               {percentiles(lookup)}")
    print(f"TreeSHAP explanation, 1 row             {percentiles(shap_s)}")
    print(
        f"goal p99 server side <= 50 ms: {'met' if p99_server <= 0.050 else 'NOT met'} "
        f"({p99_server * 1000:.1f} ms); p99 server / p50 raw predict = "
        f"{p99_server / p50_raw:.1f}x (goal <= 3x)"
    )
    print(json.dumps(figures(round_trip, server_side, raw, served, lookup, shap_s)))


def figures(round_trip, server_side, raw, served, lookup, shap_s) -> dict[str, float | bool]:  # noqa: ANN001
    """The JSON line: p50/p99 in ms of each measure, the ratio and whether the goals are met."""
    out: dict[str, float | bool] = {}
    for name, values in (
        ("round_trip", round_trip),
        ("server", server_side),
        ("raw_predict", raw),
        ("served_predict", served),
        ("card_lookup", lookup),
        ("shap", shap_s),
    ):
        for q in (50, 99):
            out[f"{name}_p{q}_ms"] = round(float(np.percentile(values, q)) * 1000, 2)
    out["server_p99_over_raw_p50"] = round(out["server_p99_ms"] / out["raw_predict_p50_ms"], 2)
    out["server_p99_over_served_predict_p50"] = round(
        out["server_p99_ms"] / out["served_predict_p50_ms"], 2
    )
    out["goal_p99_50ms_met"] = out["server_p99_ms"] <= 50
    out["goal_3x_met"] = out["server_p99_over_raw_p50"] <= 3
    return out


if __name__ == "__main__":
    main()
