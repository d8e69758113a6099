"""Hold-out evaluation under a feed's contract: train as ``rf_model`` does, then serve a later
test set the way the feed would deliver it, through the real parse and the one serving path.

- ``api``: the real transactions API. N calls drawn at random with replacement, one row per
  call, the true time columns removed, ``current_time`` 12 s apart; the model is trained for
  ``arrival`` feeds.
- ``replay``: an event-time feed. Every test row once, in event-time order, carrying its true
  event time; the model is trained for ``payload`` feeds.
- recorded payloads: raw bodies as they were landed (or recorded elsewhere), in arrival order.

Payloads are parsed together (``parse_payloads``) and scored in one ``score_rows`` call: a test
proves this batch gives the features that one payload at a time does.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import resource
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fraud_assets.lib.api import encode_payload
from fraud_assets.lib.calibration import recalibrate
from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.landing import LANDING_PREFIX, Feed, landing_key, parse_payloads
from fraud_assets.lib.metrics import evaluate
from fraud_assets.lib.model import TrainParams, TrainResult, predict_raw, train
from fraud_assets.lib.schema import read_training_csv
from fraud_assets.lib.serving import FrameState, ScoredBatch, ServingModel, score_rows, with_runtime
from fraud_assets.lib.storage import LocalObjectStore, ObjectStore, S3ObjectStore

PROTOCOLS = {"api": "arrival", "replay": "payload"}
#: The real API's pace: one call every 12 s.
CALL_SECONDS = 12
#: Where simulated calls start (any fixed instant: it only names landing keys).
SIMULATION_START = dt.datetime(2026, 1, 1)
#: The event-time field simulated event-time feeds carry.
EVENT_TIME_FIELD = "event_time"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


def model_mb(pipeline: object) -> float:
    """Size of the pickled pipeline, in MB."""
    return len(pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)) / 1e6


def serving_model(result: TrainResult) -> ServingModel:
    """The trained model as it is served: with its fast runtime."""
    model = ServingModel(result.pipeline, result.feature_set, result.calibration, result.decision)
    return with_runtime(model)


def _key(arrived: dt.datetime, call: int) -> str:
    return landing_key(arrived, f"{call:012x}")


def api_row(test: pl.DataFrame) -> pl.DataFrame:
    """Test rows in the API's layout: the source file's row index, no true time."""
    return test.with_row_index("").with_columns(pl.col("").cast(pl.Int64))


def simulate_api(test: pl.DataFrame, calls: int, seed: int) -> list[tuple[str, bytes]]:
    """``calls`` payloads as the real API sends them: one random row each (with replacement),
    no true time, ``current_time`` = the call's time, 12 s apart."""
    rows = api_row(test)
    draws = np.random.default_rng(seed).integers(0, rows.height, calls)
    payloads = []
    for call, index in enumerate(draws.tolist()):
        arrived = SIMULATION_START + dt.timedelta(seconds=CALL_SECONDS * call)
        ms = int(arrived.replace(tzinfo=dt.UTC).timestamp() * 1000)
        payloads.append((_key(arrived, call), encode_payload(rows[index], [index], [ms])))
    return payloads


def simulate_replay(test: pl.DataFrame) -> list[tuple[str, bytes]]:
    """Every test row once, in event-time order, each carrying its true event time."""
    rows = api_row(test).sort("event_time", "trans_num")
    payloads = []
    times = rows["event_time"].dt.epoch("ms").to_list()
    for call in range(rows.height):
        arrived = SIMULATION_START + dt.timedelta(seconds=CALL_SECONDS * call)
        ms = int(arrived.replace(tzinfo=dt.UTC).timestamp() * 1000)
        row = rows[call]
        body = encode_payload(row, [int(row[""][0])], [ms], extra={EVENT_TIME_FIELD: [times[call]]})
        payloads.append((_key(arrived, call), body))
    return payloads


def read_recorded(
    path: str | Path, s3_client: Callable[[], Any] | None = None
) -> list[tuple[str, bytes]]:
    """Recorded payloads: a JSON-lines file of ``{"arrived_at": ..., "body": ...}`` (ISO time
    or epoch ms; the body as the API sent it), or the landing prefix of an object store: a
    local directory or ``s3://bucket/prefix`` (through ``s3_client()``, a boto3 client)."""
    text = str(path)
    if text.startswith("s3://"):
        if s3_client is None:
            raise ValueError(f"{text} is in S3: reading it needs an S3 client")
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        return _landed(S3ObjectStore(s3_client(), bucket, prefix))
    path = Path(path)
    if path.is_dir():
        return _landed(LocalObjectStore(path))
    payloads = []
    for call, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        record = json.loads(line)
        when = record["arrived_at"]
        arrived = (
            dt.datetime.fromtimestamp(when / 1000, dt.UTC).replace(tzinfo=None)
            if isinstance(when, int | float)
            else dt.datetime.fromisoformat(str(when)).replace(tzinfo=None)
        )
        body = record["body"]
        payloads.append((_key(arrived, call), body.encode() if isinstance(body, str) else body))
    return payloads


def _landed(store: ObjectStore) -> list[tuple[str, bytes]]:
    """Every landed payload under the store's root, keyed as the landing keys them."""
    out = []
    for key in store.list(""):
        name = key.rsplit("/", 1)[-1]
        hour = key.split("/")[-2] if "/" in key else ""
        if name.endswith(".json") and hour.startswith("hour="):
            out.append((f"{LANDING_PREFIX}/{hour}/{name}", store.get_bytes(key)))
    return out


