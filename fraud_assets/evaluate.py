"""``python -m fraud_assets.evaluate``: train as ``rf_model`` does; measure as a feed serves."""

from __future__ import annotations

import argparse
import json
import sys

from fraud_assets.lib.evaluation import PROTOCOLS, evaluate_files
from fraud_assets.lib.model import MODEL_DEFAULTS, TrainParams, default_params
from fraud_assets.settings import load_settings

DESCRIPTION = """\
Train a model exactly as the rf_model asset does (same code, same defaults, the same time
split inside TRAIN for validation and calibration), then serve TEST the way a feed would
deliver it, through the real payload parse and the one serving path, and print one JSON
object.

Protocols (each trains for its own feed semantics unless --semantics says otherwise):
  api      the real transactions API: --calls calls drawn at random with replacement, one
           row per call, no true time, current_time 12 s apart (semantics 'arrival': card
           profiles frozen at the end of TRAIN, no clock features). This is the figure a
           user of the real API will see.
  replay   an event-time feed: every TEST row once, in time order, carrying its true event
           time (semantics 'payload': per-card history features).
--payloads PATH scores recorded raw API bodies instead of simulating them: a JSON-lines file
of {"arrived_at": ..., "body": ...} or a landing directory of the local object store.

Figures: protocol, semantics, feature_set_version, ap, roc_auc; precision, recall, f1,
flag_rate and cost at the model's decision (flag when probability x amount reaches the review
cost; threshold is that bound in dollars; cost = fraud let through + one review per flag);
fraud_rate; brier and ece (calibration); validation_ap; fit_seconds; score_rows_per_s;
model_mb; peak_rss_mb. Both files use the public fraudTrain/fraudTest layout, plain or gzip."""


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
    parser.add_argument("--test", help="later labelled test CSV (.csv or .csv.gz)")
    parser.add_argument(
        "--protocol", choices=list(PROTOCOLS), default="api", help="default: %(default)s"
    )
    parser.add_argument(
        "--semantics",
        choices=sorted(set(PROTOCOLS.values())),
        help="train for this feed semantics instead of the protocol's own",
    )
    parser.add_argument("--seed", type=int, default=0, help="api draws (default: %(default)s)")
    parser.add_argument(
        "--calls", type=int, default=30_000, help="api calls to simulate (default: %(default)s)"
    )
    parser.add_argument("--payloads", help="score recorded API bodies (JSON lines or directory)")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.test and not args.payloads:
        parser.error("give --test (to simulate the protocol) or --payloads")
    params = default_params(args.model, n_jobs=args.n_jobs, **dict(args.param))
    figures = evaluate_files(
        args.train,
        args.test,
        params,
        protocol=args.protocol,
        semantics=args.semantics,
        calls=args.calls,
        seed=args.seed,
        payloads_path=args.payloads,
        s3_client=load_settings().s3_client,
    )
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
