"""Deciding while the cardholder waits: a batch of checked transactions through the one serving
path, recorded in the decision log before anyone is answered.

The decision service (HTTP) and the stream consumer both call ``Decider.decide``: the
champion's serving path (card state, features, calibrated probability, the expected-cost rule),
then one group commit of the batch to the log. For feeds whose features have a numpy path
(arrival) that is ``lib/serving.score_vectors``, held identical to ``score_rows`` by the parity
tests; otherwise ``score_rows`` itself. A transaction decided
before (a client's retry, a broker's redelivery, another replica) is answered with its first,
logged decision, so every ``trans_num`` has exactly one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from fraud_assets.lib import decision_log
from fraud_assets.lib.champion import LiveChampion, Loaded
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.explain import Explainer
from fraud_assets.lib.features import INPUT_COLUMNS
from fraud_assets.lib.landing import HOUR_FORMAT
from fraud_assets.lib.payloads import Limits, check_row, row_checks
from fraud_assets.lib.schema import TRANSACTION_SCHEMA
from fraud_assets.lib.serving import (
    CardStateSource,
    ServingModel,
    fast_path_serves,
    score_rows,
    score_vectors,
)
from fraud_assets.lib.warehouse import Warehouse

#: What a transaction's decision says: review it, or let it through.
REVIEW, APPROVE = "review", "approve"


@dataclass(frozen=True)
class Request:
    """One transaction to decide: its checked row, who asks, and when it arrived."""

    row: dict[str, object]  # canonical values (``check_row``), ``event_time`` included
    client: str
    received: float  # time.perf_counter() when it arrived
    arrived_at: dt.datetime  # naive UTC
    explain: bool = False


@dataclass(frozen=True)
class Prepared:
    """A scored batch, ready to be logged: its requests and the log rows of their decisions."""

    requests: Sequence[Request]
    loaded: Loaded
    logged: list[tuple]  # log rows (``decision_log.COLUMNS``), one per distinct trans_num

    def reads_log(self, new: set[str]) -> bool:
        """Whether answering reads the log: a repeat's first decision, or an explanation."""
        return len(new) < len(self.logged) or any(r.explain for r in self.requests)


@dataclass(frozen=True)
class Decision:
    """The answer for one transaction (nothing of the card's history or profile)."""

    trans_num: str
    decision: str
    fraud_probability: float
    threshold: float
    expected_loss: float
    model_name: str
    model_version: str
    feature_set_version: str
    feed_semantics: str
    server_ms: float
    repeated: bool = False  # decided before: this is the first, logged decision
    #: TreeSHAP contributions to the raw score by feature family, largest first (on request).
    explanation: tuple[tuple[str, float], ...] | None = None


class RowChecker:
    """A request body's row checked exactly as a polled row is (``lib/payloads.py``); the
    arrival is the service's clock, and the event time the body's own for ``payload`` feeds."""

    def __init__(self, limits: Limits, event_time_field: str | None) -> None:
        self.limits, self.event_time_field = limits, event_time_field
        self.checks = row_checks(limits)

    def check(self, values: dict[str, object], arrived_at: dt.datetime) -> dict[str, object]:
        return check_row(values, arrived_at, self.event_time_field, self.limits, self.checks)


