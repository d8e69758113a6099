"""``python -m benchmarks.stream_throughput``: the stream path (``python -m decision_api
consume``) on each broker running here, with 1 and 2 workers of one consumer group.

Set-up, once: a throwaway PostgreSQL schema (dropped at the end), a champion seeded with
``fraud_assets.testing.seed_champion`` (the forest's production hyperparameters, arrival
feeds; fitted on ``--train-rows`` of sparkov_train, the card state from all of it), and
sparkov_test's rows as ``POST /v1/decisions`` bodies, each run's with ids of its own.

Each run (one broker, one worker count; fresh topics and a fresh group), in this order:

1. **burst**: ``--burst`` transactions published as fast as the broker takes them (batches of
   1,000), then waited for until all are in the decision log. ``max_rate`` is decisions a
   second from the first publish to the last decision logged; ``p50_ms`` and ``p99_ms`` are
   each transaction's time from its publication to its decision's log commit, backlog
   included.
2. **steady**: ``--rate`` a second for ``--seconds`` (a batch every 20 ms); ``p99_ms_at_500``
   is the same latency over this phase (the name's 500 is the default rate).
3. **kill**: the same rate for ``--kill-seconds``; after a third of it one worker is
   SIGKILLed and a replacement started at once (as a Deployment or compose restarts it),
   while publishing goes on. The group's lag is read from the broker every 0.25 s:
   ``drain_s_after_kill`` is the seconds from the kill until the lag is back within the
   largest lag seen before the kill (the killed worker's unacknowledged batch comes back after
   the ack wait, at once on RabbitMQ; with one worker, the backlog of its restart is decided
   too). ``logged_s_after_kill`` (in the details) is until every transaction published before
   the kill is in the log.

``lost`` and ``duplicated`` are counted against the decision log and ``scored_transactions``
(filled from the log by ``lib/live_scoring.import_decisions``, what Dagster's import run
calls): lost = published but missing from either; duplicated = a trans_num that either holds
more than once. ``output_repeats`` counts decisions published to the output topic more than once
(a redelivery after a kill publishes the first decision again, ``repeated: true``: that topic is
at least once, by design). The CPU of the workers,
of PostgreSQL and of the broker's server over each phase says where the bottleneck is (100 =
one core). The floor is the burst's publish rate alone (nothing consumes while it runs).

Prints progress, then one JSON line of details, and last one JSON line: machine, runs.
``--quick`` runs it all in a few minutes (small phases): a check that it works, not the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from benchmarks.decision_latency import (
    DEFAULT_DATA,
    DEFAULT_URL,
    seed,
    service_env,
    throwaway_schema,
    write_bodies,
)
from benchmarks.harness import start, stop, stop_on_sigterm
from benchmarks.machine import describe
from fraud_assets.lib.streams import Stream, Topics, open_stream
from fraud_assets.testing.servers import free_port, reachable, wait_answering

BROKERS = {
    "nats": "nats://127.0.0.1:4222",
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
}
#: The broker's server process, for its CPU.
SERVERS = {"nats": "nats-server", "redis": "redis-server", "rabbitmq": "beam.smp"}
ACK_WAIT_SECONDS = 5.0
PUBLISH_BATCH = 1000


# --- CPU --------------------------------------------------------------------------------------
def _ticks(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    return 0


def _pids(name: str) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip().startswith(name[:15]):
                    out.append(int(proc.name))
    return out


class CpuWatch:
    """CPU percent (100 = one core) of named process groups between ``start`` and ``stop``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.hz = os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._before = {g: sum(map(_ticks, pids)) for g, pids in self.groups.items()}

    def stop(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self._t0, 1e-9)
        return {
            g: round(100 * (sum(map(_ticks, pids)) - self._before[g]) / self.hz / seconds, 1)
            for g, pids in self.groups.items()
        }


