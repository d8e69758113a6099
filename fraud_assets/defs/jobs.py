"""Jobs the sensors launch."""

import dagster as dg

from fraud_assets.defs.scoring.partitions import hourly_partitions

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(
        "raw_training_data", "card_state", "rf_model", "champion_model"
    ),
    description="Fetch the training data, build the card state, train and register a model, "
    "and promote it if it passes the gate.",
)

challenger_job = dg.define_asset_job(
    "challenger_job",
    selection=dg.AssetSelection.assets("hgb_model", "champion_model"),
    description="Train the HistGradientBoosting challenger on the stored training data; it "
    "becomes champion only if it passes the same gate as rf_model.",
)

# In-process: one process per run saves ~2 s a step, which matters for micro-batch latency.
scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets("live_transactions", "scored_transactions"),
    partitions_def=hourly_partitions,
    executor_def=dg.in_process_executor,
    description="Parse one hour's landed payloads and score them with the champion.",
)
