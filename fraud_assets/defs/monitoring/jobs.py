"""Monitoring's jobs: the measurements and platform checks, and the recalibration."""

import dagster as dg

from fraud_assets.defs.monitoring.assets import feature_drift, live_performance
from fraud_assets.defs.monitoring.calibration import champion_calibration
from fraud_assets.defs.scoring.checks import PLATFORM_CHECKS

# In-process and one at a time (the `fraud/job: monitoring` limit in dagster.yaml): a step
# per process would start several interpreters every few minutes on the scoring machine.
monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.assets(live_performance, feature_drift)
    | dg.AssetSelection.checks(*PLATFORM_CHECKS),
    executor_def=dg.in_process_executor,
    tags={"fraud/job": "monitoring"},
    description="Live performance, drift, freshness, completeness and reconciliation checks.",
)

recalibration_job = dg.define_asset_job(
    "recalibration_job",
    selection=dg.AssetSelection.assets(champion_calibration),
    description="Re-choose the champion's decision on recent labelled live rows.",
)
