"""The web app in a real browser: Debian's chromium driven by Playwright.

Screenshots go to ``test-artifacts/``. The page must not reach any host but the app.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl
import pytest

from fraud_assets.lib.schema import ANALYST_LABELS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("FRAUD_CHROMIUM_PATH", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FIELD = ":is(input, textarea)"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url: str):  # noqa: ANN001
    """A fresh page on the app that records every URL it requests."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.set_default_timeout(30_000)
    page.goto(app_url)
    yield page
    context.close()


def shot(page, name: str, full_page: bool = True) -> None:  # noqa: ANN001
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def assert_only_app_contacted(page, app_url: str) -> None:  # noqa: ANN001
    app_host = urlsplit(app_url).netloc
    foreign = [u for u in page.requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    foreign = [u for u in foreign if urlsplit(u).netloc != app_host]
    assert page.requested and not foreign, f"requests to other hosts: {foreign[:5]}"


def test_dashboard_shows_the_warehouse_figures_and_flagged_rows(
    page, app_url: str, scored_platform
) -> None:  # noqa: ANN001
    wh = scored_platform.resources["warehouse"].warehouse()
    scored = wh.read("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)
    flagged = scored.filter("is_flagged")
    kpi = page.locator('#kpis [data-kpi="scored"] .value')
    kpi.wait_for()
    assert kpi.inner_text() == f"{scored.height:,}"
    assert page.locator('#kpis [data-kpi="flagged"] .value').inner_text() == f"{flagged.height:,}"
    rows = page.locator("#flagged [role=row]")
    rows.nth(1).wait_for()
    assert rows.count() - 1 == min(flagged.height, 200)  # minus the header row
    first = rows.nth(1).locator("[role=gridcell]").all_inner_texts()
    assert first[1] in set(flagged["trans_num"])
    polled = scored.filter(pl.col("decided_by").fill_null("poll") == "poll").height
    path_card = page.locator('#paths [data-kpi="path_poll"] .value')
    assert path_card.inner_text() == f"{polled:,}"
    assert page.locator('#paths [data-kpi="path_service"] .value').inner_text() == "0"
    assert page.locator('#paths [data-kpi="service_decisions"] .value').inner_text() == "0"
    shot(page, "dashboard")

    # Label the first flagged row from the list.
    rows.nth(1).locator("[role=gridcell]").nth(2).click()
    trans = page.locator(f"#feedback-trans-num {FIELD}")
    page.wait_for_function("el => el.value.length > 0", arg=trans.element_handle(), timeout=10_000)
    assert trans.input_value() == first[1]
    page.locator(f"#feedback-analyst {FIELD}").fill("carol")
    page.get_by_label("not fraud").check()
    page.locator("#feedback-save").click()
    page.locator("#feedback-status").get_by_text("Saved").wait_for()
    labels = wh.read("analyst_labels", ANALYST_LABELS_SCHEMA, where={"trans_num": [first[1]]})
    assert labels.rows() == [(first[1], 0, "carol", labels["labelled_at"][0])]
    page.locator("#flagged [role=gridcell]").get_by_text("not fraud (carol)").first.wait_for()
    shot(page, "dashboard-labelled")
    assert_only_app_contacted(page, app_url)


TABS = ["Dashboard", "Monitoring", "Model", "Score a transaction"]


def test_every_tab_is_in_one_tab_list_above_the_dashboard(page, app_url: str) -> None:  # noqa: ANN001
    """One row of tabs: a block made between two tabs (a gr.Timer, a gr.api) once split
    them into a Dashboard tab list at the top and a second one below the whole dashboard."""
    lists = page.get_by_role("tablist")
    lists.first.wait_for()
    assert lists.count() == 1
    tabs = lists.first.get_by_role("tab")
    assert [t.strip() for t in tabs.all_inner_texts()] == TABS
    page.locator("#kpis").wait_for()
    bar, dashboard = lists.first.bounding_box(), page.locator("#kpis").bounding_box()
    assert bar["y"] + bar["height"] <= dashboard["y"]  # the bar is above the dashboard
    for name in TABS[1:]:  # each tab opens from that one list
        tabs.filter(has_text=name).click()
        assert tabs.filter(has_text=name).get_attribute("aria-selected") == "true"
    shot(page, "tabs", full_page=False)
    assert_only_app_contacted(page, app_url)


def fill(page, elem_id: str, value: object) -> None:  # noqa: ANN001
    page.locator(f"#{elem_id} {FIELD}").first.fill(str(value))


def test_scoring_form_returns_a_probability_and_explains_it(page, app_url: str) -> None:  # noqa: ANN001
    page.get_by_role("tab", name="Score a transaction").click()
    fill(page, "in-amount", 950)
    fill(page, "in-time", "2020-04-20 02:15:00")
    fill(page, "in-dob", "1961-03-02")
    page.locator("#score-button").click()
    decision = page.locator(f"#score-decision {FIELD}")
    page.wait_for_function("el => el.value.length > 0", arg=decision.element_handle())
    assert re.match(r"(FLAG for review|pass): fraud probability 0\.\d{4}", decision.input_value())
    probability = float(page.locator("#score-probability input").input_value())
    assert 0.0 <= probability <= 1.0
    rows = page.locator("#score-explanation [role=row]")
    rows.nth(1).wait_for()
    assert 3 <= rows.count() <= 8  # one row per feature family (and the header)
    page.locator("#score-plot canvas, #score-plot svg").first.wait_for()
    shot(page, "score")

    fill(page, "in-amount", -5)
    page.locator("#score-button").click()
    toast = page.locator(".toast-body").filter(has_text="amount must not be negative")
    toast.first.wait_for()
    page.wait_for_timeout(500)  # let the toast finish sliding in before the screenshot
    assert "Traceback" not in page.content()
    shot(page, "score-invalid", full_page=False)  # the error toast is fixed to the viewport
    assert_only_app_contacted(page, app_url)


def test_model_tab_describes_the_champion(page, app_url: str) -> None:  # noqa: ANN001
    page.get_by_role("tab", name="Model").click()
    page.locator("#model-summary").get_by_text("Champion").wait_for()
    assert "probability × amount" in page.locator("#model-summary").inner_text()
    page.locator("#model-metrics [role=row]").nth(1).wait_for()
    metric_names = page.locator("#model-metrics [role=row]").all_inner_texts()
    assert any("ROC-AUC" in name for name in metric_names)
    shot(page, "model")
    assert_only_app_contacted(page, app_url)


def test_monitoring_tab_shows_performance_drift_and_alerts(
    page, app_url: str, scored_platform
) -> None:  # noqa: ANN001
    from fraud_assets_tests.helpers.app import monitoring_rows

    monitoring_rows(scored_platform.resources["warehouse"].warehouse())
    page.get_by_role("tab", name="Monitoring").click()
    page.locator("#monitoring-status").get_by_text("1 of 3").wait_for()
    assert "model v4" in page.locator("#monitoring-status").inner_text()

    drift = page.locator("#monitoring-drift [role=row]")
    drift.nth(3).wait_for()
    assert drift.count() == 4  # the header and the newest run's three features
    cells = drift.nth(1).locator("[role=gridcell]")
    assert cells.all_inner_texts()[:3] == ["hour", "0.270", "DRIFTED"]
    colour = "el => getComputedStyle(el).backgroundColor"
    drifted, steady = cells.first, drift.nth(2).locator("[role=gridcell]").first
    assert drifted.evaluate(colour) == "rgb(253, 226, 225)"
    assert steady.evaluate(colour) != drifted.evaluate(colour)

    alerts = page.locator("#monitoring-alerts [role=row]")
    alerts.nth(3).wait_for()
    conditions = [alerts.nth(i).locator("[role=gridcell]").nth(2).inner_text() for i in (1, 2, 3)]
    assert conditions == ["cond3", "cond2", "cond1"]  # newest first
    assert "hunter22" not in page.locator("#monitoring-alerts").inner_text()
    assert page.locator("#monitoring-performance [role=row]").count() == 4
    page.locator("#monitoring-plot canvas, #monitoring-plot svg").first.wait_for()
    page.wait_for_timeout(500)  # let the plot finish drawing before the screenshot
    shot(page, "monitoring")
    assert_only_app_contacted(page, app_url)


def test_no_data_yet_is_said_plainly(browser, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """With an empty warehouse and no model, the app says so instead of failing."""
    from app_gradio.app import build_app, launch
    from fraud_assets.testing.servers import free_port

    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path))
    for name in ("FRAUD_DATABASE_URL", "MLFLOW_TRACKING_URI", "FRAUD_S3_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    app = build_app()
    port = free_port()
    launch(app, server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}")
        page.locator('#kpis [data-kpi="none"]').get_by_text("No scored transactions yet").wait_for()
        page.get_by_role("tab", name="Score a transaction").click()
        page.locator("#score-button").click()
        page.get_by_text("No champion model yet").first.wait_for()
        shot(page, "empty")
        page.get_by_role("tab", name="Monitoring").click()
        page.locator("#monitoring-status").get_by_text("No monitoring data yet").wait_for()
        shot(page, "monitoring-empty")
        context.close()
    finally:
        app.close()
