"""``python -m benchmarks.model_quality``: model quality under each feed's contract, and
training cost.

Prints the machine it ran on, then one JSON line per measurement, then a Markdown table:

1. ``--protocol api`` (the real API: random rows, no true time; models for ``arrival`` feeds)
   for rf and hgb, over several seeds of API draws (mean and range), each model trained once;
2. ``--protocol replay`` (an event-time feed; models for ``payload`` feeds) for rf and hgb;
3. the contrast the platform exists to avoid: the event-time model served on the real API's
   contract (``--protocol api --semantics payload``);
4. training on ~1.3M generated rows: ``rf_model``'s training against a default unbounded
   RandomForestClassifier(100) fitted on the same training window, in the same run.

Every measurement runs in its own subprocess, so each peak memory figure is its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import stop_on_sigterm
from benchmarks.machine import describe

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCALE_CARDS = 1200  # ~1.3M rows from 2019-01-01 to 2020-06-21 with the generator's defaults


def machine() -> dict[str, object]:
    """The machine, with the model libraries' versions."""
    return describe(("scikit-learn", "polars", "numpy", "mlflow"))


# --- parts, each run in a fresh subprocess ---------------------------------------------------


def _protocol(
    train_csv: str,
    test_csv: str,
    protocol: str,
    semantics: str | None,
    model: str,
    seeds: list[int],
    n_jobs: int,
) -> dict:
    """Train once, then measure the protocol for each seed of API draws."""
    from fraud_assets.lib.evaluation import PROTOCOLS, measure, protocol_payloads
    from fraud_assets.lib.features import for_semantics
    from fraud_assets.lib.model import default_params, train
    from fraud_assets.lib.schema import read_training_csv

    history, test = read_training_csv(train_csv), read_training_csv(test_csv)
    fs = for_semantics(semantics or PROTOCOLS[protocol])
    result = train(history, fs, default_params(model, n_jobs=n_jobs))
    # An event-time model on the API can only take current_time as its event time: what the
    # platform did before it knew the feed's semantics.
    field = "current_time" if (protocol, fs.semantics) == ("api", "payload") else "event_time"
    runs = [
        {
            "seed": seed,
            **measure(result, history, protocol_payloads(protocol, test, 30_000, seed), field),
        }
        for seed in (seeds if protocol == "api" else seeds[:1])
    ]
    return {"protocol": protocol, "runs": runs}


def _scale_ours(frame_path: str, n_jobs: int) -> dict:
    import polars as pl

    from fraud_assets.lib.evaluation import model_mb, peak_rss_mb
    from fraud_assets.lib.features import for_semantics
    from fraud_assets.lib.model import default_params, train

    frame = pl.read_parquet(frame_path)
    started = time.perf_counter()
    result = train(frame, for_semantics("arrival"), default_params("rf", n_jobs=n_jobs))
    total_s = time.perf_counter() - started
    return {
        "rows": frame.height,
        "train_rows": result.train_rows,
        "fit_rows": result.fit_rows,
        "fit_seconds": result.fit_seconds,
        "train_seconds": total_s,  # features, split, sampling, fit, threshold and metrics
        "validation_ap": result.validation.ap,
        "model_mb": model_mb(result.pipeline),
        "peak_rss_mb": peak_rss_mb(),
    }


def _scale_unbounded(frame_path: str, n_jobs: int) -> dict:
    import polars as pl
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import average_precision_score

    from fraud_assets.lib.evaluation import model_mb, peak_rss_mb
    from fraud_assets.lib.features import for_semantics
    from fraud_assets.lib.model import TrainParams, split_features

    frame = pl.read_parquet(frame_path)
    fs = for_semantics("arrival")
    train_part, valid_part = split_features(frame, fs, TrainParams())
    x = fs.matrix(train_part)
    x[~(x == x)] = 0.0  # NaN -> 0
    forest = RandomForestClassifier(n_estimators=100, n_jobs=n_jobs, random_state=0)
    started = time.perf_counter()
    forest.fit(x, train_part["is_fraud"].to_numpy())
    fit_s = time.perf_counter() - started
    xv = fs.matrix(valid_part)
    xv[~(xv == xv)] = 0.0
    proba = forest.predict_proba(xv)[:, 1]
    return {
        "train_rows": train_part.height,
        "fit_seconds": fit_s,
        "validation_ap": float(average_precision_score(valid_part["is_fraud"], proba)),
        "model_mb": model_mb(forest),
        "peak_rss_mb": peak_rss_mb(),
    }


