"""``python -m benchmarks.model_quality``: model-quality and training-cost benchmarks.

Prints the machine it ran on, then one JSON line per measurement, then a Markdown table:

1. ``python -m fraud_assets.evaluate`` for rf and hgb on sparkov_train -> sparkov_test;
2. reference forests on the same files: RandomForestClassifier(100) on per-row columns only
   (as the original project trains) and on row columns plus simple card-history counts/sums;
3. training on ~1.3M generated rows: ``rf_model``'s training against a default unbounded
   RandomForestClassifier(100) fitted on the same training window, in the same run.

Every measurement runs in its own subprocess, so each peak memory figure is its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: The original project's per-row columns: amount, category, hour, age and location.
BASELINE_COLUMNS = (
    "amt",
    "category_code",
    "hour",
    "age_years",
    "lat",
    "long",
    "merch_lat",
    "merch_long",
)
SIMPLE_HISTORY = tuple(f"{k}_{w}" for w in ("1h", "24h", "7d") for k in ("count", "amt_sum"))
SCALE_CARDS = 1200  # ~1.3M rows from 2019-01-01 to 2020-06-21 with the generator's defaults


def machine() -> dict[str, object]:
    """Cores, CPU model, memory, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    mem_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    libs = ("scikit-learn", "polars", "numpy", "mlflow")
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "os": platform.platform(),
        **{lib: metadata.version(lib) for lib in libs},
    }


# --- parts, each run in a fresh subprocess ---------------------------------------------------


def _reference_forest(train_csv: str, test_csv: str, columns: list[str], n_jobs: int) -> dict:
    import polars as pl
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import average_precision_score, roc_auc_score

    from fraud_assets.lib.evaluation import model_mb, peak_rss_mb
    from fraud_assets.lib.features import compute_features
    from fraud_assets.lib.schema import read_training_csv

    train, test = read_training_csv(train_csv), read_training_csv(test_csv)
    both = pl.concat([train, test])
    location = both.select("lat", "long", "merch_lat", "merch_long")
    feats = compute_features(both).with_columns(location)
    matrix = feats.select(pl.col(columns).cast(pl.Float64).fill_null(0.0)).to_numpy()
    x_train, x_test = matrix[: train.height], matrix[train.height :]
    forest = RandomForestClassifier(n_estimators=100, n_jobs=n_jobs, random_state=0)
    started = time.perf_counter()
    forest.fit(x_train, train["is_fraud"].to_numpy())
    fit_s = time.perf_counter() - started
    proba = forest.predict_proba(x_test)[:, 1]
    y = test["is_fraud"].to_numpy()
    return {
        "ap": float(average_precision_score(y, proba)),
        "roc_auc": float(roc_auc_score(y, proba)),
        "fit_seconds": fit_s,
        "model_mb": model_mb(forest),
        "peak_rss_mb": peak_rss_mb(),
    }


def _scale_ours(frame_path: str, n_jobs: int) -> dict:
    import polars as pl

    from fraud_assets.lib.evaluation import model_mb, peak_rss_mb
    from fraud_assets.lib.model import default_params, train

    frame = pl.read_parquet(frame_path)
    started = time.perf_counter()
    result = train(frame, default_params("rf", n_jobs=n_jobs))
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
    from fraud_assets.lib.features import compute_features, feature_matrix
    from fraud_assets.lib.model import TrainParams, time_split

    frame = pl.read_parquet(frame_path)
    feats = compute_features(frame).with_columns(is_fraud=frame["is_fraud"])
    train_part, valid_part = time_split(feats, TrainParams().validation_fraction)
    x = feature_matrix(train_part)
    x[~(x == x)] = 0.0  # NaN -> 0; the forest takes no missing values in older scikit-learn
    forest = RandomForestClassifier(n_estimators=100, n_jobs=n_jobs, random_state=0)
    started = time.perf_counter()
    forest.fit(x, train_part["is_fraud"].to_numpy())
    fit_s = time.perf_counter() - started
    xv = feature_matrix(valid_part)
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
    "reference": lambda a: _reference_forest(a.train, a.test, a.columns.split(","), a.n_jobs),
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


def run_all(data_dir: Path, n_jobs: int, scale_cards: int, skip_scale: bool) -> None:
    """Run every model benchmark and print the figures and a Markdown summary."""
    info = machine()
    print(json.dumps({"machine": info}), flush=True)
    train_csv, test_csv = data_dir / "sparkov_train.csv.gz", data_dir / "sparkov_test.csv.gz"
    rows: list[str] = []
    if train_csv.exists() and test_csv.exists():
        for model in ("rf", "hgb"):
            figs = _run(
                [
                    "fraud_assets.evaluate",
                    *("--train", str(train_csv), "--test", str(test_csv)),
                    *("--model", model, "--n-jobs", str(n_jobs)),
                ]
            )
            _emit(f"evaluate_{model}", figs)
            rows.append(
                f"| `evaluate --model {model}` | {_fmt(figs['ap'])} | {_fmt(figs['roc_auc'])} | "
                f"{_fmt(figs['precision'], 3)} / {_fmt(figs['recall'], 3)} / "
                f"{_fmt(figs['f1'], 3)} | {_fmt(figs['threshold'], 3)} | "
                f"{figs['cost']:,.0f} (at 0.5: {figs['cost_at_0_5']:,.0f}) | "
                f"{figs['fit_seconds']:.1f} | {figs['predict_rows_per_s']:,.0f} | "
                f"{figs['model_mb']:.1f} | {figs['peak_rss_mb']:,.0f} |"
            )
        for name, cols in (
            ("baseline RF(100), per-row columns", BASELINE_COLUMNS),
            ("quick RF(100), row + simple history", (*BASELINE_COLUMNS, *SIMPLE_HISTORY)),
        ):
            figs = _run(
                [
                    "benchmarks.model_quality",
                    *("--part", "reference", "--train", str(train_csv), "--test", str(test_csv)),
                    *("--columns", ",".join(cols), "--n-jobs", str(n_jobs)),
                ]
            )
            _emit(name, figs)
            rows.append(
                f"| {name} | {_fmt(figs['ap'])} | {_fmt(figs['roc_auc'])} | | | | "
                f"{figs['fit_seconds']:.1f} | | {figs['model_mb']:.1f} | "
                f"{figs['peak_rss_mb']:,.0f} |"
            )
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
            f"| `rf_model` training (features, split, sampling, fit, threshold) | "
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
            "\n| model | AP | ROC-AUC | P / R / F1 | threshold | cost $ | fit s | "
            "predict rows/s | model MB | peak RSS MB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
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
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--test", help=argparse.SUPPRESS)
    parser.add_argument("--columns", help=argparse.SUPPRESS)
    parser.add_argument("--frame", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return 0
    run_all(args.data_dir, args.n_jobs, args.scale_cards, args.skip_scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
