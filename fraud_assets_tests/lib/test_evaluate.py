"""``python -m fraud_assets.evaluate`` on small generated CSVs: one JSON object per protocol."""

import gzip
import json
import shutil
import subprocess
import sys

import pytest

from fraud_assets.evaluate import build_parser
from fraud_assets.lib.evaluation import simulate_api

KEYS = {
    "protocol",
    "semantics",
    "feature_set_version",
    "ap",
    "roc_auc",
    "precision",
    "recall",
    "f1",
    "threshold",
    "cost",
    "flag_rate",
    "fraud_rate",
    "brier",
    "ece",
    "fit_seconds",
    "score_rows_per_s",
    "model_mb",
    "peak_rss_mb",
}


def _run(argv: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "fraud_assets.evaluate", *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    (line,) = out.strip().splitlines()
    return json.loads(line)


@pytest.mark.integration  # trains and serves through `python -m fraud_assets.evaluate`
@pytest.mark.parametrize(
    ("protocol", "model", "params"),
    [("api", "rf", ["n_estimators=20"]), ("replay", "hgb", ["max_iter=40"])],
)
def test_evaluate_prints_one_json_object_with_sane_figures(
    dataset, tmp_path, protocol: str, model: str, params: list[str]
) -> None:
    test_gz = tmp_path / "test.csv.gz"
    with dataset.test_csv.open("rb") as src, gzip.open(test_gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    argv = ["--train", str(dataset.train_csv), "--test", str(test_gz), "--model", model]
    argv += ["--protocol", protocol, "--calls", "3000", "--n-jobs", "2"]
    figures = _run([*argv, *(a for p in params for a in ("--param", p))])
    assert set(figures) >= KEYS
    assert figures["model"] == model and figures["protocol"] == protocol
    assert figures["semantics"] == {"api": "arrival", "replay": "payload"}[protocol]
    assert 0.3 < figures["ap"] <= 1 and 0.8 < figures["roc_auc"] <= 1
    assert figures["threshold"] == 5.0  # the review cost, in dollars
    assert 0 < figures["flag_rate"] < 0.2 and 0 < figures["fraud_rate"] < 0.1
    assert 0 <= figures["precision"] <= 1 and 0 < figures["recall"] <= 1
    assert 0 <= figures["ece"] < 0.05 and figures["cost"] >= 0
    assert 0 < figures["model_mb"] < 50 and 50 < figures["peak_rss_mb"] < 4000
    test_rows = dataset.test_csv.read_text().count("\n") - 1
    if protocol == "replay":
        assert figures["rows"] == figures["calls"] == test_rows  # every row once
    else:
        assert figures["calls"] == 3000 and figures["rows"] < 3000  # draws repeat rows


@pytest.mark.integration
def test_evaluate_scores_recorded_payloads(dataset, tmp_path) -> None:
    from fraud_assets.lib.landing import arrived_at_of_key, parse_payloads
    from fraud_assets.lib.schema import read_training_csv

    payloads = simulate_api(read_training_csv(dataset.test_csv), 400, seed=1)
    recorded = tmp_path / "feed.jsonl"
    with recorded.open("w") as fh:
        for key, body in payloads:
            arrived = arrived_at_of_key(key).isoformat()
            fh.write(json.dumps({"arrived_at": arrived, "body": body.decode()}) + "\n")
    figures = _run(
        [
            "--train",
            str(dataset.train_csv),
            "--payloads",
            str(recorded),
            "--param",
            "n_estimators=10",
        ]
    )
    assert figures["protocol"] == "payloads" and figures["calls"] == 400
    assert figures["rows"] == parse_payloads(payloads).rows.height  # repeats counted once


def test_evaluate_refuses_unknown_parameters() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--train", "a", "--test", "b", "--param", "depth=3"])
