"""Training: the labelled data, the card state, the candidates, the gate and the champion."""

import sys

import dagster as dg

from fraud_assets.defs.training.jobs import challenger_job, retraining_job, training_job
from fraud_assets.defs.training.sensors import training_bootstrap_sensor
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
        jobs=[training_job, retraining_job, challenger_job],
        sensors=[training_bootstrap_sensor],
    )
