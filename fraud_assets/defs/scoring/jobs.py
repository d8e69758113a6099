"""The scoring job: one hour's landed payloads parsed, scored, and its logged decisions
imported, in one run."""

import dagster as dg

from fraud_assets.defs.scoring.assets import live_transactions, scored_transactions
from fraud_assets.defs.scoring.checks import PLATFORM_CHECKS
from fraud_assets.defs.scoring.partitions import hourly_partitions

#: Scoring runs end within this many seconds or run monitoring terminates them, so a dead run
#: worker never holds the one-scoring-run-at-a-time limit for long.
SCORING_MAX_RUNTIME_SECONDS = 900

# In-process: one process per run saves ~2 s a step, which matters for micro-batch latency.
scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets(live_transactions, scored_transactions)
    - dg.AssetSelection.checks(*PLATFORM_CHECKS),
    partitions_def=hourly_partitions,
    executor_def=dg.in_process_executor,
    tags={"dagster/max_runtime": str(SCORING_MAX_RUNTIME_SECONDS), "fraud/job": "scoring"},
    description="Parse one hour's landed payloads, score them with the champion, and import "
    "the hour's logged decisions.",
)
