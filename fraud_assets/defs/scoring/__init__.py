"""Scoring: what the API brought, what the decision service and stream consumer decided, every
decision in scored_transactions, and the checks that nothing is lost on the way."""

import sys

import dagster as dg

from fraud_assets.defs.scoring.decisions import decision_log_asset
from fraud_assets.defs.scoring.jobs import scoring_job
from fraud_assets.defs.scoring.sensors import decisions_sensor, transactions_sensor
from fraud_assets.defs.scoring.stream import stream_sensor, transaction_stream
from fraud_assets.settings import Settings

#: This folder's name: the group of every asset in it.
GROUP = __name__.rsplit(".", 1)[-1]


def definitions(settings: Settings) -> dg.Definitions:
    """Every asset and check in this folder (found, grouped by the folder), its jobs, and its
    sensors and schedules as configured."""
    package = sys.modules[__name__]
    return dg.Definitions(
        assets=[
            *dg.load_assets_from_package_module(package, group_name=GROUP),
            decision_log_asset,  # written outside Dagster: specs, not found by the loader
            transaction_stream,
        ],
        asset_checks=dg.load_asset_checks_from_package_module(package),
        jobs=[scoring_job],
        sensors=[
            transactions_sensor(settings.poll_interval_seconds),
            decisions_sensor(settings.decisions_sensor_seconds),
            stream_sensor(settings.stream_sensor_seconds),
        ],
    )
