"""``python -m benchmarks.openloop``: the decision benchmark's load generator, in a process of
its own (``benchmarks.decision_latency`` runs it once per phase).

Open loop (``--rate``): request i is due at ``start + i / rate`` whatever the answers so far,
and its latency is measured from that due time, not from when it could be sent, so a stalled
server is charged for every request that waited behind it (no coordinated omission). A request
goes out on an idle keep-alive connection, or a new one (up to ``--max-connections``), or, past
that, waits in the generator, its clock running. Closed loop (``--concurrency N``): N
connections each send the next request as soon as the previous one is answered (the batch
endpoint's throughput).

Every request is encoded before the clock starts, each with a transaction id of its own, and
the generator is raw asyncio protocols on uvloop with httptools's C parser (no HTTP client
library), so its own cost is tens of microseconds per request; it reports that cost (its CPU
time over the timed window), and how late it sent each request against its due time.

Prints one JSON object: counts, achieved rate, latency quantiles, the service's own
``server_ms`` quantiles (read from each answer), the generator's and the watched process's CPU
and the whole machine's, over the timed window; ``--answered FILE`` gets the ``trans_num`` of
every transaction answered with a 2xx, one a line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import time
from array import array
from collections import deque
from pathlib import Path

import httptools
import orjson
import uvloop

SERVER_MS = re.compile(rb'"server_ms":([0-9.eE+-]+)')
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat", "rb") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of a sorted list (``q`` in [0, 1])."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of seconds, in ms."""
    s = sorted(values)
    out = {f"p{int(q * 100)}_ms": quantile(s, q) * 1000 for q in (0.5, 0.95, 0.99)}
    out["max_ms"] = (s[-1] if s else math.nan) * 1000
    return {k: round(v, 3) for k, v in out.items()}


class Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, gen: Generator) -> None:
        self.gen, self.job, self.closed = gen, -1, False
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, job: int) -> None:
        self.job = job
        self.gen.sent[job] = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.gen.requests[job])

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.gen.fail(self.job, "bad_response")
            self.job = -1
            self.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        job, self.job = self.job, -1
        body = b"".join(self.body)
        self.body.clear()
        keep = self.parser.should_keep_alive()
        self.gen.answer(job, self.parser.get_status_code(), body)
        if keep:
            self.gen.free(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.job >= 0:
            self.gen.fail(self.job, "connection_lost")
            self.job = -1
        self.gen.lost()


class Generator:
    """The requests, the connections and what happened to each request."""

    def __init__(
        self,
        host: str,
        ports: list[int],
        requests: list[bytes],
        max_connections: int,
        parse_ms: bool,
    ) -> None:
        self.host, self.ports, self.requests = host, ports, requests
        self.opened = 0  # connections ever opened: the next goes to ports[opened % len(ports)]
        self.max_connections, self.parse_ms = max_connections, parse_ms
        n = len(requests)
        self.due = array("d", bytes(8 * n))
        self.sent = array("d", bytes(8 * n))
        self.done_at = array("d", bytes(8 * n))
        self.status = array("i", bytes(4 * n))
        self.server_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.idle: deque[Conn] = deque()
        self.pending: deque[int] = deque()
        self.connections = 0  # open or opening
        self.peak_connections = 0
        self.outstanding = 0
        self.on_answer = None  # closed loop: called after each answer
        self.finished = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    async def open(self, count: int) -> None:
        """Open ``count`` connections before the clock starts."""
        await asyncio.gather(*(self._connect() for _ in range(count)))

    async def _connect(self) -> None:
        self.connections += 1
        self.peak_connections = max(self.peak_connections, self.connections)
        port = self.ports[self.opened % len(self.ports)]
        self.opened += 1
        try:
            _, conn = await self.loop.create_connection(lambda: Conn(self), self.host, port)
        except OSError:
            self.connections -= 1
            self.errors["connect"] = self.errors.get("connect", 0) + 1
            if self.pending and not self.idle:
                await asyncio.sleep(0.01)
                self.loop.create_task(self._connect())
            return
        self.free(conn)

    def dispatch(self, job: int) -> None:
        self.outstanding += 1
        while self.idle:
            conn = self.idle.popleft()
            if not conn.closed:
                conn.send(job)
                return
        self.pending.append(job)
        if self.connections < self.max_connections:
            self.loop.create_task(self._connect())

    def free(self, conn: Conn) -> None:
        if conn.closed:
            return
        if self.pending:
            conn.send(self.pending.popleft())
        else:
            self.idle.append(conn)

    def lost(self) -> None:
        self.connections -= 1
        if self.pending and self.connections < self.max_connections:
            self.loop.create_task(self._connect())

    def answer(self, job: int, status: int, body: bytes) -> None:
        if job < 0:
            return
        self.done_at[job] = time.perf_counter()
        self.status[job] = status
        if 200 <= status < 300:
            if self.parse_ms:
                self.server_ms.extend(float(m) for m in SERVER_MS.findall(body))
        else:
            key = str(status)
            self.errors[key] = self.errors.get(key, 0) + 1
        self._settle()

    def fail(self, job: int, why: str) -> None:
        if job < 0:
            return
        self.status[job] = -1
        self.errors[why] = self.errors.get(why, 0) + 1
        self._settle()

    def _settle(self) -> None:
        self.outstanding -= 1
        if self.on_answer is not None:
            self.on_answer()
        if self.outstanding == 0:
            self.finished.set()


async def open_loop(gen: Generator, rate: float) -> float:
    """Send every request at its due time; return the start."""
    n = len(gen.requests)
    start = time.perf_counter() + 0.02
    i = 0
    while i < n:
        now = time.perf_counter()
        while i < n and start + i / rate <= now:
            gen.due[i] = start + i / rate
            gen.dispatch(i)
            i += 1
        if i < n:
            # uvloop's timers count whole milliseconds: a shorter sleep would be no sleep at
            # all, and the loop would spin a core waiting for the next due time
            await asyncio.sleep(max(0.001, start + i / rate - time.perf_counter()))
    return start


async def closed_loop(gen: Generator, concurrency: int, seconds: float) -> float:
    """``concurrency`` requests in flight, each followed by the next at once, for ``seconds``
    (or until the requests run out); return the start."""
    n, nxt = len(gen.requests), 0
    start = time.perf_counter()
    end = start + seconds

    def next_one() -> None:
        nonlocal nxt
        if nxt < n and time.perf_counter() < end:
            gen.due[nxt] = time.perf_counter()
            gen.dispatch(nxt)
            nxt += 1

    gen.on_answer = next_one
    for _ in range(concurrency):
        next_one()
    return start


def build_requests(
    args: argparse.Namespace, rows: list[dict], count: int
) -> tuple[list[bytes], list[list[str]]]:
    """``count`` encoded HTTP requests, each with ``args.batch_size`` transactions of their own
    id (``PREFIX<cycle>-<the row's id>``), and the ids of each request."""
    head = (
        f"POST {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    requests, ids = [], []
    k = 0
    for _ in range(count):
        txs = []
        for _ in range(args.batch_size or 1):
            row = rows[k % len(rows)]
            txs.append(row | {"trans_num": f"{args.prefix}{k // len(rows)}-{row['trans_num']}"})
            k += 1
        body = orjson.dumps({"transactions": txs} if args.batch_size else txs[0])
        requests.append(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        ids.append([t["trans_num"] for t in txs])
    return requests, ids


async def run(args: argparse.Namespace) -> dict[str, object]:
    rows = [orjson.loads(line) for line in args.bodies.read_bytes().splitlines() if line]
    per_request = args.batch_size or 1
    if args.rate:
        count = max(1, round(args.rate * args.seconds))
    else:
        count = args.count or math.ceil(args.seconds * 10_000 / per_request)
    requests, ids = build_requests(args, rows, count)
    ports = [int(p) for p in args.port.split(",")]
    gen = Generator(args.host, ports, requests, args.max_connections, not args.no_server_ms)
    await gen.open(args.concurrency or args.connections)
    watched = [int(p) for p in args.watch_pid.split(",") if p]
    cpu0, own0, busy0 = (
        sum(process_cpu_seconds(pid) for pid in watched),
        sum(os.times()[:2]),
        machine_cpu(),
    )
    wall0 = time.perf_counter()
    if args.rate:
        start = await open_loop(gen, args.rate)
        sent_until = time.perf_counter()
    else:
        start = await closed_loop(gen, args.concurrency, args.seconds)
    gen.finished.clear()
    if gen.outstanding:
        timeout = args.timeout + (0 if args.rate else args.seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gen.finished.wait(), timeout)
    wall1 = time.perf_counter()
    cpu1, own1, busy1 = (
        sum(process_cpu_seconds(pid) for pid in watched),
        sum(os.times()[:2]),
        machine_cpu(),
    )
    issued = [i for i in range(count) if gen.due[i] > 0]
    for i in issued:  # neither answered nor failed: timed out
        if gen.status[i] == 0:
            gen.errors["timeout"] = gen.errors.get("timeout", 0) + 1
    ok = [i for i in issued if 200 <= gen.status[i] < 300]
    latency = [gen.done_at[i] - gen.due[i] for i in ok]
    last = max((gen.done_at[i] for i in ok), default=wall1)
    # open loop: the scheduled span, or longer when the answers came late
    window = max(count / args.rate, last - start) if args.rate else max(last - start, 1e-9)
    wall = wall1 - wall0
    busy, total = busy1[0] - busy0[0], busy1[1] - busy0[1]
    lag = [gen.sent[i] - gen.due[i] for i in issued if gen.sent[i] > 0]
    result: dict[str, object] = {
        "path": args.path,
        "mode": "open" if args.rate else "closed",
        "target": args.rate or None,
        "concurrency": args.concurrency or None,
        "batch_size": per_request,
        "requests": len(issued),
        "ok": len(ok),
        "errors": sum(gen.errors.values()),
        "error_kinds": gen.errors,
        "achieved": round(len(ok) / window, 1),
        "decisions_per_s": round(len(ok) * per_request / window, 1),
        **summary_ms(latency),
        "server_ms": summary_ms([ms / 1000 for ms in gen.server_ms]) if gen.server_ms else None,
        "send_lag_ms": summary_ms(lag),
        "connections": gen.peak_connections,
        "wall_s": round(wall, 2),
        "generator_cpu_percent": round(100 * (own1 - own0) / wall, 1),
        "watched_cpu_percent": round(100 * (cpu1 - cpu0) / wall, 1) if watched else None,
        "machine_busy_percent": round(100 * busy / total, 1) if total else None,
        "machine_busy_cores": round(busy / wall, 2),
    }
    if args.rate:
        result["sending_s"] = round(sent_until - start, 2)
    if args.answered:
        with open(args.answered, "w", encoding="utf-8") as fh:
            for i in ok:
                fh.writelines(f"{t}\n" for t in ids[i])
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.openloop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    p.add_argument(
        "--port",
        required=True,
        help="server port, or ports comma-separated (replicas): connections go to each in "
        "turn (required)",
    )
    p.add_argument(
        "--path", default="/v1/decisions", help="endpoint POSTed to (default: %(default)s)"
    )
    p.add_argument(
        "--bodies",
        type=Path,
        required=True,
        help="JSON lines, one transaction each (as POST /v1/decisions takes it), cycled "
        "through; required",
    )
    p.add_argument(
        "--prefix",
        default="t",
        help="each transaction's id becomes PREFIX<cycle>-<its id> so that every request of a "
        "run is a transaction of its own; give each phase its own (default: %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop: requests per second, on schedule (default 0: closed loop instead)",
    )
    p.add_argument(
        "--seconds", type=float, default=10.0, help="length of the run (default: %(default)s)"
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="closed loop: requests in flight, each followed by the next when answered "
        "(default 0: open loop, --rate)",
    )
    p.add_argument(
        "--count",
        type=int,
        default=0,
        help="closed loop: requests encoded in advance, the most sent (default 0: enough for "
        "10,000 transactions a second)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="send {'transactions': [...]} bodies of this many (default 0: one transaction "
        "per body)",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=32,
        help="open loop: connections opened before the clock starts (default: %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=512,
        help="open loop: the most connections; past that requests wait in the generator, "
        "their clock running (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds after the last due time to wait for answers; what is still unanswered "
        "counts as a timeout error (default: %(default)s)",
    )
    p.add_argument(
        "--watch-pid",
        default="",
        help="processes, comma-separated, whose CPU percent (summed; 100 = one core) over the "
        "timed window is reported (default: none)",
    )
    p.add_argument(
        "--answered",
        type=Path,
        default=None,
        help="write the trans_num of each transaction answered with a 2xx here (default: no)",
    )
    p.add_argument(
        "--no-server-ms",
        action="store_true",
        help="do not read server_ms from the answers (the no-op endpoint has none)",
    )
    return p


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parser().parse_args(argv)
    if bool(args.rate) == bool(args.concurrency):
        parser().error("give exactly one of --rate (open loop) and --concurrency (closed loop)")
    result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
