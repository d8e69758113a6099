"""The code location loads with the mission's assets, jobs and sensors."""

from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.definitions import defs


def test_definitions_hold_the_mission_assets_and_sensors() -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_training_data", "rf_model", "live_transactions", "scored_transactions"} <= keys
    assert {s.name for s in defs.sensors} >= {"transactions_sensor", "training_bootstrap_sensor"}
    assert defs.resolve_job_def("scoring_job").partitions_def is not None
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_a_group_kinds_and_a_description() -> None:
    for node in defs.resolve_asset_graph().asset_nodes:
        assert node.group_name in {"training", "scoring", "monitoring"}, node.key
        assert node.kinds, node.key
        assert node.description and len(node.description) > 40, node.key


def test_production_settings_come_from_the_environment_not_code(monkeypatch) -> None:  # noqa: ANN001
    from fraud_assets.definitions import build_resources

    secret = "postgresql://fraud:s3cret@db.example:5432/fraud"
    monkeypatch.setenv("FRAUD_DATABASE_URL", secret)
    monkeypatch.setenv("FRAUD_S3_BUCKET", "fraud-bucket")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    res = build_resources()
    assert res["object_store"].bucket == "fraud-bucket"
    # Secret-bearing values stay environment references: the UI shows the name, not the value.
    wh_config = res["warehouse"]._get_non_default_public_field_values()  # noqa: SLF001
    assert isinstance(wh_config["url"], dg.EnvVar) and "s3cret" not in repr(wh_config)
    assert (
        res["warehouse"].process_config_and_initialize().describe()
        == "postgresql://fraud:***@db.example:5432/fraud"
    )


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://u:pw@db:5432/x", "postgresql://u:***@db:5432/x"),
        (
            "https://user:token@files.example/fraudTrain.csv",
            "https://user:***@files.example/fraudTrain.csv",
        ),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://mlflow:5000", "http://mlflow:5000"),
    ],
)
def test_passwords_are_masked_wherever_a_uri_is_shown(uri: str, shown: str) -> None:
    from fraud_assets.lib.redaction import redact

    assert redact(uri) == shown


def test_scoring_runs_carry_a_maximum_runtime_that_run_monitoring_enforces() -> None:
    import yaml

    assert int(defs.get_job_def("scoring_job").tags["dagster/max_runtime"]) > 0
    for path in ("dagster.yaml", "deploy/dagster.local.yaml"):
        config = yaml.safe_load((Path(__file__).parents[2] / path).read_text())
        assert config["run_monitoring"]["enabled"] is True, path
        assert config["run_retries"]["enabled"] is True, path


def test_the_loop_is_wired_schedules_sensors_and_jobs() -> None:
    repo = defs.get_repository_def()
    assert {"monitoring_job", "retraining_job", "recalibration_job", "rollback_job"} <= set(
        repo.job_names
    )
    assert {s.name for s in repo.sensor_defs} >= {"alerts_sensor", "run_failure_alerts"}
    retraining = repo.get_job("retraining_job")
    assert {"rf_model", "hgb_model", "champion_model", "live_training_rows"} <= {
        k.path[-1] for k in retraining.asset_layer.executable_asset_keys
    }


SNAPSHOT = Path(__file__).with_name("definitions.snapshot.json")


def graph_snapshot(definitions: dg.Definitions) -> dict[str, list[str]]:
    """Every asset (with its group and upstream assets), check, job, sensor and schedule."""
    graph = definitions.resolve_asset_graph()
    repo = definitions.get_repository_def()
    return {
        "assets": sorted(
            f"{n.key.to_user_string()} [{n.group_name}] <- "
            + ", ".join(sorted(k.to_user_string() for k in n.parent_keys))
            for n in graph.asset_nodes
        ),
        "checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
        "jobs": sorted(j for j in repo.job_names if not j.startswith("__")),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "schedules": sorted(s.name for s in repo.schedule_defs),
    }


def test_the_asset_graph_matches_its_snapshot() -> None:
    """Any change to the graph shows as a diff of definitions.snapshot.json: rewrite it with
    FRAUD_UPDATE_SNAPSHOT=1 and review the diff."""
    import json
    import os

    now = graph_snapshot(defs)
    if os.environ.get("FRAUD_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(now, indent=2) + "\n")
    assert now == json.loads(SNAPSHOT.read_text()), json.dumps(now, indent=2)


def test_groups_come_from_the_domain_folders() -> None:
    for node in defs.resolve_asset_graph().asset_nodes:
        assets = defs.resolve_assets_def(node.key) if node.is_materializable else None
        module = assets.op.compute_fn.decorated_fn.__module__ if assets else ""
        if module.startswith("fraud_assets.defs."):
            assert module.split(".")[2] == node.group_name, (node.key, module)


def test_intervals_and_crons_come_from_the_settings() -> None:
    from fraud_assets.definitions import build_definitions
    from fraud_assets.settings import Settings

    config = Settings(
        _env_file=None,
        poll_interval_seconds=7,
        decisions_sensor_seconds=3,
        alerts_interval_seconds=45,
        monitoring_cron="*/5 * * * *",
        retrain_cron="0 4 * * *",
    )
    built = build_definitions(config)
    assert built.resolve_sensor_def("transactions_sensor").minimum_interval_seconds == 7
    assert built.resolve_sensor_def("decisions_sensor").minimum_interval_seconds == 3
    assert built.resolve_sensor_def("alerts_sensor").minimum_interval_seconds == 45
    assert built.resolve_schedule_def("monitoring_schedule").cron_schedule == "*/5 * * * *"
    assert built.resolve_schedule_def("retraining_schedule").cron_schedule == "0 4 * * *"
