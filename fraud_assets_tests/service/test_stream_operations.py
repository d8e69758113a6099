"""The stream path in operation on real brokers: two workers sharing one group, a champion
promoted mid-stream, Dagster observing the stream, and the stand-in publishing what a worker
decides. Counted against the decision log."""

from __future__ import annotations

import pytest

from fraud_assets.lib.streams import Topics
from fraud_assets.testing import register
from fraud_assets_tests.helpers.service import Deployment
from fraud_assets_tests.helpers.stream import (
    count,
    messages,
    publish,
    run,
    wait_logged,
    wait_serving,
    with_stream,
    worker,
)
from fraud_assets_tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["nats", "redis"], indirect=True)
def test_two_workers_share_the_stream_and_neither_decides_what_the_other_did(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,  # noqa: ANN001
) -> None:
    sent, ids = messages(halves[1].head(300), 2, "s")
    with worker(stream_env, "a"), worker(stream_env, "b"):  # both in the group, then the stream
        publish(broker, topics, sent)
        rows = wait_logged(stream_env, ids)
        wait_until(lambda: count(broker, topics, topics.output) >= len(ids))
        published = count(broker, topics, topics.output)
    assert rows.height == len(ids) and rows["trans_num"].is_unique().all()
    assert rows["client"].n_unique() == 2  # both workers decided some
    assert published == len(ids)  # one decision published per transaction: none twice


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_champion_promoted_mid_stream_takes_over_with_no_gap(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,
    models,  # noqa: ANN001
) -> None:
    first_half, ids_a = messages(halves[1].head(200), 1, "a")
    second_half, ids_b = messages(halves[1].head(200), 1, "b")
    with worker(stream_env, "a"):
        publish(broker, topics, first_half)
        wait_logged(stream_env, ids_a)
        second = register(models["arrival-b"], stream_env.root, stream_env.tracking_uri, "b")
        wait_serving(stream_env, "a", second)  # within the refresh interval, and a load
        publish(broker, topics, second_half)
        rows = wait_logged(stream_env, ids_a + ids_b)
    assert rows.height == len(ids_a) + len(ids_b)  # no gap: every one decided
    versions = dict(zip(rows["trans_num"], rows["model_version"], strict=True))
    assert {versions[t] for t in ids_b} == {second}
    assert len({versions[t] for t in ids_a}) == 1 and second not in {versions[t] for t in ids_a}


@pytest.mark.parametrize("broker", ["nats", "redis"], indirect=True)
def test_dagster_sees_the_streams_lag_and_dead_letters_and_its_checks_say_so(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    halves,  # noqa: ANN001
) -> None:
    import dagster as dg

    from fraud_assets.defs.resources import StreamResource, WarehouseResource
    from fraud_assets.defs.scoring.stream import (
        dead_letters_under_rate,
        stream_lag_under_bound,
        stream_sensor,
    )

    sent, _ = messages(halves[1].head(50), 1, "o")
    publish(broker, topics, sent)
    run(with_stream(broker, topics, lambda s: s.publish(topics.dead_letters, [b"{}"] * 2)))
    wh = stream_env.warehouse
    resources = {
        "stream": StreamResource(
            url=broker, input=topics.input, output=topics.output,
            dead_letters=topics.dead_letters, group=f"group-{topics.input}",
            lag_bound=10, dead_letter_rate=0.5,
        ),
        "warehouse": WarehouseResource(url=wh.url, db_schema=wh.schema),
    }  # fmt: skip
    with dg.build_sensor_context(resources=resources) as context:
        result = stream_sensor(30)(context)
    [observation] = result.asset_events
    assert observation.metadata["consumer_lag"].value == 50
    assert observation.metadata["dead_letters"].value == 2
    lag = stream_lag_under_bound(**resources)  # 50 waiting, against a bound of 10
    dead = dead_letters_under_rate(**resources)  # 2 dead of 2 seen, against half
    assert not lag.passed and "50 transactions wait" in lag.metadata["reason"].value
    assert not dead.passed and lag.asset_key == dead.asset_key == observation.asset_key


@pytest.mark.parametrize("broker", ["nats", "redis"], indirect=True)
def test_the_stand_ins_published_rows_are_decided_once_by_a_worker(
    stream_env: Deployment,
    broker: str,
    topics: Topics,
    dataset,  # noqa: ANN001
) -> None:
    """make run's stream path: the stand-in publishes its rows to the input topic while a
    worker runs; every published transaction is in the decision log once, decided by the
    stream."""
    from fastapi.testclient import TestClient

    from fraud_assets.standin.app import StandinConfig, create_app
    from fraud_assets.standin.publish import PublishConfig

    publish = PublishConfig(url=broker, topic=topics.input, rate=100)
    app = create_app(StandinConfig(data=dataset.test_csv, publish=publish))
    with worker(stream_env, "a"):
        with TestClient(app) as client:
            wait_until(lambda: client.get("/health").json()["publish"]["published"] >= 150)
        ids = [trans_num for trans_num, _ in app.state.publisher.recent()]
        rows = wait_logged(stream_env, ids)
    assert len(ids) >= 150 and len(set(ids)) == len(ids)
    assert rows.height == len(ids) and rows["trans_num"].is_unique().all()
    assert set(rows["decided_by"]) == {"stream"}
    assert count(broker, topics, topics.dead_letters) == 0
