"""`make run` for real: the whole local platform scores transactions with nothing done by hand,
by both paths: Dagster's runs of the polled API, and the decision service the stand-in pushes
to, whose decisions Dagster imports."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from decision_api.models import Transaction
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


def _scored_rows(db: Path, where: str = "1 = 1") -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            sql = f"SELECT count(*) FROM scored_transactions WHERE {where}"
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


#: Rows the stand-in pushed, decided by the service and imported by Dagster.
PUSHED = "decided_by = 'service' AND trans_num LIKE 'push-%'"
#: A request body as a card network sends it (``curl -d @body.json .../v1/decisions``): the
#: OpenAPI document's own example, under an id of its own.
BODY = {**Transaction.model_config["json_schema_extra"]["example"], "trans_num": "curl-0001"}


def _curl_decision(url: str) -> dict | None:
    """POST the body as curl would; None while the service is not ready (503) or not up."""
    request = urllib.request.Request(
        f"{url}/v1/decisions",
        data=json.dumps(BODY).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return None
        raise
    except OSError:
        return None


def test_make_run_scores_by_both_paths_unattended_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {
        "--dagster-port": free_port(),
        "--api-port": free_port(),
        "--app-port": free_port(),
        "--decision-port": free_port(),
    }
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
    db, service = tmp_path / "warehouse.db", f"http://127.0.0.1:{ports['--decision-port']}"
    polled = pushed = answer = None
    try:
        while polled is None or pushed is None or answer is None:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            waited = time.monotonic() - started
            assert waited < 480, f"within 8 minutes: {polled=}, {pushed=}, {answer=}"
            if polled is None and _scored_rows(db, "decided_by = 'poll'"):
                polled = waited
            if pushed is None and _scored_rows(db, PUSHED):
                pushed = waited
            if answer is None:
                answer = _curl_decision(service)
            time.sleep(3)
        print(f"first polled row after {polled:.0f} s, first pushed row after {pushed:.0f} s")
        assert answer["trans_num"] == BODY["trans_num"]
        assert answer["decision"] in ("review", "approve") and answer["server_ms"] > 0
        with urllib.request.urlopen(f"{service}/docs", timeout=30) as resp:
            assert resp.status == 200
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
    assert f"{service}/v1/decisions  (docs {service}/docs)" in output
    deadline = time.monotonic() + 10
    while _processes_using(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_using(tmp_path) == []
