"""Tests of the Dagster wiring (``fraud_assets/defs``): assets, sensors, jobs, faults."""
