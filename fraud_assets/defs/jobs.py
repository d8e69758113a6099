"""Jobs the sensors and schedules launch."""

import dagster as dg

from fraud_assets.defs.scoring.partitions import hourly_partitions

#: Statuses of a run that has not ended.
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(
        "raw_training_data", "card_state", "live_training_rows", "rf_model", "champion_model"
    ),
    description="Fetch the training data, build the card state, train and register a model, "
    "and promote it if it passes the gate.",
)

retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets(
        "live_training_rows", "rf_model", "hgb_model", "champion_model"
    ),
    description="The loop's retraining: both candidates (rf_model and the hgb_model challenger) "
    "on the training data plus the labelled live rows as served; champion_model promotes the "
    "best one that passes the gate, or nothing.",
)

challenger_job = dg.define_asset_job(
    "challenger_job",
    selection=dg.AssetSelection.assets("live_training_rows", "hgb_model", "champion_model"),
    description="Train the HistGradientBoosting challenger alone; it becomes champion only if "
    "it passes the same gate as rf_model.",
)

recalibration_job = dg.define_asset_job(
    "recalibration_job",
    selection=dg.AssetSelection.assets("champion_calibration"),
    description="Re-choose the champion's decision on recent labelled live rows.",
)

#: Checks that watch the whole platform: they run with monitoring, never inside a scoring run.
PLATFORM_CHECKS = dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey("live_transactions"), "live_data_fresh"),
    dg.AssetCheckKey(dg.AssetKey("live_transactions"), "payloads_reconciled"),
    dg.AssetCheckKey(dg.AssetKey("scored_transactions"), "scored_transactions_complete"),
    dg.AssetCheckKey(dg.AssetKey("decision_log"), "decision_log_fresh"),
    dg.AssetCheckKey(dg.AssetKey("decision_log"), "decisions_imported"),
)

# In-process and one at a time (the `fraud/job: monitoring` limit in dagster.yaml): a step
# per process would start six interpreters every few minutes on the scoring machine.
monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.assets("live_performance", "feature_drift") | PLATFORM_CHECKS,
    executor_def=dg.in_process_executor,
    tags={"fraud/job": "monitoring"},
    description="Live performance, drift, freshness, completeness and reconciliation checks.",
)

#: Scoring runs end within this many seconds or run monitoring terminates them, so a dead run
#: worker never holds the one-scoring-run-at-a-time limit for long.
SCORING_MAX_RUNTIME_SECONDS = 900

# In-process: one process per run saves ~2 s a step, which matters for micro-batch latency.
scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets("live_transactions", "scored_transactions")
    - PLATFORM_CHECKS,
    partitions_def=hourly_partitions,
    executor_def=dg.in_process_executor,
    tags={"dagster/max_runtime": str(SCORING_MAX_RUNTIME_SECONDS), "fraud/job": "scoring"},
    description="Parse one hour's landed payloads and score them with the champion.",
)
