"""Start and stop the platform (or any command) for the live benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``cmd`` in its own process group, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(*procs: subprocess.Popen) -> None:
    """SIGTERM each process group, then SIGKILL what is still there after 30 s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def start_platform(
    root: Path, api_port: int, dagster_port: int, standin_args: str, poll_seconds: int = 5
) -> subprocess.Popen:
    """`make run` without the app, state in ``root``, the stand-in on ``api_port``."""
    env = {
        **os.environ,
        "FRAUD_DATA_DIR": str(root),
        "FRAUD_POLL_INTERVAL_SECONDS": str(poll_seconds),
        "FRAUD_API_MIN_INTERVAL_SECONDS": "0",
    }
    cmd = [
        sys.executable,
        "-m",
        "fraud_assets.platform",
        "--no-app",
        "--api-port",
        str(api_port),
        "--dagster-port",
        str(dagster_port),
        "--standin-args",
        standin_args,
    ]
    return start(cmd, env, root / "platform.log")


def seed_platform(root: Path, history, fit_on=None, semantics: str = "arrival", params=None) -> str:  # noqa: ANN001, E501
    """A platform state under ``root`` as training would leave it: the training data, its card
    state, and a champion (trained on ``fit_on``, by default ``history``, with ``params``) with
    its reference rows. Returns the champion's version."""
    from fraud_assets.lib import registry
    from fraud_assets.lib.card_state import write_state
    from fraud_assets.lib.features import for_semantics
    from fraud_assets.lib.model import TrainParams, train
    from fraud_assets.lib.storage import LocalObjectStore
    from fraud_assets.lib.warehouse import Warehouse

    fs = for_semantics(semantics)
    store = LocalObjectStore(root / "objects")
    store.put_parquet("assets/raw_training_data.parquet", history)
    write_state(Warehouse(f"sqlite:///{root / 'warehouse.db'}"), fs, fs.build_state(history))
    result = train(history if fit_on is None else fit_on, fs, params or TrainParams(n_jobs=2))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    reg = registry.log_and_register(
        result,
        tracking_uri=uri,
        experiment="fraud-detection",
        model_name="fraud_rf",
        artifact_location=(root / "mlartifacts").as_uri(),
    )
    registry.promote(uri, "fraud_rf", reg.version, "benchmark set-up", "start")
    valid = result.validation_features
    store.put_parquet(
        f"references/fraud_rf/v{reg.version}.parquet",
        valid.sample(n=min(valid.height, 20_000), seed=0),
    )
    return reg.version


def card_sample(history, rows: int):  # noqa: ANN001, ANN201
    """A subset of ``history`` of about ``rows`` rows made of whole cards over the whole
    period (a time slice would be shorter than training's warm-up and validation)."""
    import polars as pl

    per_card = history.group_by("cc_num").len().sort("cc_num")
    keep = per_card.filter(pl.col("len").cum_sum() <= max(rows, 1))["cc_num"]
    return history.filter(pl.col("cc_num").is_in(keep.implode()))
