"""``python -m fraud_assets.evaluate``: train as ``rf_model`` does, measure on a later test file."""

from __future__ import annotations

import argparse
import json
import sys

from fraud_assets.lib.evaluation import evaluate_files
from fraud_assets.lib.model import MODEL_DEFAULTS, TrainParams, default_params

DESCRIPTION = """\
Train a model exactly as the rf_model asset does (same code, same defaults, the same time
split inside TRAIN to choose the cost-based threshold), then score TEST in event-time order,
with per-card history from TRAIN plus the earlier TEST rows, and print one JSON object:

  ap, roc_auc                  ranking quality on TEST
  precision, recall, f1        at the threshold chosen on TRAIN's validation window
  threshold, cost              the threshold and its cost on TEST (missed fraud amounts plus
                               review cost per false alarm); cost_at_0_5 for comparison
  fit_seconds                  model fitting time
  predict_rows_per_s           model scoring throughput (features_seconds is reported apart)
  model_mb                     size of the pickled pipeline
  peak_rss_mb                  peak resident memory of the whole command

Both files use the public fraudTrain/fraudTest layout, plain or gzip."""


def _parse_override(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    names = [n for n in TrainParams.__dataclass_fields__ if n != "model"]
    if not sep or name not in names:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, NAME one of {', '.join(names)}")
    if raw in ("", "None", "null"):
        return name, None
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw  # a bare string, e.g. criterion=gini


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainParams()
    parser = argparse.ArgumentParser(
        prog="python -m fraud_assets.evaluate",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train", required=True, help="labelled training CSV (.csv or .csv.gz)")
    parser.add_argument("--test", required=True, help="later labelled test CSV (.csv or .csv.gz)")
    parser.add_argument(
        "--model",
        choices=list(MODEL_DEFAULTS),
        default=defaults.model,
        help="rf: the rf_model RandomForest; hgb: the HistGradientBoosting challenger "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=defaults.n_jobs,
        help="cores for the forest (default: %(default)s, all cores)",
    )
    parser.add_argument(
        "--param",
        action="append",
        type=_parse_override,
        default=[],
        metavar="NAME=VALUE",
        help="override one training parameter (a number, None or a string), e.g. "
        "--param n_estimators=50; repeatable. Defaults are those of the Dagster asset config.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params = default_params(args.model, n_jobs=args.n_jobs, **dict(args.param))
    figures = evaluate_files(args.train, args.test, params)
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
