"""The scoring sensors: the transactions sensor polls the API, lands every payload and plans a
run for each hour with payloads the ledger has not seen; the decisions sensor plans a run for
each hour whose logged decisions are not all imported. Both plan ``scoring_job`` runs, so a
run of an hour takes whatever that hour has waiting, from either source."""

import datetime as dt
import time

import dagster as dg

from fraud_assets.defs.resources import (
    FeedResource,
    MlflowResource,
    ObjectStoreResource,
    TransactionsApiResource,
    WarehouseResource,
)
from fraud_assets.defs.runs import WAITING
from fraud_assets.defs.scoring.jobs import scoring_job
from fraud_assets.lib import decision_log, registry
from fraud_assets.lib.api import ApiUnavailable
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.features import IncompatibleModel
from fraud_assets.lib.ingest import ledgered_keys
from fraud_assets.lib.lake import hours_since
from fraud_assets.lib.landing import Spool, hour_prefix, land, landing_key
from fraud_assets.lib.planning import HourPlan, RunsNow, plan_decision_hours, plan_hours
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.storage import ObjectStore

#: How far back a tick looks for landed payloads that the ledger has not seen (older ones are
#: the reconciliation check's: ``payloads_reconciled``).
LOOKBACK = dt.timedelta(hours=48)
#: Decisions are logged under the hour they arrive in; a replica's clock may lag a little.
DECISIONS_LOOKBACK = dt.timedelta(hours=2)


def plan_runs(plans: list[HourPlan]) -> list[dg.RunRequest]:
    """One scoring run request per planned hour (see ``lib/planning.py``)."""
    return [
        dg.RunRequest(
            run_key=plan.run_key,
            partition_key=plan.hour,
            tags={"fraud/payloads": str(len(plan.pending)), "fraud/job": "scoring"},
        )
        for plan in plans
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
    since = now.replace(tzinfo=dt.UTC) - LOOKBACK
    for r in records([dg.DagsterRunStatus.FAILURE], updated_after=since):
        failed[hour(r)] = failed.get(hour(r), 0) + 1
    return RunsNow(frozenset(h for h in waiting if h), started, failed)


def transactions_sensor(poll_seconds: int) -> dg.SensorDefinition:
    """The transactions sensor, ticking every ``poll_seconds`` (FRAUD_POLL_INTERVAL_SECONDS)."""

    @dg.sensor(
        name="transactions_sensor",
        job=scoring_job,
        minimum_interval_seconds=poll_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Polls the transactions API, lands each raw payload, and launches scoring "
        "runs for every landed payload the ledger has not seen.",
    )
    def sensor(
        context: dg.SensorEvaluationContext,
        transactions_api: TransactionsApiResource,
        object_store: ObjectStoreResource,
        warehouse: WarehouseResource,
        mlflow_registry: MlflowResource,
        feed: FeedResource,
    ) -> dg.SensorResult | dg.SkipReason:
        """Land first, then plan: a payload is in storage (or, while storage is down, in the
        local spool) before anything else happens to it. Planning looks at every landed
        payload of the recent hours that the ledger has not seen, so a payload spooled and
        landed late under an older key, or left over by a run's cap, is planned at once."""
        store = object_store.store()
        problems = _land_new_payloads(transactions_api, store, Spool(feed.spool_dir))
        for problem in problems:
            context.log.warning(problem)
        try:
            champion = mlflow_registry.pointer()
        except (registry.RegistryUnavailable, IncompatibleModel) as exc:
            context.log.error(f"payloads landed, none planned: {exc}")
            return dg.SkipReason(f"payloads landed; not planning runs: {exc}")
        if champion is None:
            return dg.SkipReason("payloads landed; waiting for a champion model before scoring")
        return _plan_payloads(context, store, warehouse, problems)

    return sensor


def _plan_payloads(
    context: dg.SensorEvaluationContext,
    store: ObjectStore,
    warehouse: WarehouseResource,
    problems: list[str],
) -> dg.SensorResult | dg.SkipReason:
    now = utc_now()
    hours = hours_since(now - LOOKBACK, now)
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


def _land_new_payloads(api: TransactionsApiResource, store: ObjectStore, spool: Spool) -> list[str]:
    """Flush the spool, then fetch the tick's payloads within one budget and land each."""
    problems: list[str] = []
    try:
        spool.flush(store)
    except Exception as exc:  # noqa: BLE001 - still down: the spool keeps them
        problems.append(
            f"object storage unavailable, {len(spool.pending())} payloads spooled: {redact(exc)}"
        )
    client = api.client()
    deadline = time.monotonic() + api.budget_seconds
    for _ in range(api.calls_per_tick):
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


def decisions_sensor(tick_seconds: int) -> dg.SensorDefinition:
    """The decisions sensor, ticking every ``tick_seconds`` (FRAUD_DECISIONS_SENSOR_SECONDS)."""

    @dg.sensor(
        name="decisions_sensor",
        job=scoring_job,
        minimum_interval_seconds=tick_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Plans a scoring run for each recent hour whose logged decisions are not "
        "all in scored_transactions; the run imports them.",
    )
    def sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.SensorResult | dg.SkipReason:
        """The plan is made from the log and the table themselves (how many decisions each
        hour has logged and imported), so a repeated tick asks for the same run, and a run
        that did not import everything (its cap, a failure) is followed by another at once."""
        now = utc_now()
        try:
            pending = decision_log.pending_hours(
                warehouse.warehouse(), hours_since(now - DECISIONS_LOOKBACK, now)
            )
        except Exception as exc:  # noqa: BLE001 - the warehouse is down: look again next tick
            return dg.SkipReason(f"cannot read the decision log: {redact(exc)}")
        plans = plan_decision_hours(pending, scoring_runs(context.instance, now))
        if not plans:
            return dg.SkipReason("every logged decision is imported or on its way")
        observations = [
            dg.AssetObservation(
                asset_key="decision_log",
                metadata={"hour": hour, "logged": logged, "imported": imported},
            )
            for hour, (logged, imported) in pending.items()
        ]
        return dg.SensorResult(run_requests=plan_runs(plans), asset_events=observations)

    return sensor
