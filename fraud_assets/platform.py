"""``python -m fraud_assets.platform`` (what ``make run`` calls): the whole local platform.

It makes the local demo data once, then starts the transactions API stand-in, the decision
service (``python -m decision_api``, on loopback), ``dagster dev`` (webserver and daemon) and
the Gradio app, each in its own process group, has the stand-in push transactions to the
decision service at a modest rate, prints their URLs, and stops them all on Ctrl-C or SIGTERM.
With FRAUD_STREAM_URL set it also starts the stream path: one worker of ``python -m
decision_api consume``, and the stand-in publishing to the broker's input topic.
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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fraud_assets.lib.generator import GeneratorConfig, generate_transactions, write_csv
from fraud_assets.settings import Settings, load_settings

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


def _parser(config: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[1])
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--api-port", type=int, default=8765)
    parser.add_argument("--app-port", type=int, default=7860)
    parser.add_argument(
        "--decision-port",
        type=int,
        default=config.decision_port,
        help="the decision service's port, on loopback (FRAUD_DECISION_PORT, now %(default)s)",
    )
    parser.add_argument(
        "--push-rate",
        type=float,
        default=config.standin_push_rate,
        help="decisions a second the stand-in pushes to the decision service "
        "(FRAUD_STANDIN_PUSH_RATE, now %(default)s; 0: none)",
    )
    parser.add_argument(
        "--publish-rate",
        type=float,
        default=config.standin_publish_rate,
        help="with FRAUD_STREAM_URL set: transactions a second the stand-in publishes to the "
        "stream's input topic, for the stream worker (FRAUD_STANDIN_PUBLISH_RATE, now "
        "%(default)s; 0: none)",
    )
    parser.add_argument("--no-app", action="store_true", help="do not start the Gradio app")
    parser.add_argument(
        "--standin-args",
        default="",
        help='extra options for the API stand-in, e.g. "--rows-per-call 5 --rate 20" '
        "(see python -m fraud_assets.standin --help)",
    )
    return parser


@dataclass(frozen=True)
class Layout:
    """Where the platform's state, logs and demo files are, and what its processes get."""

    logs: Path
    train: Path
    test: Path
    env: dict[str, str]
    api: str  # the stand-in's base URL
    decisions: str  # the decision service's base URL


def prepare(config: Settings, args: argparse.Namespace) -> Layout:
    """The demo data (made once), Dagster's home, and the environment every child gets."""
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
    if config.uses_local_standin:
        env["TRANSACTIONS_API_URL"] = api
    env.setdefault("FRAUD_TRAINING_DATA_URL", f"{api}/files/{train.name}")
    decisions = f"http://127.0.0.1:{args.decision_port}"
    return Layout(logs, train, test, env, api, decisions)


def pushes(config: Settings, args: argparse.Namespace) -> bool:
    """Whether the stand-in pushes: at a rate above 0, and only when the feed is the local
    stand-in (its demo rows have no place beside a real feed's)."""
    return args.push_rate > 0 and config.uses_local_standin


def streams(config: Settings) -> bool:
    """Whether the stream path runs: a worker of ``python -m decision_api consume`` whenever
    FRAUD_STREAM_URL names a broker (unset: none)."""
    return config.stream_url is not None


def publishes(config: Settings, args: argparse.Namespace) -> bool:
    """Whether the stand-in publishes to the broker: the stream path runs, the rate is above
    0, and the feed is the local stand-in."""
    return streams(config) and args.publish_rate > 0 and config.uses_local_standin


def standin_command(config: Settings, args: argparse.Namespace, lay: Layout) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "fraud_assets.standin",
        "--data",
        str(lay.test),
        "--files-dir",
        str(lay.train.parent),
        "--port",
        str(args.api_port),
    ]
    if pushes(config, args):
        cmd += ["--push-url", lay.decisions, "--push-rate", f"{args.push_rate:g}"]
    if publishes(config, args):  # the URL reaches it in FRAUD_STREAM_URL, not on the line
        cmd += ["--publish", "--publish-topic", config.stream_input]
        cmd += ["--publish-rate", f"{args.publish_rate:g}"]
    return [*cmd, *shlex.split(args.standin_args)]


