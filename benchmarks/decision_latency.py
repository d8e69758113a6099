"""``python -m benchmarks.decision_latency``: the decision service (``python -m decision_api``)
under open-loop load, against its own no-op endpoint and the model's one-row floors.

Set-up: a throwaway PostgreSQL schema (dropped at the end); a champion seeded with
``fraud_assets.testing.seed_champion`` (the forest's production hyperparameters, arrival
feeds), fitted on sparkov_train or on ``--train-rows`` of it (whole cards), the card state
always built from the whole file; the service started as a process of its own on loopback
(no client tokens) with ``--workers`` worker processes (default: one a core), ready when
``/readyz`` says so twenty times in a row (on fresh connections, so every worker is asked).

Then, in this order, with nothing else of the benchmark's running:

1. the floors, in this process before the service starts: one row through the champion's
   ``predict_proba`` and through the fast runtime (``benchmarks.inference.floors``); then what
   each step of a decision costs, for batches of 1 and 10 (``benchmarks.decision_steps``);
2. for each of ``--rates``: ``POST /v1/decisions`` for ``--seconds`` at that rate, open loop
   (``benchmarks.openloop``, in a process of its own: requests sent on schedule whatever the
   answers, latency from each request's due time), every request a transaction of its own
   (rows of sparkov_test, each with a trans_num of its own); then ``POST /v1/noop`` of the same
   server at the same rate, with the same bodies;
3. the highest sustained single-decision rate (achieved >= 99 % of the target and p99 <= 50
   ms): probes of ``--search-seconds`` above the highest rate of step 2 that held, and between
   it and the lowest that did not;
4. ``POST /v1/decisions/batch`` closed loop (``--batch-concurrency`` requests in flight, of
   ``--batch-size`` transactions each) for ``--batch-seconds``: decisions per second;
5. the decision log read back from PostgreSQL: how many of the trans_nums answered with a 2xx
   are in it, and how many trans_nums it holds twice.

The service's CPU percent (100 = one core; all its ``--workers`` processes) is read from
/proc/<pid>/stat over each timed
window, with the generator's own and the whole machine's. ``server_p99_ms`` is the p99 of the
``server_ms`` field of the answers (the service's time from the request's arrival in the
handler to its decision; the log commit and HTTP are outside it); the Prometheus histogram's
bucket holding the p99 (which includes the log commit) is in the detail line.

Prints progress, then one JSON line of details (every phase in full), and last one JSON line:
machine, rates, max_sustained, batch, floors, logged, steps. ``--quick`` runs it all in about two
minutes (short phases, a small training sample): a check that it works, not the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import polars as pl
import requests

from benchmarks.decision_steps import step_costs
from benchmarks.harness import ROOT, card_sample, process_tree, start, stop, stop_on_sigterm
from benchmarks.machine import describe
from benchmarks.openloop import machine_cpu
from fraud_assets.testing.servers import free_port, wait_answering

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
FIELDS = (
    "trans_num", "cc_num", "merchant", "category", "amt", "first", "last", "gender", "street",
    "city", "state", "zip", "lat", "long", "city_pop", "job", "dob", "merch_lat", "merch_long",
)  # fmt: skip
#: A rate holds when at least this share of its target is achieved and p99 is within the bound.
HELD_SHARE, HELD_P99_MS = 0.99, 50.0
GENERATOR = (
    "benchmarks.openloop: open loop, one Python process on uvloop with raw asyncio "
    "protocols and httptools's parser, requests encoded before the clock starts, latency "
    "from each request's due time"
)


def held(phase: dict) -> bool:
    return phase["achieved"] >= HELD_SHARE * phase["target"] and phase["p99_ms"] <= HELD_P99_MS


@contextlib.contextmanager
def throwaway_schema(url: str) -> Iterator[str]:
    """A schema name on ``url``'s database; the schema is dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"bench_decisions_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def seed(root: Path, data_dir: Path, url: str, schema: str, train_rows: int):  # noqa: ANN201
    """The champion and the card state (``seed_champion``); returns the ``Seeded``."""
    from fraud_assets.lib.model import default_params
    from fraud_assets.lib.schema import read_training_csv
    from fraud_assets.testing import seed_champion

    history = read_training_csv(data_dir / "sparkov_train.csv.gz")
    fit_on = card_sample(history, train_rows) if train_rows else None
    started = time.perf_counter()
    seeded = seed_champion(
        root,
        history,
        semantics="arrival",
        params=default_params("rf", n_jobs=2),
        fit_on=fit_on,
        warehouse_url=url,
        schema=schema,
    )
    fitted = history.height if fit_on is None else fit_on.height
    print(
        f"seeded champion v{seeded.version}: fitted on {fitted:,} of {history.height:,} rows "
        f"(card state from all) in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return seeded


def model_floors(seeded) -> dict[str, float]:  # noqa: ANN001 - fraud_assets.testing.Seeded
    from benchmarks.inference import floors

    result = seeded.result
    return floors(result.pipeline, result.feature_set.matrix(result.validation_features.head(1)))


def write_bodies(data_dir: Path, path: Path) -> int:
    """sparkov_test's rows as decision request bodies, one JSON a line; returns the count."""
    from fraud_assets.lib.schema import read_training_csv

    test = read_training_csv(data_dir / "sparkov_test.csv.gz").select(FIELDS)
    test = test.with_columns(pl.col("cc_num").cast(pl.String))
    with open(path, "wb") as fh:
        for row in test.iter_rows(named=True):
            fh.write(orjson.dumps(row) + b"\n")
    return test.height


def service_env(root: Path, seeded, url: str, schema: str) -> dict[str, str]:  # noqa: ANN001
    env = {
        **os.environ,
        "FRAUD_DATA_DIR": str(root),
        "FRAUD_DATABASE_URL": url,
        "FRAUD_DATABASE_SCHEMA": schema,
        "MLFLOW_TRACKING_URI": seeded.tracking_uri,
        "FRAUD_FEED_SEMANTICS": "arrival",
        # one client (anonymous, on loopback) sends everything: lift its rate limit (the
        # limiter still runs) so that the benchmark measures the service, not the limit
        "FRAUD_DECISION_RATE_LIMIT_PER_MINUTE": str(10**9),
    }
    env.pop("FRAUD_DECISION_CLIENTS", None)
    return env


def every_worker_ready(url: str, seconds: float, in_a_row: int = 20) -> None:
    """``url`` answers 200 ``in_a_row`` times running, each on a new connection (the kernel
    hands each to one of the workers)."""
    deadline, ok = time.monotonic() + seconds, 0
    while ok < in_a_row:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service's workers were not all ready in {seconds} s")
        ok = ok + 1 if requests.get(url, timeout=10).ok else 0
        time.sleep(0.05)


def histograms(url: str) -> dict[str, dict[str, float]]:
    """The service's latency (single endpoint) and batch-size histograms: bucket -> count,
    plus ``_sum`` and ``_count``."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[str, float]] = {"latency": {}, "batch": {}}
    text = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name not in ("fraud_decision_request_seconds", "fraud_decision_batch_size"):
            continue
        kind = "latency" if family.name == "fraud_decision_request_seconds" else "batch"
        for s in family.samples:
            if kind == "latency" and s.labels.get("endpoint") != "single":
                continue
            key = s.labels.get("le", s.name.rsplit("_", 1)[-1])
            out[kind][key] = s.value
    return out


def histogram_figures(before: dict, after: dict) -> dict[str, float | None]:
    """Between two scrapes: the latency bucket holding the p99 (its upper bound, ms) and the
    mean micro-batch size."""
    lat = {k: after["latency"].get(k, 0) - before["latency"].get(k, 0) for k in after["latency"]}
    count = lat.get("count", 0)
    bound = None
    if count:
        bounds = sorted((float(k), v) for k, v in lat.items() if k not in ("sum", "count"))
        bound = next((le for le, v in bounds if v >= 0.99 * count), float("inf"))
    batches = after["batch"].get("count", 0) - before["batch"].get("count", 0)
    sizes = after["batch"].get("sum", 0) - before["batch"].get("sum", 0)
    return {
        "server_histogram_p99_le_ms": None if bound is None else bound * 1000,
        "mean_micro_batch": round(sizes / batches, 2) if batches else None,
    }


class Bench:
    """The running service and how to drive it."""

    def __init__(self, args: argparse.Namespace, url: str, pid: int, bodies: Path, out: Path):
        self.args, self.url, self.pid, self.bodies, self.out = args, url, pid, bodies, out
        self.port = int(url.rsplit(":", 1)[1])
        self.answered_files: list[Path] = []

    def drive(self, path: str, prefix: str, *extra: str, answered: bool = True) -> dict:
        """One run of the generator against ``path``; its JSON."""
        cmd = [
            sys.executable, "-m", "benchmarks.openloop", "--port", str(self.port),
            "--path", path, "--bodies", str(self.bodies), "--prefix", prefix,
            "--watch-pid", ",".join(map(str, process_tree(self.pid))), *extra,
        ]  # fmt: skip
        if answered:
            file = self.out / f"answered-{prefix}.txt"
            cmd += ["--answered", str(file)]
            self.answered_files.append(file)
        if path == "/v1/noop":
            cmd.append("--no-server-ms")
        before = histograms(self.url) if path == "/v1/decisions" else None
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the generator failed: {done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if before is not None:
            result |= histogram_figures(before, histograms(self.url))
        time.sleep(self.args.pause)
        return result

    def single(self, rate: float, seconds: float, prefix: str) -> dict:
        return self.drive("/v1/decisions", prefix, "--rate", str(rate), "--seconds", str(seconds))

    def noop(self, rate: float, seconds: float) -> dict:
        return self.drive(
            "/v1/noop", f"n{rate:g}-", "--rate", str(rate), "--seconds", str(seconds),
            answered=False,
        )  # fmt: skip

    def batch(self) -> dict:
        a = self.args
        return self.drive(
            "/v1/decisions/batch", "b", "--concurrency", str(a.batch_concurrency),
            "--seconds", str(a.batch_seconds), "--batch-size", str(a.batch_size),
        )  # fmt: skip


def show(name: str, r: dict) -> None:
    server = (r.get("server_ms") or {}).get("p99_ms")
    print(
        f"{name:<28} achieved {r['achieved']:>8.1f}/s  errors {r['errors']:>5}  p50 "
        f"{r['p50_ms']:7.2f}  p99 {r['p99_ms']:8.2f}  max {r['max_ms']:8.2f} ms  server p99 "
        f"{server if server is not None else '-'}  service cpu {r['watched_cpu_percent']}%  "
        f"generator cpu {r['generator_cpu_percent']}%  machine {r['machine_busy_cores']} cores",
        flush=True,
    )


def search(bench: Bench, fixed: list[dict], args: argparse.Namespace) -> tuple[dict, list]:
    """The highest rate that held (see the module): probes above the highest fixed rate that
    held and below the lowest above it that did not, until they are within 10 %."""
    held_rates = [r for r in fixed if held(r)]
    best = max(held_rates, key=lambda r: r["target"], default=None)
    lo = best["target"] if best else None
    above = [r["target"] for r in fixed if not held(r) and (lo is None or r["target"] > lo)]
    hi = min(above, default=None)
    probes = []
    for _ in range(args.search_probes):
        if lo is None:
            rate = max(10.0, round((hi or 100) / 2))
        elif hi is None:
            rate = round(lo * 1.5, -1)
        elif hi / lo <= 1.1:
            break
        else:
            rate = round((lo + hi) / 2, -1)
        r = bench.single(rate, args.search_seconds, f"s{rate:g}-")
        show(f"probe {rate:g}/s", r)
        probes.append(r)
        if held(r):
            lo, best = rate, r
        else:
            hi = rate
    if best is None:
        return {"rate": 0, "p99_ms": None, "endpoint": "single"}, probes
    return {"rate": best["target"], "p99_ms": best["p99_ms"], "endpoint": "single"}, probes


def logged(url: str, schema: str, files: list[Path]) -> dict[str, int]:
    """2xx answers, how many of their trans_nums the decision log holds, and its duplicates."""
    import psycopg
    from psycopg import sql

    answered: set[str] = set()
    count = 0
    for file in files:
        if file.exists():
            ids = file.read_text().split()
            count += len(ids)
            answered.update(ids)
    table = sql.Identifier(schema, "decision_log")
    with psycopg.connect(url) as conn:
        logged_ids = {r[0] for r in conn.execute(sql.SQL("SELECT trans_num FROM {}").format(table))}
        total, distinct = conn.execute(
            sql.SQL("SELECT count(*), count(DISTINCT trans_num) FROM {}").format(table)
        ).fetchone()
    return {
        "answered": count,
        "in_log": len(answered & logged_ids),
        "duplicates": (total - distinct) + (count - len(answered)),
    }


def idle_load(seconds: float) -> float:
    """Cores busy on the machine over ``seconds`` while the benchmark itself is idle (others'
    work, PostgreSQL's)."""
    busy0, _ = machine_cpu()
    time.sleep(seconds)
    busy1, _ = machine_cpu()
    return round((busy1 - busy0) / seconds, 2)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.decision_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("FRAUD_BENCH_DATA", DEFAULT_DATA)),
        help="folder with sparkov_train.csv.gz and sparkov_test.csv.gz "
        "(default: $FRAUD_BENCH_DATA or ../shared/data)",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("FRAUD_BENCH_DATABASE_URL") or DEFAULT_URL,
        help="PostgreSQL where a throwaway schema holds the card state and the decision log "
        f"(default: $FRAUD_BENCH_DATABASE_URL or {DEFAULT_URL})",
    )
    p.add_argument(
        "--train-rows",
        type=int,
        default=0,
        help="fit the champion on about this many rows of whole cards of sparkov_train "
        "(default 0: all of it, about 3 minutes)",
    )
    p.add_argument(
        "--rates",
        default="100,500,1000,2000",
        help="fixed rates, decisions per second, comma-separated (default: %(default)s)",
    )
    p.add_argument(
        "--seconds", type=float, default=60.0, help="length of each fixed rate (default: 60)"
    )
    p.add_argument(
        "--search-seconds",
        type=float,
        default=30.0,
        help="length of each probe of the highest sustained rate (default: 30)",
    )
    p.add_argument(
        "--search-probes",
        type=int,
        default=5,
        help="most probes of the highest sustained rate; 0 skips the search and reports the "
        "highest fixed rate that held (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help="transactions per batch request, at most the service's --max-batch "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--batch-concurrency",
        type=int,
        default=4,
        help="batch requests in flight, closed loop (default: %(default)s)",
    )
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=30.0,
        help="length of the batch endpoint's run (default: 30)",
    )
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=10.0,
        help="untimed decisions at 200/s first: the card cache fills, the code warms (default: 10)",
    )
    p.add_argument(
        "--pause",
        type=float,
        default=2.0,
        help="seconds between runs, for the service to settle (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="the service's worker processes (`python -m decision_api --workers`; default: "
        "this machine's cores, %(default)s, as a machine of its own would run it)",
    )
    p.add_argument(
        "--service-args",
        default="",
        help="extra arguments for `python -m decision_api`, e.g. '--batch-wait-ms 0' "
        "(default: none)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="about two minutes in all: 5 s per rate and probe, 3 probes, 5 s of batch, a "
        "20,000-row training sample (overrides those options)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = args.search_seconds = args.batch_seconds = 5.0
        args.search_probes, args.warmup_seconds, args.pause = 3, 2.0, 1.0
        args.train_rows = args.train_rows or 20_000
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    stop_on_sigterm()
    started = time.monotonic()
    libs = ("scikit-learn", "numpy", "onnxruntime", "polars", "psycopg", "fastapi", "uvicorn")
    machine: dict[str, object] = {**describe(libs), "loadavg_start": os.getloadavg()}
    details: dict[str, object] = {"generator": GENERATOR, "options": vars(args) | {}}
    with (
        tempfile.TemporaryDirectory(prefix="fraud-decisions-") as tmp,
        throwaway_schema(args.database_url) as schema,
    ):
        root = Path(tmp)
        seeded = seed(root, args.data_dir, args.database_url, schema, args.train_rows)
        floors = model_floors(seeded)
        print("floors:", json.dumps(floors), flush=True)
        steps = step_costs(
            args.data_dir, seeded.tracking_uri, seeded.cache_dir, args.database_url, schema
        )
        print("steps:", json.dumps(steps), flush=True)
        bodies = root / "bodies.jsonl"
        details["test_rows"] = write_bodies(args.data_dir, bodies)
        port = free_port()
        log = root / "service.log"
        proc = start(
            [
                sys.executable, "-m", "decision_api", "--host", "127.0.0.1", "--port",
                str(port), "--workers", str(args.workers), *shlex.split(args.service_args),
            ],
            service_env(root, seeded, args.database_url, schema),
            log,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_answering(f"{url}/readyz", proc, log, 180)
            every_worker_ready(f"{url}/readyz", 180)
            print(f"service ready: pid {proc.pid}, {url}", flush=True)
            machine["idle_busy_cores"] = idle_load(5.0)
            bench = Bench(args, url, proc.pid, bodies, root)
            details["warmup"] = bench.single(200.0, args.warmup_seconds, "w")
            rates, runs = [], []
            for rate in args.rates:
                single = bench.single(rate, args.seconds, f"d{rate:g}-")
                show(f"decisions {rate:g}/s", single)
                noop = bench.noop(rate, args.seconds)
                show(f"noop {rate:g}/s", noop)
                runs.append({"decisions": single, "noop": noop})
                rates.append(
                    {
                        "target": single["target"],
                        "achieved": single["achieved"],
                        "errors": single["errors"],
                        "p50_ms": single["p50_ms"],
                        "p95_ms": single["p95_ms"],
                        "p99_ms": single["p99_ms"],
                        "max_ms": single["max_ms"],
                        "server_p99_ms": (single["server_ms"] or {}).get("p99_ms"),
                        "noop_p99_ms": noop["p99_ms"],
                        "cpu_percent": single["watched_cpu_percent"],
                    }
                )
            details["runs"] = runs
            sustained, details["probes"] = search(bench, [r["decisions"] for r in runs], args)
            batch = bench.batch()
            show(f"batch of {args.batch_size}", batch)
            details["batch"] = batch
            machine["loadavg_end"] = os.getloadavg()
            answered_files = bench.answered_files
        finally:
            stop(proc)
            details["service_log_tail"] = log.read_text(errors="replace")[-2000:]
        record = logged(args.database_url, schema, answered_files)
    details["wall_s"] = round(time.monotonic() - started)
    summary = {
        "machine": machine,
        "rates": rates,
        "max_sustained": sustained,
        "batch": {"decisions_per_s": batch["decisions_per_s"], "batch_size": args.batch_size},
        "floors": {
            "sklearn_one_row_ms": floors["sklearn_one_row_ms"],
            "runtime_one_row_ms": floors["runtime_one_row_ms"],
        },
        "logged": record,
        "steps": steps,
    }
    details["floors"] = floors
    details["goals"] = goals(summary)
    print(json.dumps({"details": details}, default=str), flush=True)
    print(json.dumps(summary), flush=True)
    return summary


def goals(summary: dict) -> dict[str, object]:
    """The three goals, met or not, with their figures."""
    by_rate = {r["target"]: r for r in summary["rates"]}
    at500 = by_rate.get(500.0)
    out: dict[str, object] = {
        "p99_at_500_le_10ms": None if at500 is None else at500["p99_ms"] <= 10,
        "sustained_2000_p99_le_50ms": summary["max_sustained"]["rate"] >= 2000,
        "p99_le_3x_noop": {
            f"{r['target']:g}": round(r["p99_ms"] / r["noop_p99_ms"], 2)
            for r in summary["rates"]
            if r["noop_p99_ms"]
        },
    }
    return out


if __name__ == "__main__":
    main()
