"""The loop's automation: alerts from failed checks and runs, retraining on a schedule and
when performance or drift alerts fire, monitoring every few minutes. Each is built from the
settings (``definitions.py``), never from what the environment held at import."""

import json

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
)

from fraud_assets.defs.monitoring.assets import DRIFT_CHECK, FLAG_RATE_CHECK, PERFORMANCE_CHECK
from fraud_assets.defs.monitoring.jobs import monitoring_job, recalibration_job
from fraud_assets.defs.resources import MlflowResource, MonitoringResource, WarehouseResource
from fraud_assets.defs.runs import ACTIVE
from fraud_assets.defs.scoring.assets import QUARANTINE_CHECK
from fraud_assets.defs.scoring.checks import PLATFORM_CHECKS
from fraud_assets.defs.training.jobs import retraining_job
from fraud_assets.lib import registry
from fraud_assets.lib.alerts import Alert, alert_key, raise_alerts, window_start
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.features import IncompatibleModel

#: The checks that alert, and the job each alert starts (None: a person looks).
WATCHED: dict[dg.AssetCheckKey, object] = {
    FLAG_RATE_CHECK.key: recalibration_job,
    PERFORMANCE_CHECK.key: retraining_job,
    DRIFT_CHECK.key: retraining_job,
    QUARANTINE_CHECK.key: None,
    **{check.check_key: None for check in PLATFORM_CHECKS},
}


def _failed_checks(
    context: dg.SensorEvaluationContext, seen: dict[str, int]
) -> tuple[list[Alert], set[str], dict[str, int]]:
    """Alerts for the watched checks that failed since the cursor, the jobs they start, and
    the new cursor."""
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(WATCHED)
    )
    alerts, jobs, cursor = [], set(), dict(seen)
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
        if WATCHED[key] is not None:
            jobs.add(WATCHED[key].name)
    return alerts, jobs, cursor


def alerts_sensor(interval_seconds: int) -> dg.SensorDefinition:
    """Turns failed checks into alerts and starts what they call for, every
    ``interval_seconds`` (FRAUD_ALERTS_INTERVAL_SECONDS)."""

    @dg.sensor(
        name="alerts_sensor",
        jobs=[retraining_job, recalibration_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns failed asset checks into alerts (one per condition per window, to "
        "FRAUD_ALERT_WEBHOOK_URL or the log) and starts recalibration (flag rate out of "
        "bounds) or retraining (performance or drift) when they fire.",
    )
    def sensor(
        context: dg.SensorEvaluationContext,
        warehouse: WarehouseResource,
        monitoring: MonitoringResource,
    ) -> dg.SensorResult | dg.SkipReason:
        alerts, jobs, cursor = _failed_checks(context, json.loads(context.cursor or "{}"))
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
        because = ", ".join(a.condition for a in sent)[:200]
        requests = [
            dg.RunRequest(
                job_name=job,
                run_key=alert_key(job.removesuffix("_job"), window),
                tags={"fraud/reason": f"{job.removesuffix('_job')} after alerts: {because}"},
            )
            for job in sorted(jobs)
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return sensor


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


def monitoring_schedule(cron: str) -> dg.ScheduleDefinition:
    """Monitoring on ``cron`` (FRAUD_MONITORING_CRON), once there is a champion to monitor."""

    @dg.schedule(
        name="monitoring_schedule",
        job=monitoring_job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Live performance, drift and the data checks (FRAUD_MONITORING_CRON, "
        "every ten minutes by default), once there is a champion to monitor.",
    )
    def schedule(
        context: dg.ScheduleEvaluationContext, mlflow_registry: MlflowResource
    ) -> dg.RunRequest | dg.SkipReason:
        """Skips while the registry has no champion (a new platform still training its first
        model): there is nothing to measure, and a failed run would only raise a false alarm.
        An unreachable registry does not skip: the run fails and alerts. Runs never pile up:
        a tick skips while the previous monitoring run is queued or running."""
        try:
            champion = mlflow_registry.pointer()
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

    return schedule


def retraining_schedule(cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="retraining_schedule",
        job=retraining_job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Retrain both candidates on the training data plus labelled live rows "
        "(FRAUD_RETRAIN_CRON, daily by default).",
    )
