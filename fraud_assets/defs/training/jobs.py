"""Training's jobs: the first training, the loop's retraining, the challenger alone."""

import dagster as dg

from fraud_assets.defs.training.assets import (
    card_state,
    champion_model,
    hgb_model,
    live_training_rows,
    raw_training_data,
    rf_model,
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(
        raw_training_data, card_state, live_training_rows, rf_model, champion_model
    ),
    description="Fetch the training data, build the card state, train and register a model, "
    "and promote it if it passes the gate.",
)

retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets(live_training_rows, rf_model, hgb_model, champion_model),
    description="The loop's retraining: both candidates (rf_model and the hgb_model challenger) "
    "on the training data plus the labelled live rows as served; champion_model promotes the "
    "best one that passes the gate, or nothing.",
)

challenger_job = dg.define_asset_job(
    "challenger_job",
    selection=dg.AssetSelection.assets(live_training_rows, hgb_model, champion_model),
    description="Train the HistGradientBoosting challenger alone; it becomes champion only if "
    "it passes the same gate as rf_model.",
)
