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
