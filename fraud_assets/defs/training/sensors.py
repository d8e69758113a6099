"""Start training by itself when the registry has no champion, so a fresh install scores."""

import time

import dagster as dg

from fraud_assets.defs.resources import MlflowResource
from fraud_assets.defs.runs import ACTIVE
from fraud_assets.defs.training.jobs import training_job
from fraud_assets.lib.features import IncompatibleModel

#: A failed bootstrap is retried once per this many seconds, not on every tick.
RETRY_SECONDS = 600


@dg.sensor(
    job=training_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches training_job when no champion model exists and none is training.",
)
def training_bootstrap_sensor(
    context: dg.SensorEvaluationContext, mlflow_registry: MlflowResource
) -> dg.RunRequest | dg.SkipReason:
    # RegistryUnavailable propagates: the tick fails loudly, and no training starts on a
    # registry that cannot be seen (it may well hold a champion). A champion whose decision
    # tags cannot be served is as good as none: training replaces it through the gate.
    try:
        if mlflow_registry.pointer():
            return dg.SkipReason("a champion model exists")
        reason = "no champion model"
    except IncompatibleModel as exc:
        reason = f"the champion is unusable: {exc}"[:200]
    active = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=training_job.name, statuses=ACTIVE), limit=1
    )
    if active:
        return dg.SkipReason(f"training run {active[0].run_id} is in progress")
    return dg.RunRequest(
        run_key=f"bootstrap-{int(time.time() // RETRY_SECONDS)}",
        tags={"fraud/reason": reason},
    )
