"""`make run` for real: the whole local platform scores transactions with nothing done by hand."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fraud_assets.testing.servers import free_port

pytestmark = pytest.mark.e2e


def _processes_using(data_dir: Path) -> list[int]:
    marker = f"FRAUD_DATA_DIR={data_dir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _scored_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM scored_transactions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_make_run_scores_transactions_unattended_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {"--dagster-port": free_port(), "--api-port": free_port(), "--app-port": free_port()}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FRAUD_", "MLFLOW_", "TRANSACTIONS_", "DAGSTER_"))
    }
    env.update(
        FRAUD_DATA_DIR=str(tmp_path),
        FRAUD_POLL_INTERVAL_SECONDS="5",
        FRAUD_API_MIN_INTERVAL_SECONDS="0",
    )
    args = [x for kv in ports.items() for x in (kv[0], str(kv[1]))]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraud_assets.platform", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        while _scored_rows(tmp_path / "warehouse.db") == 0:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() - started < 480, "no scored row within 8 minutes"
            time.sleep(3)
        print(f"first scored row after {time.monotonic() - started:.0f} s")
        app = f"http://127.0.0.1:{ports['--app-port']}/"
        with urllib.request.urlopen(app, timeout=30) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    output = proc.stdout.read().decode()
    assert proc.returncode == 0, output[-3000:]
    assert f"http://127.0.0.1:{ports['--dagster-port']}" in output
    deadline = time.monotonic() + 10
    while _processes_using(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_using(tmp_path) == []
