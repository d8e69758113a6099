"""Processes dying mid-stream: a run worker killed mid-run and the daemon restarted, while the
stand-in streams transactions to the platform's real processes (a code server, the daemon and
its sensors, run workers). Afterwards every served transaction is loaded and scored exactly
once."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import requests
import yaml

from benchmarks.harness import seed_platform
from fraud_assets.lib.model import TrainParams
from fraud_assets.standin.app import StandinConfig, create_app
from fraud_assets.testing.servers import free_port, serve_app
from fraud_assets_tests.helpers.data import SPLIT

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _champion(root: Path, dataset) -> None:  # noqa: ANN001
    """A champion, its card state and training data, as training would leave them."""
    history = dataset.canonical.filter(pl.col("event_time") < SPLIT)
    seed_platform(root, history, params=TrainParams(n_estimators=20, n_jobs=2))


def _instance_home(root: Path) -> Path:
    """The local instance, with run monitoring polling every few seconds."""
    home = root / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((ROOT / "deploy" / "dagster.local.yaml").read_text())
    config["run_monitoring"] |= {"poll_interval_seconds": 3, "start_timeout_seconds": 60}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _run_workers(root: Path) -> list[int]:
    """Run worker processes of this platform: the code server starts each run in a process of
    its own (multiprocessing ``spawn``)."""
    marker = f"FRAUD_DATA_DIR={root}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            worker = b"spawn_main" in cmd or b"execute_run" in cmd
            if worker and marker in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _scored(db: Path) -> list[str]:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return [r[0] for r in conn.execute("SELECT trans_num FROM scored_transactions")]
    except sqlite3.OperationalError:
        return []


def test_killed_workers_and_a_restarted_daemon_lose_and_duplicate_nothing(
    tmp_path, dataset
) -> None:
    root = tmp_path
    _champion(root, dataset)
    home = _instance_home(root)
    port = free_port()
    (root / "workspace.yaml").write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": port,
                            "location_name": "fraud_assets",
                        }
                    }
                ]
            }
        )
    )
    standin = create_app(StandinConfig(data=dataset.test_csv, rows_per_call=3, seed=5))
    with serve_app(standin) as api:
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("FRAUD_", "MLFLOW_", "TRANSACTIONS_", "DAGSTER_"))
            },
            "DAGSTER_HOME": str(home),
            "FRAUD_DATA_DIR": str(root),
            "TRANSACTIONS_API_URL": api,
            "FRAUD_POLL_INTERVAL_SECONDS": "3",
            "FRAUD_API_MIN_INTERVAL_SECONDS": "0",
            "FRAUD_MONITORING_CRON": "0 0 1 1 *",
            "FRAUD_RETRAIN_CRON": "0 0 1 1 *",
        }
        py = sys.executable
        code = _start(
            [
                py,
                "-m",
                "dagster",
                "code-server",
                "start",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                "fraud_assets.definitions",
            ],
            env,
            root / "code.log",
        )
        daemon_cmd = [py, "-m", "dagster._daemon", "run", "-w", str(root / "workspace.yaml")]
        daemon = _start(daemon_cmd, env, root / "daemon.log")
        try:
            db = root / "warehouse.db"
            deadline = time.monotonic() + 180
            while not _scored(db):  # the stream is flowing
                assert time.monotonic() < deadline, (root / "daemon.log").read_text()[-3000:]
                time.sleep(2)
            killed = []
            while not killed and time.monotonic() < deadline:  # a run worker, mid-run
                for pid in _run_workers(root):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.2)
            assert killed, "no run worker was seen to kill"
            time.sleep(5)
            os.killpg(daemon.pid, signal.SIGKILL)  # the daemon dies mid-stream ...
            daemon.wait()
            time.sleep(6)
            daemon = _start(daemon_cmd, env, root / "daemon.log")  # ... and comes back
            time.sleep(15)
            requests.post(f"{api}/_control/pause", timeout=10)
            served = requests.get(f"{api}/_control/served", timeout=10).json()["trans_num"]
            expected = set(served)
            drain = time.monotonic() + 150
            while set(_scored(db)) != expected and time.monotonic() < drain:
                time.sleep(3)
        finally:
            _stop(daemon)
            _stop(code)
        scored = _scored(db)
        missing = expected - set(scored)
        assert not missing, f"{len(missing)} served rows never scored; logs in {root}"
        assert len(scored) == len(set(scored)) == len(expected)  # exactly once
        with sqlite3.connect(db) as conn:
            live = [r[0] for r in conn.execute("SELECT trans_num FROM live_transactions")]
        assert sorted(live) == sorted(expected)
    shutil.rmtree(home, ignore_errors=True)