PARTS = {
    "protocol": lambda a: _protocol(
        a.train,
        a.test,
        a.protocol,
        a.semantics,
        a.model,
        [int(x) for x in a.seeds.split(",")],
        a.n_jobs,
    ),
    "scale-ours": lambda a: _scale_ours(a.frame, a.n_jobs),
    "scale-unbounded": lambda a: _scale_unbounded(a.frame, a.n_jobs),
}


def _run(args: list[str]) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON output."""
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _emit(name: str, figures: dict) -> None:
    print(json.dumps({"benchmark": name, **figures}), flush=True)


def _fmt(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


#: (label, protocol, semantics, model): what the quality table holds, in order.
QUALITY_RUNS = (
    ("rf, api (arrival)", "api", None, "rf"),
    ("hgb, api (arrival)", "api", None, "hgb"),
    ("rf, replay (payload)", "replay", None, "rf"),
    ("hgb, replay (payload)", "replay", None, "hgb"),
    ("rf trained on event times, served on the api", "api", "payload", "rf"),
)
QUALITY_KEYS = (
    "ap",
    "roc_auc",
    "precision",
    "recall",
    "flag_rate",
    "fraud_rate",
    "ece",
    "loop_precision",
    "loop_recall",
    "loop_flag_rate",
    "loop_fraud_rate",
)


def _summary(runs: list[dict]) -> dict[str, tuple[float, float, float]]:
    """Mean, min and max of each figure over runs."""
    out = {}
    for key in (*QUALITY_KEYS, "flag_x_fraud", "loop_flag_x_fraud"):
        if key == "flag_x_fraud":
            values = [r["flag_rate"] / max(r["fraud_rate"], 1e-12) for r in runs]
        elif key == "loop_flag_x_fraud":
            values = [
                r.get("loop_flag_rate", 0) / max(r.get("loop_fraud_rate", 0), 1e-12) for r in runs
            ]
        else:
            values = [r.get(key, float("nan")) for r in runs]
        out[key] = (sum(values) / len(values), min(values), max(values))
    return out


def _cell(stat: tuple[float, float, float], digits: int = 3) -> str:
    mean, low, high = stat
    if low == high:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def _quality(train_csv: Path, test_csv: Path, seeds: str, n_jobs: int) -> list[str]:
    rows = []
    for label, protocol, semantics, model in QUALITY_RUNS:
        args = [
            "benchmarks.model_quality",
            "--part",
            "protocol",
            "--train",
            str(train_csv),
            "--test",
            str(test_csv),
            "--protocol",
            protocol,
            "--model",
            model,
            "--seeds",
            seeds,
            "--n-jobs",
            str(n_jobs),
        ]
        if semantics:
            args += ["--semantics", semantics]
        figs = _run(args)
        for run in figs["runs"]:
            _emit(label, run)
        stat = _summary(figs["runs"])
        first = figs["runs"][0]
        rows.append(
            f"| {label} | {len(figs['runs'])} | {_cell(stat['ap'])} | {_cell(stat['roc_auc'])} | "
            f"{_cell(stat['flag_rate'], 4)} ({_cell(stat['flag_x_fraud'], 2)}x) | "
            f"{_cell(stat['precision'])} | {_cell(stat['recall'])} | {_cell(stat['ece'], 4)} | "
            f"{_cell(stat['loop_precision'])} / {_cell(stat['loop_flag_x_fraud'], 2)}x | "
            f"{first['validation_ap']:.3f} | {first['fit_seconds']:.0f} |"
        )
    return rows


def run_all(
    data_dir: Path,
    n_jobs: int,
    scale_cards: int,
    skip_scale: bool,
    seeds: str,
    skip_quality: bool = False,
) -> None:
    """Run every model benchmark and print the figures and a Markdown summary."""
    info = machine()
    print(json.dumps({"machine": info}), flush=True)
    train_csv, test_csv = data_dir / "sparkov_train.csv.gz", data_dir / "sparkov_test.csv.gz"
    rows: list[str] = []
    if skip_quality:
        print("quality benchmarks skipped (--skip-quality)", flush=True)
    elif train_csv.exists() and test_csv.exists():
        rows = _quality(train_csv, test_csv, seeds, n_jobs)
    else:
        print(f"no sparkov files in {data_dir}: skipping the quality benchmarks", flush=True)
    scale_rows: list[str] = []
    if not skip_scale:
        from fraud_assets.lib.generator import GeneratorConfig, generate_transactions
        from fraud_assets.lib.schema import training_csv_to_canonical

        config = GeneratorConfig(
            n_cards=scale_cards, start=dt.date(2019, 1, 1), end=dt.date(2020, 6, 21), seed=5
        )
        with tempfile.TemporaryDirectory() as tmp:
            frame_path = Path(tmp) / "scale.parquet"
            training_csv_to_canonical(generate_transactions(config)).write_parquet(frame_path)
            common = ["--frame", str(frame_path), "--n-jobs", str(n_jobs)]
            ours = _run(["benchmarks.model_quality", "--part", "scale-ours", *common])
            _emit("scale rf_model training", ours)
            unbounded = _run(["benchmarks.model_quality", "--part", "scale-unbounded", *common])
            _emit("scale unbounded RF(100)", unbounded)
        ratio = ours["train_seconds"] / unbounded["fit_seconds"]
        _emit("scale ratio", {"rf_model_train_over_unbounded_fit": ratio})
        scale_rows = [
            f"| `rf_model` training (features, split, sampling, fit, calibration) | "
            f"{ours['rows']:,} ({ours['fit_rows']:,} fitted) | {ours['train_seconds']:.1f} "
            f"(fit {ours['fit_seconds']:.1f}) | {ours['model_mb']:.1f} | "
            f"{ours['peak_rss_mb']:,.0f} | {_fmt(ours['validation_ap'])} |",
            f"| default unbounded RandomForestClassifier(100), fit only | "
            f"{unbounded['train_rows']:,} | {unbounded['fit_seconds']:.1f} | "
            f"{unbounded['model_mb']:.1f} | {unbounded['peak_rss_mb']:,.0f} | "
            f"{_fmt(unbounded['validation_ap'])} |",
            f"| ratio | | **{ratio:.2f}** | | | |",
        ]
    print("\n## Model quality (Markdown)\n")
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    if rows:
        print(
            "\n| model, protocol | seeds | AP | ROC-AUC | flag rate (x fraud rate) | precision "
            "| recall | ECE | with the loop: precision / flag x | validation AP | fit s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    if scale_rows:
        print(
            "\n| training on generated rows | rows | seconds | model MB | peak RSS MB | "
            "validation AP |"
        )
        print("|---|---|---|---|---|---|")
        print("\n".join(scale_rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.model_quality",
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
    parser.add_argument("--n-jobs", type=int, default=2, help="cores (default: %(default)s)")
    parser.add_argument(
        "--scale-cards",
        type=int,
        default=SCALE_CARDS,
        help="cards generated for the training-cost benchmark (default: %(default)s, ~1.3M rows)",
    )
    parser.add_argument("--skip-scale", action="store_true", help="skip the 1.3M-row benchmark")
    parser.add_argument(
        "--skip-quality", action="store_true", help="run only the 1.3M-row training benchmark"
    )
    parser.add_argument(
        "--seeds",
        default="0,1,2",
        help="seeds of API draws, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--test", help=argparse.SUPPRESS)
    parser.add_argument("--protocol", help=argparse.SUPPRESS)
    parser.add_argument("--semantics", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="rf", help=argparse.SUPPRESS)
    parser.add_argument("--frame", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stop_on_sigterm()
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return 0
    run_all(
        args.data_dir,
        args.n_jobs,
        args.scale_cards,
        args.skip_scale,
        args.seeds,
        args.skip_quality,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
