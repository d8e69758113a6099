"""The transactions sensor: poll the API, land every payload, launch micro-batch runs."""

import datetime as dt
import time
from collections.abc import Collection

import dagster as dg

from fraud_assets.defs.jobs import scoring_job
from fraud_assets.defs.resources import (
    MlflowResource,
    ObjectStoreResource,
    TransactionsApiResource,
)
from fraud_assets.lib import registry
from fraud_assets.lib.api import ApiUnavailable
from fraud_assets.lib.landing import Spool, hour_of, hour_of_key, hour_prefix, land, landing_key
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.storage import ObjectStore
from fraud_assets.settings import load_settings

POLL_SECONDS = load_settings().poll_interval_seconds
#: How far back a tick looks for landed payloads it has not yet handed to a run.
LOOKBACK_HOURS = 48


def _hours_since(cursor_key: str | None, now: dt.datetime) -> list[str]:
    earliest = now - dt.timedelta(hours=LOOKBACK_HOURS)
    if cursor_key:
        start = dt.datetime.strptime(hour_of_key(cursor_key), "%Y-%m-%d-%H:00")
        earliest = max(earliest, start)
    hours, h = [], earliest.replace(minute=0, second=0, microsecond=0)
    while h <= now:
        hours.append(hour_of(h))
        h += dt.timedelta(hours=1)
    return hours


#: Statuses of a run that has not started yet: it will take every payload landed before it.
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


def plan_runs(new_keys: list[str], waiting: Collection[str] = ()) -> list[dg.RunRequest]:
    """One run request per hour of new payloads, except hours in ``waiting`` (a scoring run
    of that hour has not started yet and will take them: runs coalesce instead of queueing
    one behind another). The run key makes a repeated tick harmless."""
    by_hour: dict[str, list[str]] = {}
    for key in sorted(new_keys):
        if hour_of_key(key) not in waiting:
            by_hour.setdefault(hour_of_key(key), []).append(key)
    return [
        dg.RunRequest(
            run_key=f"{hour}/{keys[-1].rsplit('/', 1)[-1]}",
            partition_key=hour,
            tags={"fraud/payloads": str(len(keys)), "fraud/job": "scoring"},
        )
        for hour, keys in by_hour.items()
    ]


@dg.sensor(
    job=scoring_job,
    minimum_interval_seconds=POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the transactions API, lands each raw payload, and launches scoring runs.",
)
def transactions_sensor(
    context: dg.SensorEvaluationContext,
    transactions_api: TransactionsApiResource,
    object_store: ObjectStoreResource,
    mlflow_registry: MlflowResource,
) -> dg.SensorResult | dg.SkipReason:
    """Land first, then plan: a payload is in storage (or, while storage is down, in the local
    spool) before anything else happens to it, and the cursor (the last landed key handed to a
    run) only moves with the run requests. Fetching keeps to a time budget well under the
    sensor's deadline."""
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
    except registry.RegistryUnavailable as exc:
        context.log.error(f"payloads landed, none planned: {exc}")
        return dg.SkipReason(f"payloads landed; not planning runs: {exc}")
    if champion is None:
        return dg.SkipReason("payloads landed; waiting for a champion model before scoring")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        new_keys = [
            key
            for hour in _hours_since(context.cursor, now)
            for key in store.list(hour_prefix(hour))
            if context.cursor is None or key > context.cursor
        ]
    except Exception as exc:  # noqa: BLE001 - storage down: plan on a later tick
        context.log.error(f"cannot list landed payloads: {redact(exc)}")
        return dg.SkipReason("object storage unavailable; payloads are spooled locally")
    if not new_keys:
        return dg.SkipReason("no new payloads" + (f" ({problems[-1]})" if problems else ""))
    return dg.SensorResult(
        run_requests=plan_runs(new_keys, _waiting_hours(context.instance)), cursor=max(new_keys)
    )


def _waiting_hours(instance: dg.DagsterInstance) -> set[str]:
    """Hours with a scoring run queued but not started."""
    runs = instance.get_runs(dg.RunsFilter(job_name=scoring_job.name, statuses=WAITING), limit=100)
    return {r.tags["dagster/partition"] for r in runs if "dagster/partition" in r.tags}


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
