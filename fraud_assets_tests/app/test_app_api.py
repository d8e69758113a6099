"""The web app through its API (gradio_client), against the app launched on loopback."""

from __future__ import annotations

import re

import polars as pl
import pytest
from gradio_client import Client

from app_gradio.app import make_scorer
from app_gradio.scoring import parse_form
from fraud_assets.lib import registry
from fraud_assets.lib.features import FAMILIES, for_semantics
from fraud_assets.lib.schema import ANALYST_LABELS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.serving import FrameState, score_rows

pytestmark = pytest.mark.integration

FORM = {
    "amount": 950.0,
    "category": "shopping_net",
    "merchant_lat": 41.2,
    "merchant_long": -73.5,
    "cardholder_lat": 40.7,
    "cardholder_long": -74.0,
    "date_of_birth": "1961-03-02",
    "transaction_time": "2020-04-20 02:15:00",
}


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def scored_rows(platform) -> pl.DataFrame:  # noqa: ANN001
    wh = platform.resources["warehouse"].warehouse()
    return wh.read("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)


def test_api_lists_a_named_endpoint_per_action(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {
        "/score",
        "/explain",
        "/dashboard",
        "/feedback",
        "/flagged",
        "/model",
        "/monitoring",
    } <= set(endpoints)
    names = [p["parameter_name"] for p in endpoints["/score"]["parameters"]]
    assert names == [*FORM, "card_number", "gender", "city_population"]


def test_score_returns_a_probability_a_decision_and_an_explanation(client: Client) -> None:
    probability, decision = client.predict(**FORM, api_name="/score")
    explanation = client.predict(**FORM, api_name="/explain")
    assert 0.0 <= probability <= 1.0
    assert decision.startswith(("FLAG", "pass")) and "expected fraud loss" in decision
    assert explanation["headers"] == ["family", "meaning", "contribution"]
    families = [row[0] for row in explanation["data"]]
    assert set(families) <= set(FAMILIES) and "amount" in families
    contributions = [abs(row[-1]) for row in explanation["data"]]
    assert contributions == sorted(contributions, reverse=True)


def test_score_never_reveals_a_cards_history(client: Client, dataset) -> None:
    """Whatever card and time are asked about, the answer holds no feature value: only
    families and their contributions, so earlier amounts cannot be read back."""
    card = dataset.canonical["cc_num"][0]
    amounts = {f"{a:.2f}" for a in dataset.canonical.filter(pl.col("cc_num") == card)["amt"]}
    _, decision = client.predict(**FORM, card_number=card, api_name="/score")
    explanation = client.predict(**FORM, card_number=card, api_name="/explain")
    cells = {str(cell) for row in explanation["data"] for cell in row[:2]}
    assert not cells & amounts
    assert explanation["headers"] == ["family", "meaning", "contribution"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", -5.0, "amount must not be negative"),
        ("merchant_lat", 123.0, "merchant latitude must be between -90 and 90"),
        ("cardholder_long", -200.0, "cardholder longitude must be between -180 and 180"),
        ("date_of_birth", "2999-01-01", "is in the future"),
        ("category", "casino", "unknown category 'casino'"),
    ],
)
def test_invalid_input_gets_a_clear_error(client: Client, field, value, message) -> None:  # noqa: ANN001
    with pytest.raises(Exception, match=message) as info:
        client.predict(**(FORM | {field: value}), api_name="/score")
    assert "Traceback" not in str(info.value)


def test_dashboard_agrees_with_the_warehouse(client: Client, scored_platform) -> None:  # noqa: ANN001
    scored = scored_rows(scored_platform)
    assert scored.height > 0
    kpis, figures, *_plots, table = client.predict("all", "all", 0, 0, api_name="/dashboard")
    flagged = scored.filter("is_flagged")
    assert figures["scored"] == scored.height
    assert figures["flagged"] == flagged.height
    assert figures["amount_at_risk"] == pytest.approx(float(flagged["amt"].sum()))
    assert figures["model_version"] == scored["model_version"][-1]
    assert f"{scored.height:,}" in kpis
    assert sorted(r[1] for r in table["data"]) == sorted(flagged["trans_num"].to_list())[:200]


def test_dashboard_gives_decisions_by_path_and_the_services_own_figures(
    client: Client, scored_platform
) -> None:  # noqa: ANN001
    scored = scored_rows(scored_platform)
    _kpis, figures, *_plots, per_path, paths, _table = client.predict(
        "all", "all", 0, 0, api_name="/dashboard"
    )
    by_path = scored.group_by(pl.col("decided_by").fill_null("poll")).agg(
        pl.len().alias("scored"), pl.col("is_flagged").sum().alias("flagged")
    )
    names = {"poll": "polled", "service": "decision service", "stream": "stream"}
    expected = {names[p]: (n, f) for p, n, f in by_path.iter_rows()}
    assert {k: (v["scored"], v["flagged"]) for k, v in figures["by_path"].items()} == expected
    assert {row[0]: row[2] for row in per_path["data"]} == {k: n for k, (n, _) in expected.items()}
    service = figures["decision_log"]["service"]  # no decision service runs here
    assert service["decisions"] == 0 and service["server_ms_p99"] is None
    assert figures["decision_log"]["window_minutes"] == 15
    assert 'data-kpi="path_poll"' in paths and 'data-kpi="service_p99"' in paths


def test_flagged_filters_by_probability_and_category(client: Client, scored_platform) -> None:  # noqa: ANN001
    flagged = scored_rows(scored_platform).filter("is_flagged")
    assert flagged.height > 0
    cut = float(flagged["fraud_probability"].median())
    rows = client.predict("all", "all", cut, 0, api_name="/flagged")
    expected = flagged.filter(pl.col("fraud_probability") >= cut)
    assert {r["trans_num"] for r in rows} == set(expected["trans_num"])
    category = flagged["category"][0]
    rows = client.predict("all", category, 0, 0, api_name="/flagged")
    assert rows and {r["category"] for r in rows} == {category}


def test_feedback_is_stored_once_per_transaction_and_updated(
    client: Client, scored_platform
) -> None:  # noqa: ANN001
    trans_num = scored_rows(scored_platform)["trans_num"][0]
    client.predict(trans_num, "confirmed fraud", "alice", api_name="/feedback")
    status = client.predict(trans_num, "not fraud", "bob", api_name="/feedback")
    assert "not fraud" in status and "bob" in status
    wh = scored_platform.resources["warehouse"].warehouse()
    labels = wh.read("analyst_labels", ANALYST_LABELS_SCHEMA, where={"trans_num": [trans_num]})
    assert labels.height == 1
    assert labels["is_fraud"][0] == 0 and labels["analyst"][0] == "bob"
    rows = client.predict("all", "all", 0, 0, api_name="/flagged")
    shown = {r["trans_num"]: r["analyst_label"] for r in rows}
    if trans_num in shown:
        assert shown[trans_num] == "not fraud (bob)"


def test_feedback_on_an_unknown_transaction_is_refused(client: Client) -> None:
    with pytest.raises(Exception, match="No scored transaction"):
        client.predict("no-such-id", "confirmed fraud", "alice", api_name="/feedback")


def test_model_endpoint_describes_the_champion(client: Client, scored_platform) -> None:  # noqa: ANN001
    uri = scored_platform.resources["mlflow_registry"].tracking_uri
    champ = registry.get_champion(uri, "fraud_rf")
    summary, metrics, importances = client.predict(api_name="/model")
    assert f"version **{champ.version}**" in summary and f"${champ.threshold:,.2f}" in summary
    assert "**arrival** feeds" in summary and "`api` protocol" in summary
    names = {row[0] for row in metrics["data"]}
    assert {"average precision (AP)", "ROC-AUC", "precision at the decision"} <= names
    assert "expected calibration error" in names
    plotted = {row[0]: row[1] for row in importances["data"]}
    features = for_semantics("arrival").features
    assert set(plotted) == set(features) and sum(plotted.values()) == pytest.approx(1.0)


def test_manual_score_equals_the_serving_path_with_the_card_profile(
    scored_platform, dataset
) -> None:  # noqa: ANN001
    """The app scores a card's transaction exactly as the scoring asset would: the same
    serving function, the card's profile read from the keyed card state."""
    from pathlib import Path

    from fraud_assets_tests.helpers.data import SPLIT

    frame = dataset.canonical.sort("event_time")
    row = frame.filter(pl.col("cc_num") == frame["cc_num"][0]).row(25, named=True)
    tx = parse_form(
        row["amt"],
        row["category"],
        row["merch_lat"],
        row["merch_long"],
        row["lat"],
        row["long"],
        row["dob"],
        str(row["event_time"]),
        row["cc_num"],
        row["gender"],
        row["city_pop"],
    )
    scorer = make_scorer()
    result = scorer.score(tx)

    mlflow = scored_platform.resources["mlflow_registry"]
    model, _ = registry.load_champion(mlflow.tracking_uri, "fraud_rf", Path(mlflow.cache_dir))
    history = frame.filter(pl.col("event_time") < SPLIT)
    state = FrameState(model.feature_set.build_state(history))
    expected = score_rows(tx.to_frame(), state, model, semantics="arrival").scored
    assert result.probability == pytest.approx(expected["fraud_probability"][0], abs=1e-12)
    assert result.is_flagged == expected["is_flagged"][0]


def test_monitoring_endpoint_says_there_is_nothing_yet(client: Client) -> None:
    status, performance, lines, drift, alerts = client.predict(api_name="/monitoring")
    assert status == "No monitoring data yet: the monitoring assets write it."
    assert performance["data"] == [] and drift["data"] == [] and alerts["data"] == []


# --- with logins: an app of its own, on a small warehouse ------------------------------------

ANALYSTS = ("alice", "bob", "carol")
RATE = 5  # calls a minute per client


@pytest.fixture(scope="module")
def login_app(tmp_path_factory: pytest.TempPathFactory):
    """The app with three analysts' logins and a low rate limit, on loopback, over a SQLite
    warehouse holding the five rows of ``test_app_logic.scored_frame``."""
    from app_gradio.app import build_app, launch
    from app_gradio.dashboard import Dashboard
    from fraud_assets.lib.warehouse import Warehouse
    from fraud_assets.testing.servers import free_port
    from fraud_assets_tests.helpers.app import docs_entry, scored_frame, stored

    root = tmp_path_factory.mktemp("login-app")
    wh = stored(Warehouse(f"sqlite:///{root / 'warehouse.db'}"), scored_frame())
    dashboard = Dashboard(lambda: wh, ttl=3600)
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:  # read by build_app and launch only
        mp.setenv("FRAUD_DATA_DIR", str(root))
        mp.setenv("FRAUD_APP_USERS", ",".join(docs_entry(n, f"pw-{n}") for n in ANALYSTS))
        mp.setenv("FRAUD_APP_RATE_LIMIT_PER_MINUTE", str(RATE))
        mp.delenv("FRAUD_APP_USERS_FILE", raising=False)
        mp.delenv("GRADIO_SERVER_NAME", raising=False)
        app = build_app(dashboard=dashboard, warehouse=lambda: wh)
        launch(app, server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", dashboard, wh
    app.close()
    dashboard.close()


def login(url: str, name: str) -> Client:
    return Client(url, auth=(name, f"pw-{name}"), verbose=False)


def test_only_analysts_with_their_password_get_in(login_app) -> None:  # noqa: ANN001
    url, _, _ = login_app
    with pytest.raises(Exception):  # noqa: B017 - gradio_client's own error types vary
        Client(url, verbose=False)
    with pytest.raises(Exception):  # noqa: B017
        Client(url, auth=("alice", "pw-bob"), verbose=False)
    assert login(url, "alice").view_api(print_info=False, return_format="dict")


def test_verdicts_are_attributed_to_the_logged_in_analyst(login_app) -> None:  # noqa: ANN001
    url, _, wh = login_app
    alice = login(url, "alice")
    status = alice.predict("a", "confirmed fraud", "mallory", api_name="/feedback")
    assert "by alice" in status and "mallory" not in status
    alice.predict("b", "not fraud", "", api_name="/feedback")  # no name needed with a login
    labels = wh.read("analyst_labels", ANALYST_LABELS_SCHEMA).sort("trans_num")
    assert labels.select("trans_num", "is_fraud", "analyst").rows() == [
        ("a", 1, "alice"),
        ("b", 0, "alice"),
    ]
    shown = {r["trans_num"]: r["analyst_label"] for r in alice.predict(api_name="/flagged")}
    assert shown["a"] == "fraud (alice)" and shown["b"] == "not fraud (alice)"


def test_a_client_over_its_rate_gets_a_clear_error(login_app) -> None:  # noqa: ANN001
    url, _, _ = login_app
    bob = login(url, "bob")
    for _ in range(RATE):  # a minute's worth at once is allowed
        bob.predict("all", "all", 0, 0, api_name="/dashboard")
    refused = None
    for _ in range(3):  # one token refills every 60 / RATE s: a slow machine may see one
        try:
            bob.predict("all", "all", 0, 0, api_name="/dashboard")
        except Exception as exc:  # noqa: BLE001 - gradio_client's error type varies
            refused = str(exc)
            break
    assert refused and re.search(r"rate limited, try again in \d+ s", refused), refused
    wait = int(re.search(r"in (\d+) s", refused).group(1))
    assert 1 <= wait <= 60 // RATE
    assert login(url, "carol").predict(api_name="/monitoring")  # carol has her own bucket


def test_sessions_share_one_dashboard_snapshot(login_app) -> None:  # noqa: ANN001
    url, dashboard, _ = login_app
    sessions = [login(url, "alice"), login(url, "carol")]
    before = dashboard.cache.computations
    first = sessions[0].predict("last 7 days", "all", 0, 0, api_name="/dashboard")
    computed = dashboard.cache.computations - before
    assert computed >= 2  # the window start and the aggregates (and the flagged list)
    second = sessions[1].predict("last 7 days", "all", 0, 0, api_name="/dashboard")
    assert dashboard.cache.computations - before == computed  # nothing new reached the database
    assert first[1] == second[1] and first[1]["scored"] == 5
