"""``python -m fraud_assets.platform`` (what ``make run`` calls): the whole local platform.

It makes the local demo data once, then starts the transactions API stand-in, ``dagster dev``
(webserver and daemon) and the Gradio app, each in its own process group, prints their URLs,
and stops them all on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from fraud_assets.lib.generator import GeneratorConfig, generate_transactions, write_csv
from fraud_assets.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SPLIT = dt.datetime(2020, 6, 21)


def ensure_demo_data(source_dir: Path, n_cards: int = 300, seed: int = 42) -> tuple[Path, Path]:
    """fraudTrain.csv / fraudTest.csv from our generator, split at 2020-06-21 like the public
    files; made once and reused."""
    train, test = source_dir / "fraudTrain.csv", source_dir / "fraudTest.csv"
    if train.exists() and test.exists():
        return train, test
    source_dir.mkdir(parents=True, exist_ok=True)
    import polars as pl

    frame = generate_transactions(
        GeneratorConfig(
            n_cards=n_cards, start=dt.date(2020, 1, 1), end=dt.date(2020, 12, 31), seed=seed
        )
    )
    when = pl.col("trans_date_trans_time").str.to_datetime("%Y-%m-%d %H:%M:%S")
    for path, part in ((train, frame.filter(when < SPLIT)), (test, frame.filter(when >= SPLIT))):
        write_csv(part.drop("").with_row_index("").with_columns(pl.col("").cast(pl.Int64)), path)
    return train, test


def wait_http(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


MARKER = "FRAUD_PLATFORM_ID"


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries ``FRAUD_PLATFORM_ID=<marker>`` (Linux /proc)."""
    needle = f"{MARKER}={marker}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


class Supervisor:
    """Children in their own process groups, stopped together.

    Every child's environment carries a marker, so that processes they spawn in sessions of
    their own (Dagster run workers, for one) are found and stopped too.
    """

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.marker = uuid.uuid4().hex

    def start(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        fh = open(log, "ab")  # noqa: SIM115 - stays open for the child's lifetime
        proc = subprocess.Popen(
            cmd,
            env={**env, MARKER: self.marker},
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append((name, proc))

    def stop(self) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 25
        for _, proc in self.children:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._sweep()

    def _sweep(self) -> None:
        """Stop what outlived its parent: SIGTERM, a grace period, then SIGKILL."""
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
            left = _marked(self.marker)
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while left and time.monotonic() < deadline:
                time.sleep(0.2)
                left = _marked(self.marker)
            if not left:
                return

    def dead(self) -> list[str]:
        return [name for name, proc in self.children if proc.poll() is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[1])
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--api-port", type=int, default=8765)
    parser.add_argument("--app-port", type=int, default=7860)
    parser.add_argument("--no-app", action="store_true", help="do not start the Gradio app")
    parser.add_argument(
        "--standin-args",
        default="",
        help='extra options for the API stand-in, e.g. "--rows-per-call 5 --rate 20" '
        "(see python -m fraud_assets.standin --help)",
    )
    args = parser.parse_args(argv)

    config = load_settings()  # also puts .env into this environment, for every child
    data = config.data_dir
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    train, test = ensure_demo_data(data / "source")
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / "dagster.local.yaml", home / "dagster.yaml")

    api = f"http://127.0.0.1:{args.api_port}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FRAUD_DATA_DIR": str(data),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
    }
    standin = config.uses_local_standin
    if standin:
        env["TRANSACTIONS_API_URL"] = api
    env.setdefault("FRAUD_TRAINING_DATA_URL", f"{api}/files/{train.name}")
    py = sys.executable
    sup = Supervisor()
    stop = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sup.start(
            "api",
            [
                py,
                "-m",
                "fraud_assets.standin",
                "--data",
                str(test),
                "--files-dir",
                str(train.parent),
                "--port",
                str(args.api_port),
                *shlex.split(args.standin_args),
            ],
            env,
            logs / "standin.log",
        )
        sup.start(
            "dagster",
            [py, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(args.dagster_port)],
            env,
            logs / "dagster.log",
        )
        if not args.no_app:
            sup.start(
                "app",
                [py, "-m", "app_gradio"],
                {**env, "GRADIO_SERVER_PORT": str(args.app_port)},
                logs / "app.log",
            )
        wait_http(f"{api}/health", 30)
        app_url = "(off)" if args.no_app else f"http://127.0.0.1:{args.app_port}"
        warehouse = "FRAUD_DATABASE_URL" if config.database_url_raw else config.database_url
        feed = (
            f"{api}/current-transactions  (local stand-in)"
            if standin
            else f"{config.transactions_api_url}/current-transactions"
        )
        print(
            f"""
  Fraud platform is starting (logs in {logs}):
    Dagster UI         http://127.0.0.1:{args.dagster_port}
    Transactions API   {feed}
    Feed semantics     {config.feed_semantics}
    Fraud dashboard    {app_url}
    Warehouse          {warehouse}
  The first model trains by itself; scored transactions follow within a few minutes.
  Press Ctrl-C to stop.
""",
            flush=True,
        )
        while not stop["now"]:
            dead = sup.dead()
            if dead:
                print(f"stopped unexpectedly: {', '.join(dead)}; see {logs}", file=sys.stderr)
                return 1
            time.sleep(1)
        return 0
    finally:
        print("stopping…", flush=True)
        sup.stop()


if __name__ == "__main__":
    sys.exit(main())
