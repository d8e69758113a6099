"""The decision log in Dagster: the asset that the decision service and the stream consumer
write outside Dagster's runs, the sensor that imports what they decided into
``scored_transactions``, and the checks that it is fresh and fully imported."""

import datetime as dt

import dagster as dg

from fraud_assets.defs.jobs import scoring_job
from fraud_assets.defs.resources import MonitoringResource, WarehouseResource
from fraud_assets.defs.scoring.sensors import plan_runs, scoring_runs
from fraud_assets.lib import decision_log
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.lake import hours_since
from fraud_assets.lib.monitoring import Verdict
from fraud_assets.lib.planning import plan_decision_hours
from fraud_assets.lib.redaction import redact

#: Decisions are logged under the hour they arrive in; a replica's clock may lag a little.
IMPORT_LOOKBACK = dt.timedelta(hours=2)
#: How far back the reconciliation check looks for decisions not imported.
RECONCILE_LOOKBACK = dt.timedelta(days=2)

decision_log_asset = dg.AssetSpec(
    "decision_log",
    group_name="scoring",
    kinds={"sql"},
    description="Every decision the decision service (HTTP) and the stream consumer answered, "
    "written to the warehouse table `decision_log` before the answer left, with the served "
    "feature row: one row per trans_num, the first decision standing. Written outside "
    "Dagster's runs; decisions_sensor imports it into scored_transactions.",
    metadata={"table": decision_log.LOG_TABLE},
)


@dg.sensor(
    job=scoring_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Plans a scoring run for each recent hour whose logged decisions are not all "
    "in scored_transactions; the run imports them.",
)
def decisions_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    """The plan is made from the log and the table themselves (how many decisions each hour
    has logged and imported), so a repeated tick asks for the same run, and a run that did
    not import everything (its cap, a failure) is followed by another at once."""
    now = utc_now()
    try:
        pending = decision_log.pending_hours(
            warehouse.warehouse(), hours_since(now - IMPORT_LOOKBACK, now)
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


def _check(name: str, verdict: Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key="decision_log",
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"reason": verdict.reason, **{k: float(v) for k, v in verdict.figures.items()}},
    )


@dg.asset_check(
    asset="decision_log",
    description="A decision was logged within the last FRAUD_FRESHNESS_MINUTES (passes while "
    "no decision service or stream consumer has ever logged one).",
)
def decision_log_fresh(
    warehouse: WarehouseResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    newest = decision_log.newest(warehouse.warehouse())
    limit = dt.timedelta(minutes=monitoring.freshness_minutes)
    if newest is None:
        return _check("decision_log_fresh", Verdict(True, "no decision has been logged yet", {}))
    age = utc_now() - newest
    verdict = Verdict(
        age <= limit,
        f"the newest logged decision is {age.total_seconds() / 60:.1f} minutes old "
        f"(bound {monitoring.freshness_minutes})",
        {"age_minutes": age.total_seconds() / 60},
    )
    return _check("decision_log_fresh", verdict)


@dg.asset_check(
    asset="decision_log",
    description="Every decision logged in the last two days, but the last few minutes, is in "
    "scored_transactions.",
)
def decisions_imported(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    now = utc_now()
    hours = hours_since(now - RECONCILE_LOOKBACK, now - dt.timedelta(minutes=10))
    pending = decision_log.pending_hours(warehouse.warehouse(), hours)
    missing = sum(logged - imported for logged, imported in pending.values())
    verdict = Verdict(
        missing == 0,
        f"{missing} logged decisions in {len(pending)} hours are not in scored_transactions"
        + (f": materialize scored_transactions for {sorted(pending)[:5]}" if missing else ""),
        {"missing": missing, "hours": len(pending)},
    )
    return _check("decisions_imported", verdict)