def start_all(sup: Supervisor, config: Settings, args: argparse.Namespace, lay: Layout) -> None:
    """The stand-in, the decision service, ``dagster dev`` and (unless ``--no-app``) the app."""
    py = sys.executable
    sup.start("api", standin_command(config, args, lay), lay.env, lay.logs / "standin.log")
    sup.start(
        "decisions",
        [py, "-m", "decision_api", "--host", "127.0.0.1", "--port", str(args.decision_port)],
        lay.env,
        lay.logs / "decision_api.log",
    )
    if streams(config):
        sup.start("stream", [py, "-m", "decision_api", "consume"], lay.env, lay.logs / "stream.log")
    sup.start(
        "dagster",
        [py, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(args.dagster_port)],
        lay.env,
        lay.logs / "dagster.log",
    )
    if not args.no_app:
        sup.start(
            "app",
            [py, "-m", "app_gradio"],
            {**lay.env, "GRADIO_SERVER_PORT": str(args.app_port)},
            lay.logs / "app.log",
        )


def banner(config: Settings, args: argparse.Namespace, lay: Layout) -> str:
    """What is where: every URL, the feed, the warehouse, and what happens next."""
    app_url = "(off)" if args.no_app else f"http://127.0.0.1:{args.app_port}"
    warehouse = "FRAUD_DATABASE_URL" if config.database_url_raw else config.database_url
    feed = (
        f"{lay.api}/current-transactions  (local stand-in)"
        if config.uses_local_standin
        else f"{config.transactions_api_url}/current-transactions"
    )
    if pushes(config, args):
        pushed = f"{args.push_rate:g} a second from the stand-in"
    else:
        why = "rate 0" if args.push_rate <= 0 else "the feed is not the local stand-in"
        pushed = f"off ({why})"
    return f"""
  Fraud platform is starting (logs in {lay.logs}):
    Dagster UI         http://127.0.0.1:{args.dagster_port}
    Transactions API   {feed}
    Feed semantics     {config.feed_semantics}
    Decision service   {lay.decisions}/v1/decisions  (docs {lay.decisions}/docs)
    Pushed decisions   {pushed}
    Stream path        {stream_line(config, args)}
    Fraud dashboard    {app_url}
    Warehouse          {warehouse}
  The first model trains by itself; scored transactions follow within a few minutes, and the
  decision service answers once that model is champion.
  Press Ctrl-C to stop.
"""


def stream_line(config: Settings, args: argparse.Namespace) -> str:
    """The banner's stream line: the broker (no password), the topic, what publishes to it,
    and where the worker's metrics are."""
    if not streams(config):
        return "off (set FRAUD_STREAM_URL, e.g. nats://127.0.0.1:4222, to start it)"
    parsed = urlparse(config.stream_url)
    broker = f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    if publishes(config, args):
        source = f"{args.publish_rate:g} a second from the stand-in"
    else:
        source = "your publishers"
    metrics = f"http://{config.stream_metrics_host}:{config.stream_metrics_port}/metrics"
    return f"{broker} topic {config.stream_input} ({source}), 1 worker, metrics {metrics}"


def supervise(sup: Supervisor, stop: dict[str, bool], logs: Path) -> int:
    """Wait for a signal (0) or a child that stopped by itself (1)."""
    while not stop["now"]:
        dead = sup.dead()
        if dead:
            print(f"stopped unexpectedly: {', '.join(dead)}; see {logs}", file=sys.stderr)
            return 1
        time.sleep(1)
    return 0


def main(argv: list[str] | None = None) -> int:
    config = load_settings()  # also puts .env into this environment, for every child
    args = _parser(config).parse_args(argv)
    lay = prepare(config, args)
    sup = Supervisor()
    stop = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        start_all(sup, config, args, lay)
        wait_http(f"{lay.api}/health", 30)
        print(banner(config, args, lay), flush=True)
        return supervise(sup, stop, lay.logs)
    finally:
        print("stopping…", flush=True)
        sup.stop()


if __name__ == "__main__":
    sys.exit(main())
