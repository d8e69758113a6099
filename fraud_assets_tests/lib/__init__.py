"""Tests of ``fraud_assets/lib``: the pure logic, no Dagster."""