# --- the log ----------------------------------------------------------------------------------
@dataclass
class Log:
    """The decision log and ``scored_transactions`` of the benchmark's schema."""

    url: str
    schema: str

    def _one(self, sql: str, params: tuple = ()) -> tuple:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            return conn.execute(sql, params).fetchone()

    def logged(self, prefix: str, below: str | None = None) -> int:
        sql = "SELECT count(*) FROM decision_log WHERE trans_num LIKE %s"
        if below is None:
            return int(self._one(sql, (prefix + "%",))[0])
        return int(self._one(sql + " AND trans_num < %s", (prefix + "%", below))[0])

    def latencies(self, prefix: str, published: dict[str, float]) -> list[float]:
        """Each logged transaction's ms from its publication to its log commit."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            rows = conn.execute(
                "SELECT trans_num, extract(epoch from logged_at) FROM decision_log "
                "WHERE trans_num LIKE %s",
                (prefix + "%",),
            ).fetchall()
        return [(float(at) - published[t]) * 1000 for t, at in rows if t in published]

    def counted(self, prefix: str, table: str) -> tuple[int, int]:
        """(rows, distinct trans_nums) of ``prefix`` in ``table``."""
        sql = f"SELECT count(*), count(DISTINCT trans_num) FROM {table} WHERE trans_num LIKE %s"
        rows, distinct = self._one(sql, (prefix + "%",))
        return int(rows), int(distinct)


def import_to_scored(url: str, schema: str, root: Path) -> int:
    """The decision log into ``scored_transactions``, as Dagster's import run does it."""
    from fraud_assets.lib.live_scoring import import_decisions
    from fraud_assets.lib.storage import LocalObjectStore
    from fraud_assets.lib.warehouse import Warehouse

    wh = Warehouse(url, schema=schema)
    query = "SELECT DISTINCT batch_hour FROM {t:decision_log}"
    hours = wh.query(query, {"batch_hour": pl.String})["batch_hour"].to_list()
    return import_decisions(wh, LocalObjectStore(root / "objects"), hours)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ranked = sorted(values)
    return round(ranked[min(int(q * len(ranked)), len(ranked) - 1)], 1)


# --- one run ----------------------------------------------------------------------------------
@dataclass
class Run:
    """One broker, one worker count (see the module)."""

    broker: str
    workers: int
    args: argparse.Namespace
    env: dict[str, str]
    log: Log
    bodies: list[dict]
    root: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    published: dict[str, float] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return Topics(f"bench-tx-{self.tag}", f"bench-dec-{self.tag}", f"bench-dead-{self.tag}")

    @property
    def prefix(self) -> str:
        return f"s{self.tag}-"

    def worker_env(self) -> dict[str, str]:
        t = self.topics
        return self.env | {
            "FRAUD_STREAM_URL": BROKERS[self.broker],
            "FRAUD_STREAM_INPUT": t.input,
            "FRAUD_STREAM_OUTPUT": t.output,
            "FRAUD_STREAM_DEAD_LETTERS": t.dead_letters,
            "FRAUD_STREAM_GROUP": f"bench-{self.tag}",
            "FRAUD_STREAM_ACK_WAIT_SECONDS": str(ACK_WAIT_SECONDS),
            "FRAUD_STREAM_BATCH": str(self.args.batch),
            "FRAUD_STREAM_METRICS_PORT": str(free_port()),
        }

    def start_worker(self) -> subprocess.Popen:
        env = self.worker_env()
        log = self.root / f"worker-{self.tag}-{len(self.procs)}.log"
        proc = start([sys.executable, "-m", "decision_api", "consume"], env, log)
        url = f"http://127.0.0.1:{env['FRAUD_STREAM_METRICS_PORT']}/metrics"
        wait_answering(url, proc, log, 120, what="a worker")
        self.procs.append(proc)
        return proc

    def ids(self, phase: str, n: int) -> list[tuple[str, bytes]]:
        """``n`` messages of ``phase``: ids ``s<tag>-<phase>-<seq>`` sorting in publish order."""
        out = []
        for i in range(n):
            body = self.bodies[(len(self.published) + i) % len(self.bodies)]
            trans_num = f"{self.prefix}{phase}-{i:08d}"
            out.append((trans_num, orjson.dumps(body | {"trans_num": trans_num})))
        return out

    async def publish(self, stream: Stream, messages: list[tuple[str, bytes]]) -> None:
        sent_at = time.time()
        await stream.publish(self.topics.input, [body for _, body in messages])
        self.published.update((t, sent_at) for t, _ in messages)

    async def at_rate(self, stream: Stream, phase: str, seconds: float, on_kill=None) -> None:  # noqa: ANN001
        """Publish ``--rate`` a second for ``seconds``; after a third of it call
        ``on_kill(next id, published so far)``, which must return at once."""
        todo = self.ids(phase, int(self.args.rate * seconds))
        started, sent, killed = time.monotonic(), 0, False
        while sent < len(todo):
            elapsed = time.monotonic() - started
            if on_kill is not None and not killed and elapsed >= seconds / 3:
                killed = True
                on_kill(todo[sent][0], sent)
            due = min(int(elapsed * self.args.rate), len(todo))
            if due > sent:
                await self.publish(stream, todo[sent:due])
                sent = due
            await asyncio.sleep(0.02)

    def wait_logged(
        self, prefix: str, count: int, seconds: float, below: str | None = None
    ) -> float:
        """Wait until ``count`` of ``prefix`` are logged; the monotonic time they were."""
        deadline = time.monotonic() + seconds
        while self.log.logged(prefix, below) < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return time.monotonic()


