"""``python -m fraud_assets.evaluate`` on small generated CSVs: one JSON object, sane figures."""

import gzip
import json
import shutil
import subprocess
import sys

import pytest

from fraud_assets.evaluate import build_parser

KEYS = {
    "ap",
    "roc_auc",
    "precision",
    "recall",
    "f1",
    "threshold",
    "cost",
    "fit_seconds",
    "predict_rows_per_s",
    "model_mb",
    "peak_rss_mb",
}


@pytest.mark.parametrize(
    ("model", "params"), [("rf", ["n_estimators=20"]), ("hgb", ["max_iter=40"])]
)
def test_evaluate_prints_one_json_object_with_sane_figures(
    dataset, tmp_path, model: str, params: list[str]
) -> None:
    test_gz = tmp_path / "test.csv.gz"
    with dataset.test_csv.open("rb") as src, gzip.open(test_gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    argv = ["--train", str(dataset.train_csv), "--test", str(test_gz), "--model", model]
    argv += ["--n-jobs", "2", *(a for p in params for a in ("--param", p))]
    out = subprocess.run(
        [sys.executable, "-m", "fraud_assets.evaluate", *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    (line,) = out.strip().splitlines()
    figures = json.loads(line)
    assert set(figures) >= KEYS
    assert figures["model"] == model
    assert 0.5 < figures["ap"] <= 1 and 0.9 < figures["roc_auc"] <= 1
    assert 0 < figures["threshold"] <= 1
    assert 0 <= figures["precision"] <= 1 and 0 < figures["recall"] <= 1
    assert figures["cost"] >= 0 and figures["cost_at_0_5"] >= 0
    assert figures["fit_seconds"] > 0 and figures["predict_rows_per_s"] > 1000
    assert 0 < figures["model_mb"] < 50 and 50 < figures["peak_rss_mb"] < 4000
    test_rows = dataset.test_csv.read_text().count("\n") - 1
    assert figures["test_rows"] == test_rows


def test_evaluate_refuses_unknown_parameters() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--train", "a", "--test", "b", "--param", "depth=3"])
