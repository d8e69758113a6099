"""Start and stop the platform (or any command) for the live benchmarks, seed a champion, and
stop what a benchmark started when it is sent SIGTERM."""

from __future__ import annotations

import contextlib
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


def stop_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit, once, so that a benchmark's ``finally`` blocks run and
    stop the processes it started (Python's default SIGTERM ends the process at once and
    leaves them running: each is in a session of its own). Every benchmark's ``main`` calls
    it; a second SIGTERM while stopping is ignored."""

    def _exit(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process under it (a service's workers, say), from /proc."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def stop(*procs: subprocess.Popen) -> None:
    """SIGTERM each process group, then SIGKILL what is still there after 30 s."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
    """A platform state under ``root`` as training would leave it (``fraud_assets.testing.
    seed_champion``, the one helper every benchmark seeds with): the training data, its card
    state in ``root``'s SQLite warehouse, and a champion (trained on ``fit_on``, by default
    ``history``, with ``params``) with its reference rows. Returns the champion's version."""
    from fraud_assets.testing import seed_champion

    return seed_champion(root, history, semantics=semantics, params=params, fit_on=fit_on).version


def card_sample(history, rows: int):  # noqa: ANN001, ANN201
    """A subset of ``history`` of about ``rows`` rows made of whole cards over the whole
    period (a time slice would be shorter than training's warm-up and validation)."""
    import polars as pl

    per_card = history.group_by("cc_num").len().sort("cc_num")
    keep = per_card.filter(pl.col("len").cum_sum() <= max(rows, 1))["cc_num"]
    return history.filter(pl.col("cc_num").is_in(keep.implode()))
