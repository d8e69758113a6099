"""``python -m benchmarks.inference``: the fast runtime (``lib/runtime.py``) against
scikit-learn for the served models: compile cost, parity, and model time per call.

For the forest (rf) and the boosting challenger (hgb), trained on TRAIN for arrival feeds as
``rf_model`` trains them (or read back from --models), prints one JSON object: the machine
and, per model, the graph, session and probe times; the largest |runtime - scikit-learn|
probability and the decisions that differ on the validation rows and on TEST served as
``python -m fraud_assets.evaluate --protocol api`` serves it; and the median and p99 time of
one call for 1, 8, 64 and 512 rows of ``pipeline.predict_proba`` (also with OpenMP held to one
thread: boosting's predict is OpenMP-parallel), ``lib/model.predict_raw``
(from the feature frame, so ``FeatureSet.matrix`` included; ``matrix`` alone is timed too) and
the runtime. skl2onnx's float32 conversion, when installed, is measured beside it: why it is
not the one served.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from benchmarks.harness import stop_on_sigterm
from benchmarks.machine import describe
from fraud_assets.lib.calibration import Calibration
from fraud_assets.lib.decision import DecisionRule
from fraud_assets.lib.features import FeatureSet, for_semantics
from fraud_assets.lib.model import default_params, predict_raw
from fraud_assets.lib.runtime import FastPredictor, compile_pipeline, edge_rows

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_MODELS = Path(tempfile.gettempdir()) / "bench"
BATCHES = (1, 8, 64, 512)
WARM_UP = 10


def time_calls(fn: Callable[[], object], calls: int) -> dict[str, float]:
    """Median and p99 wall time of ``fn()`` in ms over ``calls`` calls, after a warm-up."""
    for _ in range(WARM_UP):
        fn()
    ns = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        fn()
        ns.append(time.perf_counter_ns() - started)
    return summary_ns(ns)


def summary_ns(ns: list[int]) -> dict[str, float]:
    """Median and p99 of nanosecond timings, in ms."""
    q = statistics.quantiles(ns, n=100, method="inclusive")
    return {"p50_ms": round(statistics.median(ns) / 1e6, 4), "p99_ms": round(q[98] / 1e6, 4)}


def floors(pipeline: object, x_row: np.ndarray, calls: int = 200) -> dict[str, float]:
    """One row's model time: ``pipeline.predict_proba`` against the compiled runtime (median
    and p99 over ``calls`` calls each, in ms). ``x_row`` is a (1, n_features) float64 row."""
    x_row = np.asarray(x_row, dtype=np.float64).reshape(1, -1)
    runtime = compile_pipeline(pipeline, x_row.shape[1])
    sklearn = time_calls(lambda: pipeline.predict_proba(x_row), calls)
    fast = time_calls(lambda: runtime.predict_raw(x_row), calls)
    return {
        "sklearn_one_row_ms": sklearn["p50_ms"],
        "sklearn_one_row_p99_ms": sklearn["p99_ms"],
        "runtime_one_row_ms": fast["p50_ms"],
        "runtime_one_row_p99_ms": fast["p99_ms"],
        "calls": calls,
    }


def per_call(
    pipeline: object, runtime: FastPredictor, fs: FeatureSet, frame: pl.DataFrame, calls: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Time per call of each way to score ``n`` rows of a feature frame, for each batch size."""
    out = {}
    for n in BATCHES:
        rows = frame.head(n)
        x = fs.matrix(rows)
        out[str(n)] = {
            "predict_proba": time_calls(lambda x=x: pipeline.predict_proba(x), calls),
            "predict_proba_1_thread": _one_thread(lambda x=x: pipeline.predict_proba(x), calls),
            "predict_raw": time_calls(lambda r=rows: predict_raw(pipeline, fs, r), calls),
            "matrix": time_calls(lambda r=rows: fs.matrix(r), calls),
            "runtime": time_calls(lambda x=x: runtime.predict_raw(x), calls),
        }
    return out


def _one_thread(fn: Callable[[], object], calls: int) -> dict[str, float]:
    """``time_calls`` with OpenMP (boosting's predict) held to one thread."""
    with threadpool_limits(1, "openmp"):
        return time_calls(fn, calls)


def parity(
    expected: np.ndarray,
    got: np.ndarray,
    amount: np.ndarray,
    calibration: Calibration,
    rule: DecisionRule,
) -> dict[str, float]:
    """How far two raw probability vectors are apart, and the decisions that differ."""
    flags = [rule.flags(calibration.apply(p), amount) for p in (expected, got)]
    return {
        "rows": len(expected),
        "max_abs_dp": float(np.max(np.abs(got - expected), initial=0.0)),
        "bit_identical": bool(np.array_equal(got, expected)),
        "decisions_differ": int(np.sum(flags[0] != flags[1])),
        "flagged": int(flags[0].sum()),
    }