def score_payloads(
    payloads: Iterable[tuple[str, bytes]],
    result: TrainResult,
    history: pl.DataFrame,
    event_time_field: str = EVENT_TIME_FIELD,
) -> tuple[ScoredBatch, dict[str, float]]:
    """Parse, de-duplicate and score payloads as the live path does; returns the scored rows
    (with ``is_fraud``), their features, and timings. ``event_time_field`` is where a
    ``payload`` feed finds its event time."""
    fs = result.feature_set
    feed = Feed(fs.semantics, event_time_field)
    started = time.perf_counter()
    parsed = parse_payloads(list(payloads), feed)
    parse_s = time.perf_counter() - started
    rows = parsed.rows.sort("event_time", "trans_num") if fs.semantics == "payload" else parsed.rows
    started = time.perf_counter()
    batch = score_rows(
        rows, FrameState(fs.build_state(history)), serving_model(result), semantics=fs.semantics
    )
    score_s = time.perf_counter() - started
    scored = batch.scored.with_columns(is_fraud=pl.col("label_is_fraud"))
    return ScoredBatch(scored, batch.features), {
        "parse_seconds": parse_s,
        "score_seconds": score_s,
        "rejects": len(parsed.rejects),
    }


def protocol_payloads(
    protocol: str, test: pl.DataFrame | None, calls: int, seed: int
) -> list[tuple[str, bytes]]:
    """The payloads a protocol delivers for ``test``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if test is None:
        raise ValueError("a test set is needed to simulate a protocol")
    return simulate_api(test, calls, seed) if protocol == "api" else simulate_replay(test)


def measure(
    result: TrainResult,
    history: pl.DataFrame,
    payloads: list[tuple[str, bytes]],
    event_time_field: str = EVENT_TIME_FIELD,
) -> dict:
    """Serve ``payloads`` with a trained model (card state from ``history``) and measure."""
    batch, timing = score_payloads(payloads, result, history, event_time_field)
    scored = batch.scored
    ev = evaluate(
        scored["is_fraud"].to_numpy(),
        scored["fraud_probability"].to_numpy(),
        scored["amt"].to_numpy(),
        result.decision,
    )
    return {
        "semantics": result.feature_set.semantics,
        "feature_set_version": result.feature_set.version,
        "model": result.params.model,
        "calls": len(payloads),
        **ev.as_dict(),
        "validation_ap": result.validation.ap,
        "validation_ece": result.validation.ece,
        "fit_seconds": result.fit_seconds,
        "fit_rows": result.fit_rows,
        "rejected_payloads": timing["rejects"],
        "parse_seconds": timing["parse_seconds"],
        "score_rows_per_s": scored.height / max(timing["score_seconds"], 1e-9),
        "model_mb": model_mb(result.pipeline),
        "peak_rss_mb": peak_rss_mb(),
        **with_the_loop(batch, result),
    }


#: Share of the stream (the earliest calls) whose delayed labels recalibrate the decision.
LOOP_LABELLED_SHARE = 0.2


def with_the_loop(batch: ScoredBatch, result: TrainResult) -> dict[str, float]:
    """What the closed loop adds: the decision re-chosen (``calibration.recalibrate``, as
    ``champion_calibration`` does) on the labels of the earliest ``LOOP_LABELLED_SHARE`` of
    the stream, then measured on the rest. ``loop_*`` figures; empty when it changes nothing."""
    scored = batch.scored
    n = int(scored.height * LOOP_LABELLED_SHARE)
    if n == 0 or scored.height - n == 0:
        return {}
    raw = predict_raw(result.pipeline, result.feature_set, batch.features)
    y, amt = scored["is_fraud"].to_numpy(), scored["amt"].to_numpy()
    new, _ = recalibrate(raw[:n], y[:n], amt[:n], result.calibration, result.decision)
    cal = new or result.calibration
    ev = evaluate(y[n:], cal.apply(raw[n:]), amt[n:], result.decision)
    keep = ("ap", "precision", "recall", "flag_rate", "fraud_rate", "ece", "cost")
    return {"loop_recalibrated": new is not None, **{f"loop_{k}": getattr(ev, k) for k in keep}}


def evaluate_protocol(
    train_frame: pl.DataFrame,
    test: pl.DataFrame | None,
    params: TrainParams,
    *,
    protocol: str = "api",
    semantics: str | None = None,
    calls: int = 30_000,
    seed: int = 0,
    payloads_path: str | Path | None = None,
    s3_client: Callable[[], Any] | None = None,
) -> dict:
    """Train for ``semantics`` (by default the protocol's own), serve the test set under the
    protocol (or the recorded payloads, from S3 through ``s3_client``), and return the figures
    the command prints."""
    semantics = semantics or PROTOCOLS[protocol]
    if payloads_path is not None:
        payloads = read_recorded(payloads_path, s3_client)
    else:
        payloads = protocol_payloads(protocol, test, calls, seed)
    result = train(train_frame, for_semantics(semantics), params)
    recorded = payloads_path is not None
    return {
        "protocol": "payloads" if recorded else protocol,
        "seed": seed,
        **measure(result, train_frame, payloads),
    }


def evaluate_files(
    train_path: str | Path, test_path: str | Path | None, params: TrainParams, **kwargs: object
) -> dict:
    """``evaluate_protocol`` on CSV files in the public layout (plain or gzip)."""
    test = read_training_csv(test_path) if test_path else None
    return evaluate_protocol(read_training_csv(train_path), test, params, **kwargs)