class Decider:
    """Decides batches with the live champion and records them (see the module)."""

    def __init__(
        self,
        champion: LiveChampion,
        state: CardStateSource,
        warehouse: Warehouse,
        semantics: str,
        decided_by: str = "service",
        vectors: bool = True,
    ) -> None:
        self.champion, self.state, self.warehouse = champion, state, warehouse
        self.semantics, self.decided_by = semantics, decided_by
        #: Decide through ``score_vectors`` wherever it can (False: always ``score_rows``).
        self.vectors = vectors
        self._explainers: dict[str, Explainer] = {}
        decision_log.ensure_log(warehouse)

    def decide(self, requests: Sequence[Request]) -> list[Decision]:
        """Score, log, answer: one ``Decision`` per request, in order. NotReady without a
        champion; any failure to log raises, so nothing unlogged is ever answered."""
        batch = self.prepare(requests)
        return self.answer(batch, decision_log.record_rows(self.warehouse, batch.logged))

    async def decide_async(self, requests: Sequence[Request]) -> list[Decision]:
        """``decide`` on an event loop: the fast path's scoring runs on it (CPU only, a
        fraction of a millisecond), and the loop goes on serving while the log's write waits
        on the database. A batch that would wait on the database before that (a card whose
        state is not cached yet, an event-time feed's history) is prepared in a thread."""
        loaded = self.champion.current()  # one champion for the whole batch, swap or not
        if self._prepares_in_memory(loaded, requests):
            batch = self.prepare(requests, loaded)
        else:
            batch = await asyncio.to_thread(self.prepare, requests, loaded)
        new = await decision_log.record_rows_async(self.warehouse, batch.logged)
        if batch.reads_log(new):  # a repeat or an explanation: the log is read back
            return await asyncio.to_thread(self.answer, batch, new)
        return self.answer(batch, new)

    def prepare(self, requests: Sequence[Request], loaded: Loaded | None = None) -> Prepared:
        """The log rows of a batch (the first request of each ``trans_num``), scored by
        ``loaded`` (default: the champion now): what ``decide`` records before it answers."""
        loaded = loaded or self.champion.current()
        first = {r.row["trans_num"]: r for r in reversed(requests)}  # the first of each id
        todo = list(reversed(first.values()))
        if self._fast(loaded.model):
            logged = self._log_vectors(loaded.model, todo)
        else:
            logged = list(self._log_frame(loaded.model, todo).iter_rows())
        return Prepared(requests, loaded, logged)

    def _fast(self, model: ServingModel) -> bool:
        """Whether ``model`` is served by the fast path (``score_vectors``)."""
        return self.vectors and fast_path_serves(model)

    def _prepares_in_memory(self, loaded: Loaded, requests: Sequence[Request]) -> bool:
        """Whether ``prepare`` reads nothing from the database: the fast path, every card's
        state at hand."""
        model = loaded.model
        return self._fast(model) and self.state.holds(
            model.feature_set, [r.row["cc_num"] for r in requests]
        )

    def answer(self, batch: Prepared, new: set[str]) -> list[Decision]:
        """Each request's decision, once its batch is logged (``new``: the ``trans_num``
        logged now; the others were decided before and get their first decision)."""
        answers = {d.trans_num: d for d in self._answers(batch.logged, new)}
        wanted = {r.row["trans_num"] for r in batch.requests if r.explain}
        if wanted:
            answers |= self._explained(batch.loaded, answers, wanted)
        return [answers[r.row["trans_num"]] for r in batch.requests]

    def _log_frame(self, model: ServingModel, todo: list[Request]) -> pl.DataFrame:
        """The batch's log rows through ``score_rows`` (any model, any feed)."""
        rows = self._frame(todo)
        batch = score_rows(
            rows, self.state, model, semantics=self.semantics, decided_by=self.decided_by
        )
        done = time.perf_counter()
        return decision_log.log_rows(
            rows,
            batch,
            self.decided_by,
            [r.client for r in todo],
            [(done - r.received) * 1000 for r in todo],
            utc_now(),
        )

    def _log_vectors(self, model: ServingModel, todo: list[Request]) -> list[tuple]:
        """The same log rows through ``score_vectors`` (a small batch's fast path)."""
        rows = [self._row(r) for r in todo]
        columns = {c: [row.get(c) for row in rows] for c in INPUT_COLUMNS}
        state = self.state.vector_states(model.feature_set, list(dict.fromkeys(columns["cc_num"])))
        scores = score_vectors(columns, state, model, semantics=self.semantics)
        scored_at = utc_now()
        done = time.perf_counter()
        return decision_log.vector_log_rows(
            rows,
            scores,
            model,
            self.semantics,
            self.decided_by,
            [r.client for r in todo],
            [(done - r.received) * 1000 for r in todo],
            utc_now(),
            scored_at,
        )

    def _explained(
        self, loaded: Loaded, answers: dict[str, Decision], wanted: set[str]
    ) -> dict[str, Decision]:
        """The decisions in ``wanted`` with what moved each score, computed on the features
        each was decided on (the logged ones, for a repeat)."""
        served = decision_log.served_of(decision_log.read_logged(self.warehouse, list(wanted)))
        version = loaded.info.version
        if version not in self._explainers:
            self._explainers = {version: Explainer(loaded.model.pipeline, loaded.model.feature_set)}
        explainer = self._explainers[version]
        out = {}
        for row in served.filter(pl.col("model_version") == version).partition_by("trans_num"):
            families = explainer.explain(row).families.select("family", "contribution").rows()
            trans_num = row["trans_num"][0]
            out[trans_num] = dataclasses.replace(answers[trans_num], explanation=tuple(families))
        return out

    def _frame(self, requests: Sequence[Request]) -> pl.DataFrame:
        rows = [
            {**{c: r.row.get(c) for c in TRANSACTION_SCHEMA}, "arrived_at": r.arrived_at}
            for r in requests
        ]
        frame = pl.DataFrame(rows, schema={**TRANSACTION_SCHEMA, "arrived_at": pl.Datetime("ms")})
        return frame.with_columns(
            event_time_source=pl.lit(self.semantics),
            batch_hour=pl.col("arrived_at").dt.strftime(HOUR_FORMAT),
        )

    def _row(self, request: Request) -> dict[str, object]:
        """``_frame``'s row of one request, as Python values (``vector_log_rows`` casts them
        as the frame does)."""
        return {
            **{c: request.row.get(c) for c in TRANSACTION_SCHEMA},
            "arrived_at": request.arrived_at,
            "batch_hour": request.arrived_at.strftime(HOUR_FORMAT),
        }

    def _answers(self, logged: list[tuple], new: set[str]) -> list[Decision]:
        repeats = [row[_ID] for row in logged if row[_ID] not in new]
        rows = [row for row in logged if row[_ID] in new]
        if repeats:
            rows += decision_log.read_logged(self.warehouse, repeats).iter_rows()
        return [_decision(row, repeated=row[_ID] not in new) for row in rows]


_ID = decision_log.AT["trans_num"]
#: Where a ``Decision``'s fields sit in a log row.
_FIELDS = {
    name: decision_log.AT[name]
    for name in (
        "fraud_probability",
        "threshold",
        "expected_loss",
        "model_name",
        "model_version",
        "feature_set_version",
        "feed_semantics",
        "server_ms",
    )
}
_FLAGGED = decision_log.AT["is_flagged"]


def _decision(row: tuple, repeated: bool) -> Decision:
    """The answer a log row gives."""
    return Decision(
        trans_num=row[_ID],
        decision=REVIEW if row[_FLAGGED] else APPROVE,
        repeated=repeated,
        **{name: row[i] for name, i in _FIELDS.items()},
    )
