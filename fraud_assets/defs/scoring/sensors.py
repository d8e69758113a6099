"""The transactions sensor: poll the API, land every payload, launch micro-batch runs."""

import datetime as dt
import time

import dagster as dg

from fraud_assets.defs.jobs import scoring_job
from fraud_assets.defs.resources import (
    MlflowResource,
    ObjectStoreResource,
    TransactionsApiResource,
    WarehouseResource,
)
from fraud_assets.lib import registry
from fraud_assets.lib.api import ApiUnavailable
from fraud_assets.lib.features import IncompatibleModel
from fraud_assets.lib.ingest import ledgered_keys
from fraud_assets.lib.landing import Spool, hour_of, hour_prefix, land, landing_key
from fraud_assets.lib.planning import HourPlan, RunsNow, plan_hours
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.storage import ObjectStore
from fraud_assets.settings import load_settings

POLL_SECONDS = load_settings().poll_interval_seconds
#: How far back a tick looks for landed payloads that the ledger has not seen (older ones are
#: the reconciliation check's: ``payloads_reconciled``).
LOOKBACK_HOURS = 48


def _recent_hours(now: dt.datetime) -> list[str]:
    hours, h = [], (now - dt.timedelta(hours=LOOKBACK_HOURS)).replace(minute=0, second=0)
    while h <= now:
        hours.append(hour_of(h.replace(microsecond=0)))
        h += dt.timedelta(hours=1)
    return hours


def plan_runs(plans: list[HourPlan]) -> list[dg.RunRequest]:
    """One run request per hour with pending payloads (see ``lib/planning.py``)."""
    return [
        dg.RunRequest(
            run_key=plan.run_key,
            partition_key=plan.hour,
            tags={"fraud/payloads": str(len(plan.pending)), "fraud/job": "scoring"},
        )
        for plan in plans
    ]


@dg.sensor(
    job=scoring_job,
    minimum_interval_seconds=POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the transactions API, lands each raw payload, and launches scoring runs "
    "for every landed payload the ledger has not seen.",
)
def transactions_sensor(
    context: dg.SensorEvaluationContext,
    transactions_api: TransactionsApiResource,
    object_store: ObjectStoreResource,
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
) -> dg.SensorResult | dg.SkipReason:
    """Land first, then plan: a payload is in storage (or, while storage is down, in the local
    spool) before anything else happens to it. Planning looks at every landed payload of the
    recent hours that the ledger has not seen, so a payload spooled and landed late under an
    older key, or left over by a run's cap, is planned at once. Fetching keeps to a time
    budget well under the sensor's deadline."""
    settings = load_settings()
    store = object_store.store()
    spool = Spool(settings.data_dir / "spool")
    problems = _land_new_payloads(transactions_api, store, spool, settings.calls_per_tick)
    for problem in problems:
        context.log.warning(problem)
    try:
        champion = registry.champion_pointer(
            mlflow_registry.tracking_uri, mlflow_registry.model_name
        )
    except (registry.RegistryUnavailable, IncompatibleModel) as exc:
        context.log.error(f"payloads landed, none planned: {exc}")
        return dg.SkipReason(f"payloads landed; not planning runs: {exc}")
    if champion is None:
        return dg.SkipReason("payloads landed; waiting for a champion model before scoring")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    hours = _recent_hours(now)
    try:
        landed = {hour: list(store.list(hour_prefix(hour))) for hour in hours}
        ledgered = ledgered_keys(warehouse.warehouse(), hours)
    except Exception as exc:  # noqa: BLE001 - storage or warehouse down: plan on a later tick
        context.log.error(f"cannot list landed payloads or read the ledger: {redact(exc)}")
        return dg.SkipReason("storage or warehouse unavailable; payloads are kept and spooled")
    plans = plan_hours(landed, ledgered, scoring_runs(context.instance, now))
    newest = max((k for keys in landed.values() for k in keys), default=context.cursor)
    if not plans:
        reason = "no payloads the ledger has not seen" + (f" ({problems[-1]})" if problems else "")
        return dg.SensorResult(skip_reason=reason, cursor=newest)
    return dg.SensorResult(run_requests=plan_runs(plans), cursor=newest)


#: Statuses of a run that has not listed its payloads yet: it will take every one landed.
WAITING = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
]


def scoring_runs(instance: dg.DagsterInstance, now: dt.datetime) -> RunsNow:
    """The scoring runs of each hour: waiting, going (since when), failed lately."""

    def records(statuses: list[dg.DagsterRunStatus], **more: object) -> list:
        filters = dg.RunsFilter(job_name=scoring_job.name, statuses=statuses, **more)
        return instance.get_run_records(filters=filters, limit=500)

    def hour(record) -> str | None:  # noqa: ANN001
        return record.dagster_run.tags.get("dagster/partition")

    waiting = {hour(r) for r in records(WAITING)}
    started = {
        hour(r): dt.datetime.fromtimestamp(r.start_time or 0, dt.UTC).replace(tzinfo=None)
        for r in records([dg.DagsterRunStatus.STARTED])
    }
    failed: dict[str, int] = {}
    since = now.replace(tzinfo=dt.UTC) - dt.timedelta(hours=LOOKBACK_HOURS)
    for r in records([dg.DagsterRunStatus.FAILURE], updated_after=since):
        failed[hour(r)] = failed.get(hour(r), 0) + 1
    return RunsNow(frozenset(h for h in waiting if h), started, failed)


def _land_new_payloads(
    api: TransactionsApiResource, store: ObjectStore, spool: Spool, calls: int
) -> list[str]:
    """Flush the spool, then fetch up to ``calls`` payloads within one budget and land each."""
    problems: list[str] = []
    try:
        spool.flush(store)
    except Exception as exc:  # noqa: BLE001 - still down: the spool keeps them
        problems.append(
            f"object storage unavailable, {len(spool.pending())} payloads spooled: {redact(exc)}"
        )
    client = api.client()
    deadline = time.monotonic() + api.budget_seconds
    for _ in range(calls):
        left = deadline - time.monotonic()
        if left < 1:
            break
        try:
            payload = client.fetch(budget_seconds=left)
        except ApiUnavailable as exc:
            problems.append(f"transactions API unavailable: {redact(exc)}")
            break
        if not land(store, spool, landing_key(payload.fetched_at), payload.body):
            problems.append("object storage unavailable: payload kept in the local spool")
    return problems
