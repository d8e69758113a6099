"""The decision service over real HTTP, with PostgreSQL card state and the durable decision log:
the one serving path under both semantics, strict requests, auth and limits, the hot
champion."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
import requests

from decision_api.app import Service, create_app
from decision_api.auth import InsecureStartup, new_client
from fraud_assets.lib import decision_log
from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.schema import TRANSACTION_SCHEMA
from fraud_assets.lib.serving import FrameState, score_rows
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.settings import Settings
from fraud_assets.testing import write_card_state
from fraud_assets.testing.servers import serve_app
from fraud_assets_tests.helpers.service import API_FIELDS, Registry, body_of
from fraud_assets_tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration
DECISION_FIELDS = {
    "trans_num", "decision", "fraud_probability", "threshold", "expected_loss", "model_name",
    "model_version", "feature_set_version", "feed_semantics", "server_ms", "repeated",
    "explanation",
}  # fmt: skip


@pytest.fixture
def platform(store: Registry, pg_url: str, pg_schema: str, halves):  # noqa: ANN001, ANN201
    """Settings for a service on this test's registry and PostgreSQL schema, with the card
    state of the training half written there for ``semantics``."""

    def settings(semantics: str = "arrival", **more: object) -> Settings:
        write_card_state(pg_url, halves[0], semantics, pg_schema)
        values = {
            "data_dir_raw": store.root,
            "database_url_raw": pg_url,
            "database_schema": pg_schema,
            "mlflow_tracking_uri_raw": store.uri,
            "feed_semantics": semantics,
            "decision_refresh_seconds": 0.3,
            **more,
        }
        return Settings(_env_file=None, **values)

    return settings


@contextlib.contextmanager
def running(settings: Settings, host: str = "127.0.0.1") -> Iterator[tuple[str, Service]]:
    app = create_app(settings, host=host)
    with serve_app(app) as url:
        yield url, app.state.service


def post(url: str, body: object, **kw: object) -> requests.Response:
    return requests.post(url, json=body, timeout=30, **kw)


def decide_all(url: str, rows: pl.DataFrame, semantics: str) -> list[dict]:
    """Every row decided in time order: batches of 40, every fifth batch one by one."""
    answers: list[dict] = []
    for i, chunk in enumerate(rows.iter_slices(40)):
        bodies = [body_of(r, semantics) for r in chunk.iter_rows(named=True)]
        if i % 5 == 4:
            for body in bodies:
                resp = post(f"{url}/v1/decisions", body)
                assert resp.status_code == 200, resp.text
                answers.append(resp.json())
        else:
            resp = post(f"{url}/v1/decisions/batch", {"transactions": bodies})
            assert resp.status_code == 200, resp.text
            answers += resp.json()["decisions"]
    return answers


@pytest.mark.parametrize("semantics", ["arrival", "payload"])
def test_the_service_decides_exactly_as_score_rows(
    semantics: str,
    store: Registry,
    platform,
    halves,
    pg_url: str,
    pg_schema: str,  # noqa: ANN001
) -> None:
    """Through the service, one request and one micro-batch at a time, every transaction gets
    the features, probability and decision that one ``score_rows`` call over all of them
    gives (for event-time feeds, each sees the earlier ones as its card's history)."""
    train_rows, test_rows = halves
    store.promote(semantics)
    rows = test_rows.head(200)
    with running(platform(semantics)) as (url, svc):
        answers = pl.DataFrame(decide_all(url, rows, semantics))
        model = svc.champion.current().model
    logged = decision_log.read_logged(Warehouse(pg_url, pg_schema), rows["trans_num"].to_list())
    fs = for_semantics(semantics)
    decided_on = logged.select(*TRANSACTION_SCHEMA, "arrived_at").sort("event_time", "trans_num")
    expected = score_rows(
        decided_on, FrameState(fs.build_state(train_rows)), model, semantics=semantics
    )
    want = expected.scored.select(
        "trans_num", "fraud_probability", "threshold",
        decision=pl.when("is_flagged").then(pl.lit("review")).otherwise(pl.lit("approve")),
    )  # fmt: skip
    got = answers.select("trans_num", "fraud_probability", "threshold", "decision")
    assert got.sort("trans_num").equals(want.sort("trans_num"))
    served = decision_log.served_of(logged).sort("trans_num")
    features = expected.features.sort("trans_num")
    for column in fs.features:
        assert served[column].cast(pl.Float64).equals(features[column].cast(pl.Float64)), column
    assert model.runtime is not None  # served by the fast runtime, within 1e-6 of scikit-learn
    slow = score_rows(decided_on, FrameState(fs.build_state(train_rows)),
                      dataclasses.replace(model, runtime=None), semantics=semantics)  # fmt: skip
    p_fast, p_slow = expected.scored["fraud_probability"], slow.scored["fraud_probability"]
    assert np.max(np.abs(p_fast.to_numpy() - p_slow.to_numpy())) <= 1e-6
    assert (expected.scored["is_flagged"] == slow.scored["is_flagged"]).all()


BAD_FIELDS = [
    ("amt", 2_000_000.0),
    ("amt", "12.50"),
    ("amt", True),
    ("cc_num", "4000abcd12345678"),
    ("cc_num", "\u0664" * 16),
    ("category", "casino"),
    ("dob", "1899-12-31"),
    ("dob", "2999-01-01"),
    ("first", "Sc\x1b[31mott"),
    ("street", "x" * 500),
    ("trans_num", "../../etc/passwd"),
    ("lat", 91.0),
    ("city_pop", 1e300),
    ("zip", 1.5),
    ("gender", "Z"),
    ("is_fraud", 7),
    ("unexpected", 1),
]


def test_a_bad_field_gets_a_422_that_names_it_and_nothing_is_decided(
    store: Registry,
    platform,
    halves,
    pg_url: str,
    pg_schema: str,  # noqa: ANN001
) -> None:
    store.promote("arrival")
    good = body_of(halves[1].row(0, named=True))
    missing = {k: v for k, v in good.items() if k != "merchant"}
    cases = [(f, good | {"trans_num": f"bad{i}", f: v}) for i, (f, v) in enumerate(BAD_FIELDS)]
    cases.append(("merchant", missing | {"trans_num": "bad-missing"}))
    with running(platform("arrival", max_amount=1_000_000.0)) as (url, _):
        for field, body in cases:
            resp = post(f"{url}/v1/decisions", body)
            assert resp.status_code == 422, (field, resp.text)
            locs = [e["loc"] for e in resp.json()["detail"]]
            assert any(field in loc for loc in locs), (field, locs)
            batch = post(f"{url}/v1/decisions/batch", {"transactions": [good, body]})
            assert batch.status_code == 422 and any(
                "transactions" in e["loc"] and 1 in e["loc"] for e in batch.json()["detail"]
            ), (field, batch.text)
        assert post(f"{url}/v1/decisions", good).status_code == 200
    trans_nums = [body.get("trans_num", "") for _, body in cases] + [good["trans_num"]]
    logged = decision_log.read_logged(Warehouse(pg_url, pg_schema), trans_nums)
    assert logged["trans_num"].to_list() == [good["trans_num"]]  # only the good one decided


def test_an_event_time_feed_needs_a_plausible_event_time(store, platform, halves) -> None:  # noqa: ANN001
    store.promote("payload")
    row = halves[1].row(0, named=True)
    body = body_of(row, "payload")
    with running(platform("payload")) as (url, _):
        for when in (None, "0001-01-01T00:00:00", "2999-01-01T00:00:00", "yesterday"):
            bad = {k: v for k, v in body.items() if k != "event_time"}
            bad |= {} if when is None else {"event_time": when}
            resp = post(f"{url}/v1/decisions", bad)
            assert resp.status_code == 422 and resp.json()["detail"][0]["loc"][-1] == "event_time"
        assert post(f"{url}/v1/decisions", body).status_code == 200


def test_a_decision_says_nothing_of_the_cards_history_and_explains_by_family(
    store,
    platform,
    halves,  # noqa: ANN001
) -> None:
    store.promote("arrival")
    body = body_of(halves[1].row(0, named=True))
    with running(platform()) as (url, _):
        plain = post(f"{url}/v1/decisions", body).json()
        explained = post(f"{url}/v1/decisions?explain=true", body).json()
    assert set(plain) == DECISION_FIELDS and plain["explanation"] is None
    assert explained["repeated"] and explained["fraud_probability"] == plain["fraud_probability"]
    families = explained["explanation"]
    assert families and all(set(f) == {"family", "contribution"} for f in families)
    assert "amount" in {f["family"] for f in families}


def test_a_repeat_is_answered_with_its_first_decision_and_logged_once(
    store,
    platform,
    halves,
    pg_url: str,
    pg_schema: str,  # noqa: ANN001
) -> None:
    store.promote("arrival")
    body = body_of(halves[1].row(0, named=True))
    with running(platform()) as (url, _):
        first = post(f"{url}/v1/decisions", body).json()
        again = post(f"{url}/v1/decisions", body | {"amt": 999.0}).json()
        both = post(f"{url}/v1/decisions/batch", {"transactions": [body, body]}).json()
    assert not first["repeated"] and again["repeated"]
    for answer in (again, *both["decisions"]):
        assert answer["fraud_probability"] == first["fraud_probability"]
        assert answer["decision"] == first["decision"]
    logged = decision_log.read_logged(Warehouse(pg_url, pg_schema), [body["trans_num"]])
    assert logged.height == 1 and logged["amt"][0] == body["amt"]


def test_clients_need_a_token_and_a_disabled_one_is_refused(store, platform, halves) -> None:  # noqa: ANN001
    store.promote("arrival")
    (alice, alice_entry), (bob, bob_entry) = new_client("alice"), new_client("bob")
    settings = platform(
        decision_clients=f"{alice_entry},{bob_entry}",
        decision_disabled_clients="bob",
        decision_metrics_token="metrics-token-for-the-scraper",
    )
    body = body_of(halves[1].row(0, named=True))
    with running(settings, host="0.0.0.0") as (url, _):
        decide = f"{url}/v1/decisions"
        assert post(decide, body).status_code == 401
        assert (
            post(decide, body, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        )
        assert post(decide, body, headers={"Authorization": f"Bearer {bob}"}).status_code == 403
        ok = post(decide, body, headers={"Authorization": f"Bearer {alice}"})
        assert ok.status_code == 200
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 401
        scraper = {"Authorization": "Bearer metrics-token-for-the-scraper"}
        assert requests.get(f"{url}/metrics", headers=scraper, timeout=10).status_code == 200
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


def test_the_service_will_not_listen_beyond_loopback_without_clients(platform) -> None:  # noqa: ANN001
    with pytest.raises(InsecureStartup, match="FRAUD_DECISION_CLIENTS"):
        create_app(platform(decision_clients=None), host="0.0.0.0")


def test_an_oversized_body_gets_a_413(store, platform, halves) -> None:  # noqa: ANN001
    store.promote("arrival")
    bodies = [body_of(r) for r in halves[1].head(20).iter_rows(named=True)]
    with running(platform(decision_max_body_bytes=2_000)) as (url, _):
        declared = post(f"{url}/v1/decisions/batch", {"transactions": bodies})
        data = requests.compat.json.dumps({"transactions": bodies}).encode()
        chunked = requests.post(
            f"{url}/v1/decisions/batch",
            data=(data[i : i + 500] for i in range(0, len(data), 500)),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    assert declared.status_code == 413 and chunked.status_code == 413


def test_a_client_over_its_rate_gets_a_429(store, platform, halves) -> None:  # noqa: ANN001
    store.promote("arrival")
    rows = [body_of(r) for r in halves[1].head(4).iter_rows(named=True)]
    with running(platform(decision_rate_limit_per_minute=3)) as (url, _):
        codes = [post(f"{url}/v1/decisions", body).status_code for body in rows]
    assert codes == [200, 200, 200, 429]


def test_without_a_champion_the_service_is_not_ready_and_says_why(store, platform, halves) -> None:  # noqa: ANN001
    with running(platform()) as (url, _):
        resp = post(f"{url}/v1/decisions", body_of(halves[1].row(0, named=True)))
        ready = requests.get(f"{url}/readyz", timeout=10)
        alive = requests.get(f"{url}/healthz", timeout=10)
    assert resp.status_code == 503 and "fraud_rf@champion" in resp.json()["detail"]
    assert ready.status_code == 503 and "fraud_rf@champion" in ready.json()["reason"]
    assert alive.status_code == 200


def test_a_champion_promoted_under_load_is_served_within_the_interval_and_nothing_fails(
    store,
    platform,
    halves,  # noqa: ANN001
) -> None:
    first = store.promote("arrival")
    rows = [body_of(r) for r in halves[1].head(3000).iter_rows(named=True)]
    seen: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load(offset: int, url: str) -> None:
        for body in rows[offset::6]:
            if stop.is_set():
                return
            resp = post(f"{url}/v1/decisions", body)
            seen.append((time.monotonic(), resp.status_code, resp.json().get("model_version")))

    with running(platform()) as (url, _):
        threads = [threading.Thread(target=load, args=(i, url)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        second = store.promote("arrival-b")
        promoted = time.monotonic()
        wait_until(lambda: any(v == second for _, _, v in seen), seconds=30, every=0.05)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        took = requests.get(f"{url}/readyz", timeout=10).json()["champion_load_seconds"]
    assert seen and all(code == 200 for _, code, _ in seen)
    assert {v for _, _, v in seen} == {first, second}
    switched = min(at for at, _, v in seen if v == second)
    # within the check interval and the change's own time (registry read, fetch, compile),
    # with a second for the load threads and the checker sharing this process
    assert 0 < took < 10 and switched - promoted <= 0.3 + took + 1.0
    assert all(v == second for at, _, v in seen if at > switched + 0.5)


def test_an_incompatible_champion_is_refused_and_the_old_one_keeps_serving(
    store,
    platform,
    halves,  # noqa: ANN001
) -> None:
    served = store.promote("arrival")
    body = body_of(halves[1].row(0, named=True))
    with running(platform()) as (url, _):
        assert post(f"{url}/v1/decisions", body).json()["model_version"] == served
        refused = store.promote("payload")  # a model for event-time feeds, on an arrival feed

        def readiness() -> dict:
            return requests.get(f"{url}/readyz", timeout=10).json()

        wait_until(lambda: readiness().get("refused_version") is not None, seconds=30)
        answer = post(f"{url}/v1/decisions", body | {"trans_num": "after-the-refusal"}).json()
        ready = readiness()
        metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert answer["model_version"] == served
    assert ready["ready"] and ready["model_version"] == served
    assert ready["refused_version"] == refused and "refused" in ready["reason"]
    assert "fraud_decision_champion_refused 1.0" in metrics
    assert ready["champion_load_seconds"] > 0 and "fraud_decision_champion_load_seconds " in metrics
    assert f'model_version="{served}"' in metrics


def test_the_openapi_document_is_the_contract(store, platform) -> None:  # noqa: ANN001
    with running(platform()) as (url, _):
        doc = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/v1/decisions", "/v1/decisions/batch", "/healthz", "/readyz", "/metrics"} <= set(
        doc["paths"]
    )
    request = doc["components"]["schemas"]["Transaction"]
    assert set(API_FIELDS) <= set(request["properties"])
    assert set(doc["components"]["schemas"]["DecisionOut"]["properties"]) >= DECISION_FIELDS