def recover_calibration(raw: np.ndarray, calibrated: np.ndarray) -> Calibration:
    """The odds factor training applied, read back from raw and calibrated probabilities (and
    checked: it must reproduce them)."""
    inside = (raw > 0) & (raw < 1) & (calibrated > 0) & (calibrated < 1)
    odds = calibrated[inside] * (1 - raw[inside]) / (raw[inside] * (1 - calibrated[inside]))
    calibration = Calibration(float(np.median(odds)))
    gap = float(np.max(np.abs(calibration.apply(raw) - calibrated)))
    if gap > 1e-12:
        raise SystemExit(f"the validation rows' calibration cannot be read back (gap {gap:.3g})")
    return calibration


def load_or_train(kind: str, models: Path, train_csv: Path) -> tuple[object, pl.DataFrame]:
    """The arrival model of ``kind`` and its validation rows, from ``models`` when there, else
    trained on ``train_csv`` (2-3 minutes) and written there."""
    from fraud_assets.lib.registry import load_model_file

    model_file = models / f"{kind}_arrival.skops"
    valid_file = models / f"{kind}_arrival_valid.parquet"
    if model_file.is_file() and valid_file.is_file():
        return load_model_file(model_file), pl.read_parquet(valid_file)
    import skops.io

    from fraud_assets.lib.model import train
    from fraud_assets.lib.schema import read_training_csv

    result = train(read_training_csv(train_csv), for_semantics("arrival"), _params(kind))
    models.mkdir(parents=True, exist_ok=True)
    skops.io.dump(result.pipeline, model_file)
    result.validation_features.write_parquet(valid_file)
    return result.pipeline, result.validation_features


def _tree_count(clf: object) -> int:
    return len(clf.estimators_) if hasattr(clf, "estimators_") else int(clf.n_iter_)


def _params(kind: str):  # noqa: ANN202 - TrainParams
    return default_params(kind, n_jobs=2) if kind == "rf" else default_params(kind)


