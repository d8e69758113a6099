"""Rolling back: the champion alias given back to the previous champion, with why."""

import dagster as dg

from fraud_assets.defs.resources import MlflowResource


class RollbackConfig(dg.Config):
    """Why the champion is being rolled back (recorded in the champion history)."""

    reason: str


@dg.op
def rollback_champion(
    context: dg.OpExecutionContext, config: RollbackConfig, mlflow_registry: MlflowResource
) -> None:
    """Give the champion alias back to the previous champion and record why."""
    before, after = mlflow_registry.rollback(config.reason)
    context.log.info(f"champion rolled back from v{before} to v{after}: {config.reason}")
    context.add_output_metadata({"from_version": before, "to_version": after})


@dg.job(
    description="Restore the previous champion (config: reason). Scoring picks it up at "
    "its next run; re-score with a backfill of scored_transactions."
)
def rollback_job() -> None:
    rollback_champion()