async def _phases(run: Run, cpu: CpuWatch) -> dict:
    stream = open_stream(BROKERS[run.broker], run.topics, f"bench-{run.tag}", "publisher")
    await stream.start(consume=False)
    out: dict = {}
    try:
        out["burst"] = await _burst(run, stream, cpu)
        cpu.start()
        await run.at_rate(stream, "b", run.args.seconds)
        steady_end = run.wait_logged(f"{run.prefix}b-", int(run.args.rate * run.args.seconds), 120)
        out["steady"] = {
            "cpu_percent": cpu.stop(),
            "settled_s": round(time.monotonic() - steady_end, 1),
        }
        out["kill"] = await _kill(run, stream)
        out["output_published"] = await stream.count(run.topics.output)
        out["dead_letters"] = await stream.count(run.topics.dead_letters)
    finally:
        await stream.close()
    return out


async def _burst(run: Run, stream: Stream, cpu: CpuWatch) -> dict:
    todo = run.ids("a", run.args.burst)
    cpu.start()
    started = time.monotonic()
    for i in range(0, len(todo), PUBLISH_BATCH):
        await run.publish(stream, todo[i : i + PUBLISH_BATCH])
    published_s = time.monotonic() - started
    done = run.wait_logged(f"{run.prefix}a-", len(todo), 600)
    return {
        "publish_rate": round(len(todo) / published_s),
        "seconds": round(done - started, 1),
        "max_rate": round(run.log.logged(f"{run.prefix}a-") / (done - started)),
        "cpu_percent": cpu.stop(),
    }


async def _kill(run: Run, stream: Stream) -> dict:
    """SIGKILL a worker mid-phase, start its replacement beside (publishing goes on); sample
    the group's lag from the broker meanwhile (see ``drain``), and time how long until
    everything published before the kill is in the log."""
    prefix, marks, threads, lags = f"{run.prefix}c-", {}, [], []

    def watch(below: str, before: int) -> None:
        marks["logged"] = run.wait_logged(prefix, before, 120, below=below)

    def kill(next_id: str, before: int) -> None:
        victim = run.procs.pop(0)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        marks["killed"], marks["before"] = time.monotonic(), before
        threads.extend(
            threading.Thread(target=target, args=args, daemon=True)
            for target, args in ((run.start_worker, ()), (watch, (next_id, before)))
        )  # the restart a Deployment or compose does, and the watch
        for thread in threads:
            thread.start()

    sampler = asyncio.create_task(_sample_lag(stream, lags))
    await run.at_rate(stream, "c", run.args.kill_seconds, on_kill=kill)
    for thread in threads:
        await asyncio.to_thread(thread.join, 150)
    run.wait_logged(prefix, int(run.args.rate * run.args.kill_seconds), 120)
    deadline = time.monotonic() + 60  # publishing is over: the lag can only fall now
    while drain(lags, marks["killed"])["drain_s_after_kill"] == float("inf"):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    sampler.cancel()
    return {
        **drain(lags, marks["killed"]),
        "logged_s_after_kill": round(marks["logged"] - marks["killed"], 1),
        "published_before_kill": marks["before"],
    }


async def _sample_lag(stream: Stream, into: list[tuple[float, int]], every: float = 0.25) -> None:
    while True:
        with contextlib.suppress(Exception):  # a sample missed is no figure lost
            into.append((time.monotonic(), await stream.lag()))
        await asyncio.sleep(every)


def drain(lags: list[tuple[float, int]], killed: float) -> dict[str, float | int]:
    """``drain_s_after_kill``: seconds from the kill until the group's lag is back within the
    largest lag of the steady state before it, having risen above it (0 when the kill never
    raised the lag above that); ``lag_peak_after_kill`` and that bound, for the record."""
    bound = max((lag for t, lag in lags if t < killed), default=0)
    after = [(t, lag) for t, lag in lags if t >= killed]
    peak = max((lag for _, lag in after), default=0)
    rose = next((i for i, (_, lag) in enumerate(after) if lag > bound), None)
    seconds = 0.0
    if rose is not None:
        back = next((t for t, lag in after[rose:] if lag <= bound), None)
        seconds = (back - killed) if back is not None else float("inf")
    return {
        "drain_s_after_kill": round(seconds, 1),
        "lag_peak_after_kill": peak,
        "steady_lag_bound": bound,
    }


def run_one(run: Run, server: str) -> dict:
    """Start the workers, run the phases, count; stop the workers whatever happens."""
    try:
        for _ in range(run.workers):
            run.start_worker()
        groups = {
            "workers": [p.pid for p in run.procs],
            "postgres": _pids("postgres"),
            "broker": _pids(server),
        }
        phases = asyncio.run(_phases(run, CpuWatch(groups)))
    finally:
        stop(*run.procs)
    return phases


