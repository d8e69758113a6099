"""The decision service's HTTP application: a thin shell over ``lib/deciding.py``.

``create_app`` builds it from the settings (tests build it with their own). Routes parse,
authenticate, hand the transactions to the micro-batcher and answer; the decisions themselves
are ``lib/deciding.py``'s, recorded in the decision log before the answer leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Scope

from decision_api import hot, models
from decision_api.auth import ANONYMOUS, Clients, bearer, require_clients_off_loopback
from decision_api.batcher import MicroBatcher, Overloaded
from decision_api.metrics import Metrics
from fraud_assets.lib import deciding
from fraud_assets.lib.card_state import CachedState, WarehouseState
from fraud_assets.lib.champion import LiveChampion, NotReady
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.deciding import Decider, Decision, RowChecker
from fraud_assets.lib.payloads import PayloadError
from fraud_assets.lib.ratelimit import RateLimiter, is_loopback
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass
class Deciding:
    """What deciding needs, over HTTP or from a stream: the one champion, card state, log."""

    champion: LiveChampion
    state: CachedState
    warehouse: Warehouse
    decider: Decider
    checker: RowChecker


def deciding_parts(
    settings: Settings, decided_by: str, champion: LiveChampion | None = None
) -> Deciding:
    """The champion (followed), the cached card state, the log and the decider."""
    warehouse = Warehouse(settings.database_url, schema=settings.database_schema)
    champion = champion or LiveChampion(
        settings.mlflow_tracking_uri,
        settings.model_name,
        settings.feed_semantics,
        settings.model_cache_dir,
    )
    state = CachedState(WarehouseState(warehouse), settings.decision_card_cache)
    decider = Decider(champion, state, warehouse, settings.feed_semantics, decided_by)
    field = "event_time" if settings.feed_semantics == "payload" else None
    return Deciding(champion, state, warehouse, decider, RowChecker(settings.row_limits(), field))


def refresh(parts: Deciding) -> None:
    """Follow the champion alias, and drop the card-state cache if card_state was rewritten."""
    parts.champion.refresh()
    parts.state.check()


def settle_heap() -> None:
    """Once the champion is loaded: collect, then move every object alive now (modules, the
    model) out of the collector's reach, so that its full passes scan only what requests
    allocate: those passes were the tail of the latency (``docs/benchmarks.md``). Frozen
    objects are still freed by reference counting."""
    gc.collect()
    gc.freeze()


def follow(
    parts: Deciding,
    interval: float,
    stop: threading.Event,
    after: Callable[[], None] = lambda: None,
) -> threading.Thread:
    """``refresh`` every ``interval`` seconds until ``stop``, then ``after``, in a daemon
    thread."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                refresh(parts)
            except Exception:  # noqa: BLE001 - the card state's version may not be readable
                log.exception("refresh failed; serving what is loaded")
            after()

    thread = threading.Thread(target=loop, name="follow-champion", daemon=True)
    thread.start()
    return thread


@dataclass
class Service(Deciding):
    """What the routes share: built once per app."""

    settings: Settings
    batcher: MicroBatcher
    clients: Clients
    limiter: RateLimiter
    metrics: Metrics
    open_metrics: bool


def build_service(settings: Settings, host: str, champion: LiveChampion | None = None) -> Service:
    """The parts of one service process, from the settings."""
    clients = Clients.parse(settings.decision_clients, settings.decision_disabled_clients)
    require_clients_off_loopback(clients, host)
    parts = deciding_parts(settings, "service", champion)
    metrics = Metrics(parts.champion, lambda: (parts.state.hits, parts.state.misses))
    batcher = MicroBatcher(
        parts.decider.decide_async,
        max_batch=settings.decision_max_batch,
        max_wait=settings.decision_batch_wait_ms / 1000,
        max_queue=settings.decision_queue_size,
        in_flight=settings.decision_in_flight,
        on_batch=metrics.batch_size.observe,
    )
    return Service(
        **vars(parts),
        settings=settings,
        batcher=batcher,
        clients=clients,
        limiter=RateLimiter(settings.decision_rate_limit_per_minute, max_clients=10_000),
        metrics=metrics,
        open_metrics=is_loopback(host),
    )


