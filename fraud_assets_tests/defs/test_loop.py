"""The closed loop through Dagster: checks that alert and trigger work, retraining on verdicts,
a registry that cannot be reached, rollback, and re-scoring many hours in one run."""

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from fraud_assets.definitions import defs
from fraud_assets.lib import registry
from fraud_assets.lib.feedback import record_label
from fraud_assets.lib.landing import landing_key
from fraud_assets.lib.schema import ALERTS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets_tests.helpers.platform import (
    TRAINING_ASSETS,
    Platform,
    make_platform,
    run,
    sensor,
    tables,
    tick,
)

pytestmark = pytest.mark.integration


def _assets(*keys: str) -> list:
    return [defs.get_assets_def(k) for k in keys]


def _scored_platform(trained: Platform) -> None:
    cursor = None
    for _ in range(3):
        result = tick(trained, cursor)
        cursor = result.cursor
        for request in result.run_requests:
            assert run(trained, request).success


def test_verdicts_change_the_labels_retraining_uses(trained) -> None:
    _scored_platform(trained)
    _, scored = tables(trained)
    wh = trained.resources["warehouse"].warehouse()
    flipped = scored.head(5)
    for row in flipped.iter_rows(named=True):
        record_label(wh, row["trans_num"], not row["label_is_fraud"], "alice")
    result = dg.materialize(_assets("live_training_rows"), resources=trained.resources)
    rows = result.output_for_node("live_training_rows")
    labels = dict(zip(rows["trans_num"], rows["is_fraud"], strict=True))
    for row in flipped.iter_rows(named=True):
        assert labels[row["trans_num"]] == 1 - row["label_is_fraud"]  # the verdict wins
    kept = scored.filter(~pl.col("trans_num").is_in(flipped["trans_num"].implode()))
    for row in kept.head(20).iter_rows(named=True):
        assert labels[row["trans_num"]] == row["label_is_fraud"]  # else the API's label
    assert set(rows.columns) >= {"card_tx_count", "amt_vs_card_mean", "event_time"}


def test_monitoring_assets_measure_the_champion_and_keep_every_figure(trained) -> None:
    _scored_platform(trained)
    result = dg.materialize(
        _assets("live_performance", "feature_drift"), resources=trained.resources
    )
    assert result.success
    wh = trained.resources["warehouse"].warehouse()
    perf = wh.read("live_performance", {"perf_key": pl.String, "rows": pl.Int64})
    assert perf.height >= 1 and perf["rows"].sum() > 0
    drift = wh.read("feature_drift", {"feature": pl.String, "psi": pl.Float64})
    assert "fraud_probability" in set(drift["feature"]) and "amt" in set(drift["feature"])
    checks = {c.check_name for c in result.get_asset_check_evaluations()}
    assert checks == {
        "flag_rate_within_bounds",
        "model_performance_holding",
        "drift_under_threshold",
    }


def test_a_failed_check_alerts_once_and_starts_its_correction(trained) -> None:
    wh = trained.resources["warehouse"].warehouse()
    champ = registry.get_champion(trained.resources["mlflow_registry"].tracking_uri, "fraud_rf")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    n = 400
    flood = pl.DataFrame(  # the champion suddenly flags everything
        {
            "trans_num": [f"flood{i:04d}" for i in range(n)],
            "event_time": [now] * n,
            "cc_num": ["4000000000000000"] * n,
            "merchant": ["m"] * n,
            "category": ["home"] * n,
            "amt": [50.0] * n,
            "event_time_source": ["arrival"] * n,
            "arrived_at": [now - dt.timedelta(minutes=5)] * n,
            "fraud_probability": [0.9] * n,
            "expected_loss": [45.0] * n,
            "is_flagged": [True] * n,
            "threshold": [0.1] * n,
            "model_name": ["fraud_rf"] * n,
            "model_version": [champ.version] * n,
            "feature_set_version": [champ.feature_set_version] * n,
            "feed_semantics": ["arrival"] * n,
            "scored_at": [now] * n,
            "label_is_fraud": [0] * n,
            "batch_hour": ["2026-01-01-00:00"] * n,
            "decided_by": ["poll"] * n,
        },
        schema=SCORED_TRANSACTIONS_SCHEMA,
    )
    wh.ensure_table("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
    wh.upsert("scored_transactions", flood)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        _assets("live_performance"), resources=trained.resources, instance=instance
    )
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert "flag_rate_within_bounds" in {c.check_name for c in failed}
    with dg.build_sensor_context(instance=instance, resources=trained.resources) as context:
        first = sensor("alerts_sensor")(context)
    assert {r.job_name for r in first.run_requests} >= {"recalibration_job"}
    with dg.build_sensor_context(
        instance=instance, resources=trained.resources, cursor=first.cursor
    ) as context:
        again = sensor("alerts_sensor")(context)  # the next tick: nothing new, no second alert
    assert isinstance(again, dg.SkipReason)
    alerts = wh.read("alerts", ALERTS_SCHEMA)
    flag_alerts = alerts.filter(pl.col("condition").str.contains("flag_rate_within_bounds"))
    assert flag_alerts.height == 1 and "outside" in flag_alerts["message"][0]


