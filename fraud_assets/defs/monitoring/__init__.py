"""Monitoring and the closed loop: live performance, drift, alerts, recalibration, rollback."""

import sys

import dagster as dg

from fraud_assets.defs.monitoring.jobs import monitoring_job, recalibration_job
from fraud_assets.defs.monitoring.rollback import rollback_job
from fraud_assets.defs.monitoring.sensors import (
    alerts_sensor,
    monitoring_schedule,
    retraining_schedule,
    run_failure_alerts,
)
from fraud_assets.settings import Settings

#: This folder's name: the group of every asset in it.
GROUP = __name__.rsplit(".", 1)[-1]


def definitions(settings: Settings) -> dg.Definitions:
    """Every asset and check in this folder (found, grouped by the folder), its jobs, and its
    sensors and schedules as configured."""
    package = sys.modules[__name__]
    return dg.Definitions(
        assets=dg.load_assets_from_package_module(package, group_name=GROUP),
        asset_checks=dg.load_asset_checks_from_package_module(package),
        jobs=[monitoring_job, recalibration_job, rollback_job],
        sensors=[alerts_sensor(settings.alerts_interval_seconds), run_failure_alerts],
        schedules=[
            monitoring_schedule(settings.monitoring_cron),
            retraining_schedule(settings.retrain_cron),
        ],
    )