def create_app(
    settings: Settings,
    host: str = "127.0.0.1",
    champion: LiveChampion | None = None,
    following: bool = True,
    settle: bool = False,
) -> hot.HotPaths:
    """The ASGI app. ``following`` runs the champion follower (tests may refresh by hand);
    ``settle`` calls ``settle_heap`` once started (a service process of its own does)."""
    svc = build_service(settings, host, champion)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        svc.batcher.start()
        if following:
            await asyncio.to_thread(refresh, svc)
            follow(svc, settings.decision_refresh_seconds, stop, svc.metrics.refresh)
        if settle:
            settle_heap()
        try:
            yield
        finally:
            stop.set()
            try:
                await svc.batcher.stop()
            finally:
                await svc.warehouse.aclose()  # the loop's pool: its tasks would hold the loop

    app = FastAPI(
        title="Card fraud decision service",
        version="1",
        summary="Approve or review a card transaction while the cardholder waits.",
        description=__doc__,
        lifespan=lifespan,
        responses={401: {"model": models.Problem}, 403: {"model": models.Problem}},
    )
    app.state.service = svc
    _declare(app)
    _routes(app, svc)
    return hot.HotPaths(app, _hot_routes(svc))


def from_environment() -> hot.HotPaths:
    """The app of one worker process of ``python -m decision_api``, from the settings (the
    command line's options are in the environment by then)."""
    settings = load_settings()
    return create_app(settings, host=settings.decision_host, settle=True)


def who_asks(svc: Service) -> Callable[[str | None], str]:
    """Who is asking, from the Authorization header: 401 without a known token, 403 when
    disabled, 429 over the client's rate. With no clients configured (loopback only) everyone
    is ``anonymous``."""

    def who(authorization: str | None) -> str:
        if not svc.clients:
            name = ANONYMOUS
        else:
            token = bearer(authorization)
            name = svc.clients.who(token) if token else None
            if name is None:
                svc.metrics.errors.labels("unauthorized").inc()
                raise HTTPException(
                    401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
                )
            if name in svc.clients.disabled:
                svc.metrics.errors.labels("forbidden").inc()
                raise HTTPException(403, f"client {name!r} is disabled")
        wait = svc.limiter.acquire(name)
        if wait > 0:
            svc.metrics.errors.labels("rate_limited").inc()
            raise HTTPException(429, "rate limited", headers={"Retry-After": str(int(wait) + 1)})
        return name

    return who


#: The query parameter of a single decision, as documented.
EXPLAIN = Query(False, description="Also say what moved the score, by family.")


def _declare(app: FastAPI) -> None:
    """The hot operations as the OpenAPI document shows them: their request and response
    models. ``_hot_routes`` serves them (``decision_api/hot.py``)."""
    unavailable = {503: {"model": models.Problem}, 429: {"model": models.Problem}}

    @app.post(
        "/v1/decisions",
        response_model=models.DecisionOut,
        responses=unavailable,
        summary="Decide one transaction",
    )
    def decide_one(transaction: models.Transaction, explain: bool = EXPLAIN) -> None:
        """Approve or review one transaction, recorded in the decision log before the answer."""

    @app.post(
        "/v1/decisions/batch",
        response_model=models.BatchOut,
        responses=unavailable,
        summary="Decide several transactions",
    )
    def decide_batch(batch: models.BatchRequest) -> None:
        """Decide up to the configured batch size of transactions together."""

    @app.post("/v1/noop", response_model=models.Noop, summary="Do nothing (the server's floor)")
    def noop() -> None:
        """Authenticate and read the body as the decisions do, and decide nothing: what the
        server itself costs, for benchmarks."""


def _hot_routes(svc: Service) -> dict[str, ASGIApp]:
    """The hot operations' handlers: parse, decide, answer (``decision_api/hot.py``)."""
    limit = svc.settings.decision_max_batch

    async def one(scope: Scope, body: bytes, who: str, started: float) -> bytes:
        tx = hot.parse(models.Transaction, body)
        explain = hot.query_flag(scope, "explain")
        [decision] = await _decide(svc, [tx], who, started, explain, "transaction")
        svc.metrics.latency.labels("single").observe(time.perf_counter() - started)
        return _out(decision).model_dump_json().encode()

    async def batch(scope: Scope, body: bytes, who: str, started: float) -> bytes:
        request = hot.parse(models.BatchRequest, body)
        if len(request.transactions) > limit:
            svc.metrics.errors.labels("invalid").inc()
            raise HTTPException(422, f"at most {limit} transactions per batch")
        decisions = await _decide(svc, request.transactions, who, started, False, "transactions")
        svc.metrics.latency.labels("batch").observe(time.perf_counter() - started)
        return models.BatchOut(decisions=[_out(d) for d in decisions]).model_dump_json().encode()

    async def noop(scope: Scope, body: bytes, who: str, started: float) -> bytes:
        return NOOP

    who, size = who_asks(svc), svc.settings.decision_max_body_bytes
    invalid = svc.metrics.errors.labels("invalid").inc
    handlers = {"/v1/decisions": one, "/v1/decisions/batch": batch, "/v1/noop": noop}
    return {path: hot.route(who, h, size, invalid) for path, h in handlers.items()}