def count(run: Run, phases: dict, url: str, schema: str) -> dict:
    """The run's summary row, counted against the log and scored_transactions."""
    import_to_scored(url, schema, run.root)
    published = set(run.published)
    log_rows, log_distinct = run.log.counted(run.prefix, "decision_log")
    scored_rows, scored_distinct = run.log.counted(run.prefix, "scored_transactions")
    burst, steady = _latencies(run, "a"), _latencies(run, "b")
    return {
        "broker": run.broker,
        "workers": run.workers,
        "published": len(published),
        "decided": log_distinct,
        "lost": len(published) - min(log_distinct, scored_distinct),
        "duplicated": (log_rows - log_distinct) + (scored_rows - scored_distinct),
        "max_rate": phases["burst"]["max_rate"],
        "p50_ms": quantile(burst, 0.5),
        "p99_ms": quantile(burst, 0.99),
        "p99_ms_at_500": quantile(steady, 0.99),
        "drain_s_after_kill": phases["kill"]["drain_s_after_kill"],
        # decisions published again (``repeated: true``) for redelivered messages: the
        # decisions topic is at least once; its readers key on trans_num
        "output_repeats": phases["output_published"] - len(published),
    }


def _latencies(run: Run, phase: str) -> list[float]:
    prefix = f"{run.prefix}{phase}-"
    return run.log.latencies(
        prefix, {t: at for t, at in run.published.items() if t.startswith(prefix)}
    )


# --- main -------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.stream_throughput", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA,
        help="where sparkov_train.csv.gz and sparkov_test.csv.gz are",
    )
    p.add_argument(
        "--database-url",
        default=DEFAULT_URL,
        help="PostgreSQL for the throwaway schema (default: %(default)s)",
    )
    p.add_argument(
        "--brokers",
        default=",".join(BROKERS),
        help="comma-separated, of " + ", ".join(BROKERS) + " (default: all)",
    )
    p.add_argument("--workers", default="1,2", help="worker counts (default: %(default)s)")
    p.add_argument(
        "--burst",
        type=int,
        default=100_000,
        help="transactions published as fast as possible (default: %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="the steady phase's transactions a second (default: %(default)s)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="the steady phase's length (default: %(default)s)",
    )
    p.add_argument(
        "--kill-seconds",
        type=float,
        default=30.0,
        help="the kill phase's length (default: %(default)s)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=200,
        help="FRAUD_STREAM_BATCH of the workers (default: %(default)s)",
    )
    p.add_argument(
        "--train-rows",
        type=int,
        default=200_000,
        help="sparkov_train rows (whole cards) the champion is fitted on; 0: all "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="5,000 burst, 10 s steady, 9 s kill, 20,000 training rows",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.burst, args.seconds, args.kill_seconds, args.train_rows = 5_000, 10.0, 9.0, 20_000
    return args


@contextlib.contextmanager
def seeded_platform(args: argparse.Namespace) -> Iterator[tuple[Path, str, dict[str, str], list]]:
    with (
        tempfile.TemporaryDirectory(prefix="fraud-stream-") as tmp,
        throwaway_schema(args.database_url) as schema,
    ):
        root = Path(tmp)
        seeded = seed(root, args.data_dir, args.database_url, schema, args.train_rows)
        lines = root / "bodies.jsonl"
        write_bodies(args.data_dir, lines)
        bodies = [orjson.loads(line) for line in lines.read_bytes().splitlines()]
        env = service_env(root, seeded, args.database_url, schema)
        yield root, schema, env, bodies


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    stop_on_sigterm()
    libs = ("nats-py", "redis", "aio-pika", "psycopg", "scikit-learn", "onnxruntime")
    machine: dict[str, object] = {**describe(libs), "loadavg_start": os.getloadavg()}
    brokers = [b for b in args.brokers.split(",") if b]
    skipped = {b: "not reachable" for b in brokers if not reachable(BROKERS[b])}
    runs, details = [], []
    with seeded_platform(args) as (root, schema, env, bodies):
        log = Log(args.database_url, schema)
        for broker in (b for b in brokers if b not in skipped):
            for workers in (int(w) for w in args.workers.split(",")):
                run = Run(broker, workers, args, env, log, bodies, root)
                print(f"{broker}, {workers} worker(s): topic {run.topics.input}", flush=True)
                phases = run_one(run, SERVERS[broker])
                row = count(run, phases, args.database_url, schema)
                print(json.dumps(row), flush=True)
                runs.append(row)
                details.append({"broker": broker, "workers": workers, **phases})
    machine["loadavg_end"] = os.getloadavg()
    options = {k: str(v) for k, v in vars(args).items()}
    print(json.dumps({"details": details, "skipped": skipped, "options": options}), flush=True)
    summary = {"machine": machine, "runs": runs}
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
