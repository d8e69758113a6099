"""Real servers on loopback for tests and benchmarks: uvicorn apps in threads, PostgreSQL,
moto's S3, MLflow; and waiting for a server process to answer."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

PG_HELP = (
    "These tests need PostgreSQL. Set FRAUD_TEST_DATABASE_URL=postgresql://user@host:port/db, "
    "run one on 127.0.0.1:5432 (user postgres, trust auth, database 'test'), or install the "
    "server binaries (Debian: apt-get install postgresql) so a throwaway cluster can be started."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(app, port: int | None = None) -> Iterator[str]:  # noqa: ANN001
    """Run an ASGI app with uvicorn in a thread; yield its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def reachable(url: str, seconds: float = 2.0) -> bool:
    """Whether ``url``'s host and port accept a TCP connection (a broker, say)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    with (
        contextlib.suppress(OSError, ValueError),
        socket.create_connection((parsed.hostname, parsed.port), seconds),
    ):
        return True
    return False


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether ``GET url`` answers 200 now."""
    import requests

    with contextlib.suppress(requests.RequestException):
        return requests.get(url, timeout=timeout).status_code == 200
    return False


def wait_answering(
    url: str, proc: subprocess.Popen, log: Path, seconds: float = 120, what: str = "the service"
) -> None:
    """Wait until ``GET url`` answers 200; RuntimeError with the log's tail if ``proc`` exits
    first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not answers(url):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} never answered: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)


def _can_connect(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for path in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(path)
    return None


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A reachable PostgreSQL: FRAUD_TEST_DATABASE_URL, the local one, or a throwaway cluster."""
    for url in (
        os.environ.get("FRAUD_TEST_DATABASE_URL"),
        "postgresql://postgres@127.0.0.1:5432/test",
    ):
        if url and _can_connect(url):
            yield url
            return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(PG_HELP)
    root = Path(tempfile.mkdtemp(prefix="fraud-pg-"))
    as_pg: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    subprocess.run(
        [*as_pg, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_pg,
            pg_ctl,
            "-D",
            str(data),
            "-w",
            "-l",
            str(root / "log"),
            "-o",
            f"-p {port} -k {root} -c fsync=off -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_pg, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """moto's S3 server on loopback (a real HTTP S3 API) with ``bucket`` created."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    import uuid

    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def mlflow_server(
    backend_url: str, artifacts: str, env: dict[str, str], port: int | None = None
) -> Iterator[str]:
    """A real ``mlflow server`` started by deploy/mlflow-server.sh; stopped by process group."""
    import signal
    import urllib.request

    port = port or free_port()
    root = Path(__file__).resolve().parents[2]  # the repository: deploy/ is beside the package
    script = root / "deploy" / "mlflow-server.sh"
    bin_dir = str(Path(os.sys.executable).parent)
    proc_env = {
        **os.environ,
        **env,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "MLFLOW_BACKEND_STORE_URI": backend_url.replace(
            "postgresql://", "postgresql+psycopg2://", 1
        ),
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
    }
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the server writes to it while it runs
        prefix="mlflow-server-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        ["bash", str(script)],
        env=proc_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not start: {Path(log.name).read_text()[-2000:]}"
                    ) from None
                time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class RestartableMoto:
    """moto's S3 server on a fixed loopback port that can be stopped and started again; its
    objects live in this process, so they survive a restart (as a real store's would)."""

    def __init__(self, bucket: str) -> None:
        import boto3

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.start()
        boto3.client("s3", endpoint_url=self.url, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


class RestartableMlflow:
    """``deploy/mlflow-server.sh`` on a fixed loopback port, to stop and start mid-test."""

    def __init__(self, backend_url: str, artifacts: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = (backend_url, artifacts, env)
        self._ctx = None

    def start(self) -> None:
        self._ctx = mlflow_server(*self.args, port=self.port)
        self._ctx.__enter__()

    def stop(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
