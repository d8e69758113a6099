"""What each step of one decision costs, in this process: ``benchmarks.decision_latency`` runs
it against the seeded champion and the PostgreSQL schema before the service starts.

For batches of 1 and of 10 transactions (rows of sparkov_test, their cards' state cached as
the service caches it), the median and p99 per call, in ms, of: reading the card state from
the cache, the features through the fast path (``serving_vectors``) and through polars
(``serving_features``), the model's runtime, the log rows, all of these together
(``Decider.prepare``), the log's write to PostgreSQL as the service makes it (one statement on
an event loop, its own transaction: a commit and its fsync), and the whole decision: as the
service takes it (``Decider.decide_async``, with its CPU time) and through ``score_rows``'
polars queries (every card's state cached first, as in a service that has run a while). The
request's own HTTP and validation are outside (the no-op endpoint of ``decision_latency``
measures the server's floor).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterator
from itertools import count
from pathlib import Path

import polars as pl
import uvloop

from benchmarks.inference import WARM_UP, summary_ns, time_calls
from fraud_assets.lib import decision_log
from fraud_assets.lib.card_state import CachedState, WarehouseState
from fraud_assets.lib.champion import LiveChampion
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.deciding import Decider, Request, RowChecker
from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.schema import read_training_csv
from fraud_assets.lib.serving import score_vectors
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.testing import MODEL_NAME

SIZES = (1, 10)


def step_costs(
    data_dir: Path, tracking_uri: str, cache_dir: Path, url: str, schema: str, calls: int = 300
) -> dict[str, dict[str, dict[str, float]]]:
    """Batch size -> step -> {p50_ms, p99_ms} (see the module)."""
    champion = LiveChampion(tracking_uri, MODEL_NAME, "arrival", cache_dir)
    champion.refresh()
    wh = Warehouse(url, schema=schema)
    state = CachedState(WarehouseState(wh))
    test = read_training_csv(data_dir / "sparkov_test.csv.gz").head(20_000)
    test = test.with_columns(pl.col("cc_num").cast(pl.String))
    model = champion.current().model
    state.vector_states(model.feature_set, test["cc_num"].unique().to_list())  # as a warm service
    rows = test.iter_rows(named=True)
    fresh = (f"step-{time.time_ns()}-{i}" for i in count())
    parts = Parts(champion, state, wh, rows, fresh, calls)
    return {str(n): parts.timings(n) for n in SIZES}


class Parts:
    """The service's parts, and what it takes to time each step on batches of ``n``."""

    def __init__(
        self,
        champion: LiveChampion,
        state: CachedState,
        wh: Warehouse,
        rows: Iterator[dict],
        fresh: Iterator[str],
        calls: int,
    ) -> None:
        self.champion, self.state, self.wh, self.rows, self.fresh = champion, state, wh, rows, fresh
        self.calls, self.model = calls, champion.current().model
        self.checker = RowChecker(Limits(), None)
        self.vectors = Decider(champion, state, wh, "arrival", "service")
        self.polars = Decider(champion, state, wh, "arrival", "service", vectors=False)

    def batches(self, n: int) -> Iterator[list[Request]]:
        """Checked requests, made before the clock starts: one batch per timed call."""
        return iter(
            [_requests(self.checker, self.rows, n, self.fresh) for _ in range(self.calls + 10)]
        )

    def timings(self, n: int) -> dict[str, dict[str, float]]:
        model, fs, state = self.model, self.model.feature_set, self.state
        sample = next(self.batches(n))
        self.vectors.decide(sample)  # the cards' state cached, as a warm service has it
        cards = list(dict.fromkeys(r.row["cc_num"] for r in sample))
        todo = [self.vectors._row(r) for r in sample]
        columns = {c: [row.get(c) for row in todo] for c in todo[0]}
        frames, profiles = state.vector_states(fs, cards), state.state_for(fs, cards)
        frame = self.polars._frame(sample)
        scores = score_vectors(columns, frames, model, semantics="arrival")
        matrix = fs.vector_matrix(scores.features)
        log_args = (todo, scores, model, "arrival", "service", ["b"] * n, [1.0] * n)

        def log_rows() -> list[tuple]:
            return decision_log.vector_log_rows(*log_args, utc_now(), utc_now())

        def fresh_log_rows() -> list[tuple]:
            at = decision_log.AT["trans_num"]
            return [(*r[:at], next(self.fresh), *r[at + 1 :]) for r in log_rows()]

        fast, slow, whole = self.batches(n), self.batches(n), self.batches(n)
        steps: dict[str, Callable[[], object]] = {
            "card_state_cached": lambda: state.vector_states(fs, cards),
            "features_vectors": lambda: fs.serving_vectors(columns, frames),
            "features_polars": lambda: fs.serving_features(frame, profiles),
            "model_runtime": lambda: model.runtime.predict_raw(matrix),
            "log_rows": log_rows,
            "prepare_vectors": lambda: self.vectors.prepare(next(fast)),
            "decide_polars": lambda: self.polars.decide(next(slow)),
        }
        out = {name: time_calls(step, self.calls) for name, step in steps.items()}
        # As the service runs them: on an event loop, the log written by its asynchronous pool
        loops: dict[str, Callable[[], Awaitable[object]]] = {
            "log_commit_postgres": lambda: decision_log.record_rows_async(
                self.wh, fresh_log_rows()
            ),
            "decide_vectors": lambda: self.vectors.decide_async(next(whole)),
        }
        return out | uvloop.run(self._time_async(loops))

    async def _time_async(
        self, steps: dict[str, Callable[[], Awaitable[object]]]
    ) -> dict[str, dict[str, float]]:
        out = {}
        for name, step in steps.items():
            for _ in range(WARM_UP):
                await step()
            ns, cpu = [], time.process_time()
            for _ in range(self.calls):
                started = time.perf_counter_ns()
                await step()
                ns.append(time.perf_counter_ns() - started)
            cpu_ms = (time.process_time() - cpu) / self.calls * 1000
            out[name] = summary_ns(ns) | {"cpu_ms": round(cpu_ms, 4)}
        await self.wh.aclose()
        return out


def _requests(
    checker: RowChecker, rows: Iterator[dict], n: int, fresh: Iterator[str]
) -> list[Request]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    out = []
    for _ in range(n):
        r = next(rows)
        values = {k: r[k] for k in _FIELDS} | {"trans_num": next(fresh)}
        out.append(Request(checker.check(values, now), "bench", time.perf_counter(), now))
    return out


_FIELDS = (
    "cc_num", "merchant", "category", "amt", "first", "last", "gender", "street", "city",
    "state", "zip", "lat", "long", "city_pop", "job", "dob", "merch_lat", "merch_long",
)  # fmt: skip