@pytest.fixture
def unreachable_registry(tmp_path, standin_url, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.MonkeyPatch.context() as mp:
        yield make_platform(
            mp, tmp_path, standin_url, MLFLOW_TRACKING_URI="http://analyst:Hunter2pw@127.0.0.1:9"
        )


def test_an_unreachable_registry_starts_no_training_and_promotes_nothing(
    unreachable_registry,
) -> None:
    platform = unreachable_registry
    with (
        dg.build_sensor_context(
            instance=dg.DagsterInstance.ephemeral(), resources=platform.resources
        ) as context,
        pytest.raises(registry.RegistryUnavailable) as info,
    ):
        sensor("training_bootstrap_sensor")(context)
    assert "Hunter2pw" not in str(info.value) and "unavailable" in str(info.value)
    result = dg.materialize(
        _assets(*TRAINING_ASSETS),
        resources=platform.resources,
        run_config={"ops": {"rf_model": {"config": {"n_estimators": 5, "n_jobs": 1}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "rf_model"
    error = failure.event_specific_data.error.to_string()
    assert "no training without the registry" in error and "unavailable" in error
    assert "Hunter2pw" not in json.dumps(error)
    assert "champion_model" not in {
        e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
    }


def test_an_unreachable_registry_lands_payloads_but_plans_no_scoring(unreachable_registry) -> None:
    result = tick(unreachable_registry)
    assert isinstance(result, dg.SkipReason) and "not planning" in result.skip_message
    store = unreachable_registry.resources["object_store"].store()
    assert list(store.list("landing/"))  # nothing lost: the payload is landed


def test_rollback_restores_the_previous_champion_and_records_why(tmp_path, standin_url) -> None:
    with pytest.MonkeyPatch.context() as mp:
        platform = make_platform(mp, tmp_path, standin_url)
        weak = {
            "n_estimators": 1,
            "max_depth": 1,
            "max_features": 0.05,
            "n_jobs": 1,
            "min_ap": 0.0,
            "min_roc_auc": 0.0,
        }
        strong = {"n_estimators": 30, "n_jobs": 2}
        for config in (weak, strong):
            assert dg.materialize(
                _assets(*TRAINING_ASSETS),
                resources=platform.resources,
                run_config={"ops": {"rf_model": {"config": config}}},
            ).success
        uri = platform.resources["mlflow_registry"].tracking_uri
        assert registry.get_champion(uri, "fraud_rf").version == "2"
        job = defs.get_job_def("rollback_job")
        result = job.execute_in_process(
            run_config={"ops": {"rollback_champion": {"config": {"reason": "bad week"}}}},
            resources=platform.resources,
        )
        assert result.success
        assert registry.get_champion(uri, "fraud_rf").version == "1"
        last = registry.champion_history(uri, "fraud_rf")[-1]
        assert last["version"] == "1" and "rollback from v2: bad week" in last["reason"]


def test_a_backfill_rescores_many_hours_in_one_run_without_duplicates(trained, dataset) -> None:
    from fraud_assets.lib.api import encode_payload
    from fraud_assets.lib.evaluation import api_row
    from fraud_assets_tests.helpers.data import SPLIT

    store = trained.resources["object_store"].store()
    rows = api_row(dataset.canonical.filter(pl.col("event_time") >= SPLIT)).head(9)
    hours = [dt.datetime(2026, 2, 1, h) for h in (3, 4, 5)]
    for i in range(9):
        arrived = hours[i % 3] + dt.timedelta(minutes=i)
        ms = int(arrived.replace(tzinfo=dt.UTC).timestamp() * 1000)
        store.put_bytes(landing_key(arrived), encode_payload(rows[i], [i], [ms]))
    keys = [h.strftime("%Y-%m-%d-%H:00") for h in hours]
    for key in keys:
        assert run(trained, dg.RunRequest(partition_key=key)).success
    before = tables(trained)[1].filter(pl.col("batch_hour").is_in(keys))
    # a new champion, then one run over the three hours
    uri = trained.resources["mlflow_registry"].tracking_uri
    registry.promote(uri, "fraud_rf", _retrained_version(trained), "test", "now")
    result = defs.get_job_def("scoring_job").execute_in_process(
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
        resources=trained.resources,
    )
    assert result.success
    materialized = result.asset_materializations_for_node("scored_transactions")
    assert sorted(m.partition for m in materialized) == keys  # three hours, one run, one step
    after = tables(trained)[1].filter(pl.col("batch_hour").is_in(keys))
    assert after.height == before.height and after["trans_num"].is_unique().all()
    assert set(after["model_version"]) == {registry.get_champion(uri, "fraud_rf").version}
    for key in keys:  # the lake copy of each hour equals the table
        lake = store.get_parquet(f"lake/scored_transactions/hour={key[:13]}/part.parquet")
        assert lake.height == after.filter(pl.col("batch_hour") == key).height


def _retrained_version(trained: Platform) -> str:
    result = dg.materialize(
        _assets(*TRAINING_ASSETS),
        selection=["rf_model"],
        resources=trained.resources,
        run_config={
            "ops": {"rf_model": {"config": {"n_estimators": 12, "n_jobs": 2, "random_state": 5}}}
        },
        raise_on_error=False,
    )
    return str(
        result.asset_materializations_for_node("rf_model")[0].metadata["model_version"].value
    )
