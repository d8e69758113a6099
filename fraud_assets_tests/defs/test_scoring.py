"""The live path: the sensor lands payloads and plans runs; runs score every row exactly once."""

import contextlib
import json

import dagster as dg
import polars as pl
import pytest
import requests

from fraud_assets.definitions import defs
from fraud_assets.lib import registry
from fraud_assets.lib.landing import LANDING_PREFIX, QUARANTINE_PREFIX, hour_of_key, hour_prefix
from fraud_assets_tests.helpers.platform import (
    TRAINING_ASSETS,
    landed_trans_nums,
    make_platform,
    run,
    sensor,
    tables,
    tick,
    with_settings,
)

pytestmark = pytest.mark.integration


def test_sensor_lands_payloads_before_it_plans_a_run(trained) -> None:
    result = tick(trained)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    store = trained.resources["object_store"].store()
    keys = list(store.list(hour_prefix(request.partition_key)))
    assert keys and result.cursor == max(keys)
    assert request.run_key.startswith(f"{request.partition_key}/{keys[-1].rsplit('/', 1)[-1]}/")
    quiet = with_settings(trained, calls_per_tick=0)
    again = tick(quiet, result.cursor)  # nothing new landed or ran: the same run is asked for
    assert request.run_key in {r.run_key for r in again.run_requests}


def test_scoring_run_scores_every_landed_row_once_and_reruns_change_nothing(trained) -> None:
    request = tick(trained).run_requests[0]
    assert run(trained, request).success
    live, scored = tables(trained)
    landed = landed_trans_nums(trained)
    assert set(live["trans_num"]) == landed == set(scored["trans_num"])
    first = scored.sort("trans_num")

    assert run(trained, request).success  # a retried run or a backfill of the same partition
    live2, scored2 = tables(trained)
    assert live2.height == live.height and scored2.height == scored.height
    assert (
        scored2.sort("trans_num")
        .select("fraud_probability")
        .equals(first.select("fraud_probability"))
    )


def test_scored_rows_carry_the_decision_and_its_provenance(trained, dataset) -> None:
    request = tick(trained).run_requests[0]
    assert run(trained, request).success
    _, scored = tables(trained)
    champ = registry.get_champion(trained.resources["mlflow_registry"].tracking_uri, "fraud_rf")
    assert set(scored["model_version"]) <= {champ.version}
    assert (scored["is_flagged"] == (scored["fraud_probability"] >= scored["threshold"])).all()
    assert set(scored["feature_set_version"]) == {"arrival-v1"}
    assert set(scored["feed_semantics"]) == set(scored["event_time_source"]) == {"arrival"}
    assert (scored["event_time"] == scored["arrived_at"]).all()  # no true time: arrival
    assert scored["scored_at"].null_count() == 0
    labels = dataset.canonical.select("trans_num", truth="is_fraud")
    joined = scored.join(labels, on="trans_num")
    assert joined.height == scored.height
    assert (joined["label_is_fraud"] == joined["truth"]).all()  # delayed label kept as is


def test_a_repeated_tick_never_duplicates_a_row(trained) -> None:
    first = tick(trained)
    again = tick(trained, cursor=None)  # the same tick evaluated twice: its cursor was lost
    for request in [*first.run_requests, *again.run_requests]:
        assert run(trained, request).success
    live, scored = tables(trained)
    assert live["trans_num"].is_unique().all() and scored["trans_num"].is_unique().all()
    assert set(scored["trans_num"]) == landed_trans_nums(trained)


def test_a_tick_adds_no_run_behind_one_that_has_not_started(trained) -> None:
    """Runs coalesce: while a scoring run of the hour is queued, a tick lands new payloads
    and moves its cursor but plans no second run; the queued run, once it starts, scores
    every payload landed before it."""
    instance = dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(instance=instance, resources=trained.resources) as context:
        first_tick = sensor("transactions_sensor")(context)
    [first] = first_tick.run_requests
    queued = instance.create_run_for_job(
        defs.resolve_job_def("scoring_job"),
        tags={"dagster/partition": first.partition_key, **first.tags},
        status=dg.DagsterRunStatus.NOT_STARTED,  # queued runs need a code location
    )
    assert queued.status == dg.DagsterRunStatus.NOT_STARTED
    with dg.build_sensor_context(
        instance=instance, cursor=None, resources=trained.resources
    ) as context:
        second = sensor("transactions_sensor")(context)
    assert second.cursor > first_tick.cursor  # its new payloads are left to the queued run
    assert [r for r in second.run_requests if r.partition_key == first.partition_key] == []
    assert run(trained, first).success  # the queued run, when it starts
    live, scored = tables(trained)
    assert set(scored["trans_num"]) == landed_trans_nums(trained)
    assert scored["trans_num"].is_unique().all()


