"""The loop's automation: alerts from failed checks and runs, retraining on a schedule and
when performance or drift alerts fire, monitoring every few minutes."""

import json

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
)

from fraud_assets.defs.jobs import (
    ACTIVE,
    monitoring_job,
    recalibration_job,
    retraining_job,
)
from fraud_assets.defs.resources import MlflowResource, MonitoringResource, WarehouseResource
from fraud_assets.lib import registry
from fraud_assets.lib.alerts import Alert, alert_key, raise_alerts, window_start
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.features import IncompatibleModel
from fraud_assets.settings import load_settings

#: The checks that alert, and what each alert starts.
WATCHED: dict[tuple[str, str], str | None] = {
    ("live_performance", "flag_rate_within_bounds"): "recalibration",
    ("live_performance", "model_performance_holding"): "retraining",
    ("feature_drift", "drift_under_threshold"): "retraining",
    ("live_transactions", "live_data_fresh"): None,
    ("live_transactions", "payloads_reconciled"): None,
    ("scored_transactions", "scored_transactions_complete"): None,
    ("live_transactions", "no_quarantined_payloads"): None,
}
JOBS = {"recalibration": recalibration_job, "retraining": retraining_job}


@dg.sensor(
    jobs=[retraining_job, recalibration_job],
    minimum_interval_seconds=load_settings().alerts_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns failed asset checks into alerts (one per condition per window, to "
    "FRAUD_ALERT_WEBHOOK_URL or the log) and starts recalibration (flag rate out of bounds) or "
    "retraining (performance or drift) when they fire.",
)
def alerts_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    monitoring: MonitoringResource,
) -> dg.SensorResult | dg.SkipReason:
    seen: dict[str, int] = json.loads(context.cursor or "{}")
    keys = [dg.AssetCheckKey(dg.AssetKey(a), c) for a, c in WATCHED]
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    alerts, triggers, cursor = [], [], dict(seen)
    for key, record in latest.items():
        name = f"{key.asset_key.to_user_string()}:{key.name}"
        if record is None or record.id <= seen.get(name, 0):
            continue
        if record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES:
            continue  # still running: no evaluation yet, look again on the next tick
        cursor[name] = record.id
        evaluation = (
            record.event.dagster_event.asset_check_evaluation_data if record.event else None
        )
        if evaluation is None or evaluation.passed:
            continue
        reason = evaluation.metadata.get("reason")
        alerts.append(
            Alert(
                condition=f"check:{name}",
                message=str(reason.value if reason else "check failed"),
                severity="warning" if evaluation.severity.value == "WARN" else "error",
            )
        )
        action = WATCHED[(key.asset_key.to_user_string(), key.name)]
        if action:
            triggers.append(action)
    if not alerts:
        return dg.SkipReason("no new failed checks")
    now = utc_now()
    sent = raise_alerts(
        warehouse.warehouse(),
        alerts,
        now,
        monitoring.alert_window_minutes,
        monitoring.alert_webhook_url,
    )
    window = window_start(now, monitoring.alert_window_minutes)
    requests = [
        dg.RunRequest(
            job_name=JOBS[action].name,
            run_key=alert_key(action, window),
            tags={
                "fraud/reason": f"{action} after alerts: "
                + ", ".join(a.condition for a in sent)[:200]
            },
        )
        for action in sorted(set(triggers))
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns every failed run into an alert (one per job per window).",
)
def run_failure_alerts(
    context: dg.RunFailureSensorContext,
    warehouse: WarehouseResource,
    monitoring: MonitoringResource,
) -> None:
    run = context.dagster_run
    raise_alerts(
        warehouse.warehouse(),
        [Alert(f"run:{run.job_name}", f"run {run.run_id} failed: {context.failure_event.message}")],
        utc_now(),
        monitoring.alert_window_minutes,
        monitoring.alert_webhook_url,
    )


@dg.schedule(
    job=monitoring_job,
    cron_schedule=load_settings().monitoring_cron,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Live performance, drift and the data checks (FRAUD_MONITORING_CRON, every "
    "ten minutes by default), once there is a champion to monitor.",
)
def monitoring_schedule(
    context: dg.ScheduleEvaluationContext, mlflow_registry: MlflowResource
) -> dg.RunRequest | dg.SkipReason:
    """Skips while the registry has no champion (a new platform still training its first
    model): there is nothing to measure, and a failed run would only raise a false alarm. An
    unreachable registry does not skip: the run fails and alerts. Runs never pile up: a tick
    skips while the previous monitoring run is queued or running."""
    try:
        champion = registry.champion_pointer(
            mlflow_registry.tracking_uri, mlflow_registry.model_name
        )
    except (registry.RegistryUnavailable, IncompatibleModel):
        champion = "unknown"  # the run goes ahead, fails loudly and alerts
    if champion is None:
        return dg.SkipReason("no champion model yet: nothing to monitor")
    active = context.instance.get_runs(
        dg.RunsFilter(job_name=monitoring_job.name, statuses=ACTIVE), limit=1
    )
    if active:
        return dg.SkipReason(f"monitoring run {active[0].run_id} has not finished yet")
    return dg.RunRequest(run_key=context.scheduled_execution_time.isoformat())


retraining_schedule = dg.ScheduleDefinition(
    job=retraining_job,
    cron_schedule=load_settings().retrain_cron,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retrain both candidates on the training data plus labelled live rows "
    "(FRAUD_RETRAIN_CRON, daily by default).",
)
