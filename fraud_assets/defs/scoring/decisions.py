"""The decision log in the asset graph: written outside Dagster's runs by the decision service
and the stream consumer, imported into ``scored_transactions`` by ``decisions_sensor``'s runs,
watched by the checks ``decision_log_fresh`` and ``decisions_imported``."""

import dagster as dg

from fraud_assets.lib import decision_log

decision_log_asset = dg.AssetSpec(
    "decision_log",
    group_name=__name__.split(".")[-2],  # its folder's, as for the assets found there
    kinds={"sql"},
    deps=["transaction_stream"],
    description="Every decision the decision service (HTTP) and the stream consumer answered, "
    "written to the warehouse table `decision_log` before the answer left, with the served "
    "feature row: one row per trans_num, the first decision standing. Written outside "
    "Dagster's runs; decisions_sensor imports it into scored_transactions.",
    metadata={"table": decision_log.LOG_TABLE},
)