def served_test(
    pipeline: object,
    calibration: Calibration,
    rule: DecisionRule,
    history: pl.DataFrame,
    test: pl.DataFrame,
    calls: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """TEST as the api protocol serves it: scored rows and their feature rows."""
    from fraud_assets.lib.evaluation import EVENT_TIME_FIELD, simulate_api
    from fraud_assets.lib.landing import Feed, parse_payloads
    from fraud_assets.lib.serving import FrameState, ServingModel, score_rows

    fs = for_semantics("arrival")
    rows = parse_payloads(simulate_api(test, calls, seed=0), Feed("arrival", EVENT_TIME_FIELD))
    model = ServingModel(pipeline, fs, calibration, rule)
    batch = score_rows(rows.rows, FrameState(fs.build_state(history)), model, semantics="arrival")
    return batch.scored, batch.features


def skl2onnx_float32(
    pipeline: object, x: np.ndarray, probe: np.ndarray, calls: int
) -> dict[str, object]:
    """skl2onnx's own conversion of the classifier (float32, the imputer in numpy): its cost,
    its distance from scikit-learn on ``x`` and on the probe, and one row's time."""
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    clf, impute = pipeline[-1], pipeline[:-1]
    started = time.perf_counter()
    onx = convert_sklearn(
        clf,
        initial_types=[("X", FloatTensorType([None, x.shape[1]]))],
        options={id(clf): {"zipmap": False}},
    )
    converted = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(onx.SerializeToString(), options)
    loaded = time.perf_counter()

    def proba(rows: np.ndarray) -> np.ndarray:
        z = impute.transform(rows).astype(np.float32)
        return session.run(["probabilities"], {"X": z})[0][:, 1].astype(np.float64)

    row = impute.transform(x[:1]).astype(np.float32)
    return {
        "convert_s": round(converted - started, 3),
        "session_s": round(loaded - converted, 3),
        "proba": proba,
        "probe_max_abs_dp": float(
            np.max(np.abs(proba(probe) - pipeline.predict_proba(probe)[:, 1]))
        ),
        "one_row": time_calls(lambda: session.run(["probabilities"], {"X": row}), calls),
    }


def load_times(pipeline: object, runs: int = 5) -> dict[str, float]:
    """Median seconds to load the model from a skops file (what the registry serves, with its
    trusted-type check) and from a pickle of it (the copy the model cache used to keep)."""
    import pickle

    import skops.io

    from fraud_assets.lib.registry import load_model_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        skops.io.dump(pipeline, path)
        pickled, size = pickle.dumps(pipeline), path.stat().st_size
        skops_s, pickle_s = [], []
        for _ in range(runs):
            started = time.perf_counter()
            load_model_file(path)
            skops_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            pickle.loads(pickled)  # noqa: S301 - our own bytes, for the timing
            pickle_s.append(time.perf_counter() - started)
    return {
        "skops_load_s": round(statistics.median(skops_s), 4),
        "pickle_load_s": round(statistics.median(pickle_s), 4),
        "skops_mb": round(size / 1e6, 2),
    }


def measure(
    kind: str,
    pipeline: object,
    valid: pl.DataFrame,
    test: tuple[pl.DataFrame, pl.DataFrame] | None,
    calls: int,
    test_calls: int,
) -> dict[str, object]:
    """Every figure for one model (see the module)."""
    fs = for_semantics("arrival")
    x = fs.matrix(valid)
    started = time.perf_counter()
    runtime = compile_pipeline(pipeline, x.shape[1])
    compile_s = time.perf_counter() - started
    expected = predict_raw(pipeline, fs, valid)
    calibration = recover_calibration(expected, valid["fraud_probability"].to_numpy())
    params = _params(kind)
    amount = valid["amt"].to_numpy()
    rule = DecisionRule.fit(
        params.review_cost, calibration.apply(expected), amount, params.max_flag_rate
    )
    figures: dict[str, object] = {
        "trees": _tree_count(pipeline[-1]),
        "onnx_mb": round(len(runtime.onnx_model) / 1e6, 2),
        "compile_s": round(compile_s, 3),
        **{k: round(v, 4) for k, v in runtime.timings.items()},
        "odds_factor": calibration.odds_factor,
        "min_expected_loss": rule.min_expected_loss,
        "validation": parity(expected, runtime.predict_raw(x), amount, calibration, rule),
    }
    if test is not None:
        scored, features = served_test(pipeline, calibration, rule, *test, test_calls)
        got, test_amount = runtime.predict_raw(fs.matrix(features)), scored["amt"].to_numpy()
        served_flags = scored["is_flagged"].to_numpy()
        figures["test_api"] = {
            **parity(predict_raw(pipeline, fs, features), got, test_amount, calibration, rule),
            "served_decisions_differ": int(
                np.sum(served_flags != rule.flags(calibration.apply(got), test_amount))
            ),
        }
    figures["load"] = load_times(pipeline)
    figures["per_call"] = per_call(pipeline, runtime, fs, valid, calls)
    figures["floors"] = floors(pipeline, x[:1], calls)
    if find_spec("skl2onnx"):
        probe = edge_rows(pipeline, x.shape[1], seed=1)
        other = skl2onnx_float32(pipeline, x, probe, calls)
        proba = other.pop("proba")
        other["validation"] = parity(expected, proba(x), amount, calibration, rule)
        figures["skl2onnx_float32"] = other
    return figures


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("FRAUD_BENCH_DATA", DEFAULT_DATA)),
        help="folder with sparkov_train.csv.gz and sparkov_test.csv.gz "
        "(default: $FRAUD_BENCH_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=DEFAULT_MODELS,
        help="folder of trained models: {rf,hgb}_arrival.skops and {rf,hgb}_arrival_valid"
        ".parquet (the validation rows with fraud_probability) are read when both exist, else "
        "trained on TRAIN and written there (default: %(default)s)",
    )
    parser.add_argument(
        "--kinds",
        default="rf,hgb",
        help="models to measure, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=300,
        help="timed calls per figure; median and p99 over them (default: %(default)s)",
    )
    parser.add_argument(
        "--test-calls",
        type=int,
        default=30_000,
        help="api calls simulated on TEST for the parity check (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-test", action="store_true", help="skip serving TEST (no need to read TRAIN)"
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    if args.calls < 200:
        parser.error("--calls must be at least 200")
    test = None
    if not args.skip_test:
        from fraud_assets.lib.schema import read_training_csv

        test = (
            read_training_csv(args.data_dir / "sparkov_train.csv.gz"),
            read_training_csv(args.data_dir / "sparkov_test.csv.gz"),
        )
    libs = ("scikit-learn", "numpy", "onnxruntime", "onnx", "polars")
    report: dict[str, object] = {
        "machine": {
            **describe(libs + (("skl2onnx",) if find_spec("skl2onnx") else ())),
            "loadavg_start": os.getloadavg(),
        },
    }
    for kind in args.kinds.split(","):
        pipeline, valid = load_or_train(kind, args.models, args.data_dir / "sparkov_train.csv.gz")
        report[kind] = measure(kind, pipeline, valid, test, args.calls, args.test_calls)
    report["machine"]["loadavg_end"] = os.getloadavg()
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