NOOP = models.Noop(ok=True).model_dump_json().encode()


def _routes(app: FastAPI, svc: Service) -> None:
    @app.get("/healthz", response_model=models.Health, summary="The process is up")
    async def healthz() -> models.Health:
        return models.Health(status="ok")

    @app.get(
        "/readyz",
        response_model=models.Readiness,
        responses={503: {"model": models.Readiness}},
        summary="A compatible champion is loaded and the card state is reachable",
    )
    async def readyz() -> JSONResponse:
        body, ok = await asyncio.to_thread(_readiness, svc)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        summary="Prometheus metrics (loopback, or a token)",
        response_class=PlainTextResponse,
    )
    async def metrics(request: Request) -> PlainTextResponse:
        if not svc.open_metrics:
            _metrics_allowed(svc, request)
        return PlainTextResponse(svc.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _metrics_allowed(svc: Service, request: Request) -> None:
    token = bearer(request.headers.get("authorization"))
    allowed = token is not None and (
        token == svc.settings.decision_metrics_token
        or (svc.clients.who(token) not in (None, *svc.clients.disabled))
    )
    if not allowed:
        raise HTTPException(
            401,
            "metrics need the metrics token or a client's token",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _decide(
    svc: Service,
    transactions: list[models.Transaction],
    who: str,
    started: float,
    explain: bool,
    where: str,
) -> list[Decision]:
    arrived = utc_now()
    requests = []
    for i, tx in enumerate(transactions):
        values = tx.model_dump(exclude_none=True)
        try:
            row = svc.checker.check(values, arrived)
        except PayloadError as exc:
            loc = ["body", *([where, i] if where == "transactions" else []), exc.field or "body"]
            raise hot.Invalid([{"loc": loc, "msg": str(exc), "type": "value_error"}]) from None
        requests.append(deciding.Request(row, who, started, arrived, explain))
    try:
        decisions = await svc.batcher.submit(requests)
    except NotReady as exc:
        svc.metrics.errors.labels("not_ready").inc()
        raise HTTPException(503, f"not ready: {exc}") from None
    except Overloaded as exc:
        svc.metrics.errors.labels("overloaded").inc()
        raise HTTPException(503, f"overloaded: {exc}", headers={"Retry-After": "1"}) from None
    except Exception as exc:
        svc.metrics.errors.labels("log_unavailable").inc()
        log.exception("a batch could not be decided and logged")
        raise HTTPException(
            503, f"the decision could not be recorded: {type(exc).__name__}"
        ) from None
    for d in decisions:
        svc.metrics.decisions.labels(d.decision).inc()
    return decisions


def _out(d: Decision) -> models.DecisionOut:
    explanation = (
        [models.FamilyContribution(family=f, contribution=c) for f, c in d.explanation]
        if d.explanation is not None
        else None
    )
    return models.DecisionOut(
        trans_num=d.trans_num,
        decision=d.decision,  # type: ignore[arg-type]
        fraud_probability=d.fraud_probability,
        threshold=d.threshold,
        expected_loss=d.expected_loss,
        model_name=d.model_name,
        model_version=d.model_version,
        feature_set_version=d.feature_set_version,
        feed_semantics=d.feed_semantics,
        server_ms=d.server_ms,
        repeated=d.repeated,
        explanation=explanation,
    )


def _readiness(svc: Service) -> tuple[models.Readiness, bool]:
    status = svc.champion.status()
    try:
        version = svc.state.check()
        card_state = "reachable" if version else "reachable, but card_state was never written"
        reachable = True
    except Exception as exc:  # noqa: BLE001 - any failure: not reachable, and why
        card_state, reachable = f"unreachable: {type(exc).__name__}", False
    ago = None if status.checked_at is None else round(time.time() - status.checked_at, 3)
    took = None if status.load_seconds is None else round(status.load_seconds, 3)
    body = models.Readiness(
        ready=status.ready and reachable,
        reason=status.reason if reachable else f"{status.reason}; card state {card_state}",
        model_version=status.version,
        refused_version=status.refused_version,
        champion_checked_seconds_ago=ago,
        champion_load_seconds=took,
        card_state=card_state,
    )
    return body, body.ready
