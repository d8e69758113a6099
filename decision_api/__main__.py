"""``python -m decision_api``: run the decision service; ``python -m decision_api token NAME``:
make a client's bearer token and its FRAUD_DECISION_CLIENTS entry."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Before polars is imported: its thread pool, sized to the cores, spends more on tiny frames
# than it saves (a batch is a few rows): one thread cut p99 at 300/s from 398 to 135 ms and
# raised the batch endpoint from 1,473 to 1,970 decisions/s (benchmarks.decision_latency
# --quick). Set POLARS_MAX_THREADS to override.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

from fraud_assets.settings import load_settings  # noqa: E402 - after the line above


def _serve_parser() -> argparse.ArgumentParser:
    s = load_settings()
    p = argparse.ArgumentParser(
        prog="python -m decision_api",
        description="Serve POST /v1/decisions (and /v1/decisions/batch, /healthz, /readyz, "
        "/metrics, /docs) with the registry's champion. Every option defaults to its "
        "environment variable (see .env.example); `python -m decision_api token NAME` makes a "
        "client token; `python -m decision_api consume --help` decides a broker's stream.",
    )
    p.add_argument(
        "--host",
        default=s.decision_host,
        help=f"bind address (FRAUD_DECISION_HOST, now {s.decision_host}); beyond "
        "loopback FRAUD_DECISION_CLIENTS is required",
    )
    p.add_argument(
        "--port",
        type=int,
        default=s.decision_port,
        help=f"port (FRAUD_DECISION_PORT, now {s.decision_port})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=s.decision_workers,
        help="worker processes sharing the port, each with its own champion and core "
        f"(FRAUD_DECISION_WORKERS, now {s.decision_workers}); a worker that dies is restarted",
    )
    p.add_argument(
        "--refresh-seconds",
        type=float,
        default=s.decision_refresh_seconds,
        help="how often the champion alias and the card state's version are read "
        f"(FRAUD_DECISION_REFRESH_SECONDS, now {s.decision_refresh_seconds})",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=s.decision_max_batch,
        help="most transactions per micro-batch and per batch request "
        f"(FRAUD_DECISION_MAX_BATCH, now {s.decision_max_batch})",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=s.decision_batch_wait_ms,
        help="how long a lone request waits for others to join its batch "
        f"(FRAUD_DECISION_BATCH_WAIT_MS, now {s.decision_batch_wait_ms})",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="uvicorn's log level (default warning)",
    )
    return p


#: Options that are settings: each is handed to the worker processes as its variable.
_OPTIONS = {
    "host": "FRAUD_DECISION_HOST",
    "port": "FRAUD_DECISION_PORT",
    "workers": "FRAUD_DECISION_WORKERS",
    "refresh_seconds": "FRAUD_DECISION_REFRESH_SECONDS",
    "max_batch": "FRAUD_DECISION_MAX_BATCH",
    "batch_wait_ms": "FRAUD_DECISION_BATCH_WAIT_MS",
}


def serve(argv: list[str]) -> int:
    from decision_api.auth import Clients, ClientsError, InsecureStartup
    from decision_api.auth import require_clients_off_loopback as require_clients

    args = _serve_parser().parse_args(argv)
    for option, variable in _OPTIONS.items():
        os.environ[variable] = str(getattr(args, option))
    settings = load_settings()
    try:
        require_clients(
            Clients.parse(settings.decision_clients, settings.decision_disabled_clients), args.host
        )
    except (InsecureStartup, ClientsError) as exc:
        print(f"decision_api: {exc}", file=sys.stderr)
        return 2
    own_metrics = None
    if args.workers > 1:  # every worker answers /metrics for all (decision_api/metrics.py)
        from decision_api.metrics import MULTIPROCESS, shared_directory

        if MULTIPROCESS not in os.environ:
            own_metrics = os.environ[MULTIPROCESS] = tempfile.mkdtemp(prefix="fraud-metrics-")
        shared_directory(Path(os.environ[MULTIPROCESS]))
    try:
        _run(args)
    finally:
        if own_metrics:
            shutil.rmtree(own_metrics, ignore_errors=True)
    return 0


def _run(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(
        "decision_api.app:from_environment",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,  # no proxy is trusted: the client is the peer
    )


def token(argv: list[str]) -> int:
    from decision_api.auth import ClientsError, new_client

    p = argparse.ArgumentParser(
        prog="python -m decision_api token",
        description="Print a new bearer token for a client (give it to the client, once) and "
        "its FRAUD_DECISION_CLIENTS entry (the token's SHA-256: safe to store).",
    )
    p.add_argument("name", help="the client's name: 1-64 letters, digits, '.', '_' or '-'")
    args = p.parse_args(argv)
    try:
        secret, entry = new_client(args.name)
    except ClientsError as exc:
        print(f"decision_api: {exc}", file=sys.stderr)
        return 2
    print(f"token: {secret}\nentry: {entry}")
    return 0


def consume(argv: list[str]) -> int:
    import asyncio
    import logging

    from decision_api.consumer import serve_stream

    s = load_settings()
    p = argparse.ArgumentParser(
        prog="python -m decision_api consume",
        description="Decide the transactions of a broker's topic as one worker of a consumer "
        "group, through the same path as POST /v1/decisions, publishing each decision and "
        "recording it in the decision log. Every option defaults to its environment variable.",
    )
    p.add_argument(
        "--url",
        default=s.stream_url,
        help="the broker: nats://, redis://, amqp:// or kafka:// (FRAUD_STREAM_URL)",
    )
    p.add_argument(
        "--group",
        default=s.stream_group,
        help=f"the consumer group (FRAUD_STREAM_GROUP, now {s.stream_group})",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=s.stream_batch,
        help=f"most messages in flight (FRAUD_STREAM_BATCH, now {s.stream_batch})",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=s.stream_metrics_port,
        help=f"Prometheus metrics at this port (FRAUD_STREAM_METRICS_PORT, now "
        f"{s.stream_metrics_port}), on FRAUD_STREAM_METRICS_HOST (now {s.stream_metrics_host})",
    )
    args = p.parse_args(argv)
    if not args.url:
        print("decision_api consume: set FRAUD_STREAM_URL or --url", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = s.model_copy(
        update={
            "stream_url": args.url,
            "stream_group": args.group,
            "stream_batch": args.batch,
            "stream_metrics_port": args.metrics_port,
        }
    )
    asyncio.run(serve_stream(settings))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        return token(argv[1:])
    if argv[:1] == ["consume"]:
        return consume(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