def test_bad_payloads_go_to_quarantine_and_never_become_rows(trained, standin_url) -> None:
    requests.post(f"{standin_url}/_control/faults", params={"kinds": "html"}, timeout=5)
    request = tick(trained).run_requests[0]
    requests.post(f"{standin_url}/_control/faults", params={"kinds": "wrong_columns"}, timeout=5)
    tick(trained)
    result = run(trained, request)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks["no_quarantined_payloads"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    store = trained.resources["object_store"].store()
    reasons = [json.loads(store.get_bytes(k))["reason"] for k in store.list(QUARANTINE_PREFIX)]
    assert any("not JSON" in r for r in reasons) and any("lacks columns" in r for r in reasons)
    live, _ = tables(trained)
    assert live.filter(pl.col("amt").is_null() | pl.col("trans_num").is_null()).height == 0


def test_sensor_survives_an_api_that_is_down(tmp_path, standin_url) -> None:
    with pytest.MonkeyPatch.context() as mp:
        platform = make_platform(mp, tmp_path, "http://127.0.0.1:9")
        result = tick(platform)
    assert isinstance(result, dg.SkipReason)


def test_scoring_without_a_champion_fails_with_a_clear_message(tmp_path, standin_url) -> None:
    with pytest.MonkeyPatch.context() as mp:
        platform = make_platform(mp, tmp_path, standin_url)
        store = platform.resources["object_store"].store()
        assert isinstance(tick(platform), dg.SkipReason)  # lands, but waits for a champion
        assert list(store.list(LANDING_PREFIX))
        hour = hour_of_key(next(iter(store.list(LANDING_PREFIX))))
        result = run(platform, dg.RunRequest(partition_key=hour), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "has no 'fraud_rf@champion'" in failure.event_specific_data.error.message


def test_a_new_champion_rescores_a_partition_when_it_is_rerun(trained) -> None:
    request = tick(trained).run_requests[0]
    assert run(trained, request).success
    before = tables(trained)[1].filter(pl.col("batch_hour") == request.partition_key)
    training = [defs.get_assets_def(k) for k in TRAINING_ASSETS]
    # a margin of -1 lets any candidate through: this test is about re-scoring, not the gate
    config = {
        "ops": {
            "rf_model": {
                "config": {"n_estimators": 40, "n_jobs": 2, "random_state": 99, "ap_margin": -1.0}
            }
        }
    }
    assert dg.materialize(
        training,
        selection=["rf_model", "champion_model"],
        resources=trained.resources,
        run_config=config,
    ).success
    new = registry.get_champion(trained.resources["mlflow_registry"].tracking_uri, "fraud_rf")
    assert new.version != before["model_version"][0]

    assert run(trained, request).success  # the backfill of this partition
    after = tables(trained)[1].filter(pl.col("batch_hour") == request.partition_key)
    assert after.height == before.height
    assert set(after["model_version"]) == {new.version}


def test_payloads_one_at_a_time_through_the_live_assets_match_the_evaluation_batch(
    trained, dataset
) -> None:
    """The parity the evaluation relies on: rows sent one API payload at a time through the
    live assets (real landing, parse and scoring runs, random arrival) get exactly the
    features the evaluation protocol computes for the same payloads in one batch."""
    from pathlib import Path

    from fraud_assets.lib.evaluation import simulate_api
    from fraud_assets.lib.lake import SERVED_PREFIX
    from fraud_assets.lib.landing import Feed, parse_payloads
    from fraud_assets.lib.serving import FrameState, score_rows
    from fraud_assets_tests.helpers.data import SPLIT

    test = dataset.canonical.filter(pl.col("event_time") >= SPLIT)
    payloads = simulate_api(test, 12, seed=7)
    store = trained.resources["object_store"].store()
    for key, body in payloads:  # each payload its own landing and scoring run
        store.put_bytes(key, body)
        assert run(trained, dg.RunRequest(partition_key=hour_of_key(key))).success
    hours = {hour_of_key(key) for key, _ in payloads}
    online = pl.concat(
        [store.get_parquet(k) for h in hours for k in store.list(hour_prefix(h, SERVED_PREFIX))]
    )

    mlflow = trained.resources["mlflow_registry"]
    model, _ = registry.load_champion(mlflow.tracking_uri, "fraud_rf", Path(mlflow.cache_dir))
    history = dataset.canonical.filter(pl.col("event_time") < SPLIT)
    rows = parse_payloads(payloads, Feed("arrival")).rows
    state = FrameState(model.feature_set.build_state(history))
    batch = score_rows(rows, state, model, semantics="arrival").features
    cols = ["trans_num", *model.feature_set.features]
    assert online.height == batch.height == rows.height
    assert online.select(cols).sort("trans_num").equals(batch.select(cols).sort("trans_num"))


def test_monitoring_waits_for_a_champion_but_not_for_a_registry_that_is_down(
    trained, tmp_path
) -> None:  # noqa: ANN001
    with contextlib.ExitStack() as stack:
        _monitoring_schedule_decisions(stack, trained, tmp_path)


def _monitoring_schedule_decisions(stack, trained, tmp_path) -> None:  # noqa: ANN001
    """A new platform still training its first model is not monitored (nothing to measure, no
    false alarm); with a champion, or when the registry cannot be read, the run goes ahead
    (an unreachable registry must fail loudly and alert, not skip quietly); while a
    monitoring run is still going, no other is added behind it."""
    import datetime as dt

    from fraud_assets.definitions import defs
    from fraud_assets.defs.resources import MlflowResource

    instance = stack.enter_context(dg.instance_for_test())

    def evaluate(tracking_uri: str):  # noqa: ANN202
        resource = MlflowResource(
            tracking_uri=tracking_uri, model_name="fraud_rf", cache_dir=str(tmp_path / "cache")
        )
        with dg.build_schedule_context(
            instance=instance,
            resources={"mlflow_registry": resource},
            scheduled_execution_time=dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC),
        ) as context:
            return defs.resolve_schedule_def("monitoring_schedule")(context)

    assert isinstance(evaluate(f"sqlite:///{tmp_path / 'empty.db'}"), dg.SkipReason)
    assert isinstance(evaluate(trained.resources["mlflow_registry"].tracking_uri), dg.RunRequest)
    assert isinstance(evaluate("http://127.0.0.1:9"), dg.RunRequest)
    # a monitoring run still going: the next tick adds none behind it
    instance.create_run_for_job(
        defs.resolve_job_def("monitoring_job"), status=dg.DagsterRunStatus.STARTED
    )
    skipped = evaluate(trained.resources["mlflow_registry"].tracking_uri)
    assert isinstance(skipped, dg.SkipReason) and "has not finished" in skipped.skip_message


def test_a_late_landing_and_a_capped_backlog_are_all_scored_with_no_human_action(
    trained, monkeypatch
) -> None:
    """A payload spooled while the store failed lands later under a key older than the
    cursor, and the backlog is larger than a run's cap: every landed payload is still
    planned, parsed and scored, by ticks and runs alone."""
    from fraud_assets.lib.ingest import LEDGER_TABLE
    from fraud_assets.lib.landing import LEDGER_SCHEMA
    from fraud_assets.lib.storage import LocalObjectStore

    real_put, failures = LocalObjectStore.put_bytes, []

    def flaky_put(self, key: str, data: bytes) -> None:  # noqa: ANN001
        if key.startswith(LANDING_PREFIX) and not failures:
            failures.append(key)
            raise ConnectionError("object store dropped the write")
        real_put(self, key, data)

    monkeypatch.setattr(LocalObjectStore, "put_bytes", flaky_put)
    first = tick(with_settings(trained, calls_per_tick=4, max_payloads_per_run=2))
    assert failures and first.cursor > failures[0]  # spooled: not landed, older than the cursor
    platform = with_settings(trained, calls_per_tick=0, max_payloads_per_run=2)  # API quiet
    cursor = first.cursor
    for _ in range(12):
        result = tick(platform, cursor)
        cursor = result.cursor or cursor
        if not result.run_requests:
            break
        for request in result.run_requests:
            assert run(platform, request).success
    store = trained.resources["object_store"].store()
    landed = set(store.list(LANDING_PREFIX))
    assert failures[0] in landed  # the spooled payload, landed late under its own key
    ledger = trained.resources["warehouse"].warehouse().read(LEDGER_TABLE, LEDGER_SCHEMA)
    assert landed <= set(ledger["payload_key"])
    live, scored = tables(trained)
    assert set(live["trans_num"]) <= set(scored["trans_num"])
    spooled = live.filter(pl.col("payload_key") == failures[0])
    assert spooled.height > 0 and spooled["trans_num"].is_in(scored["trans_num"].implode()).all()
