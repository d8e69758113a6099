"""The Gradio app's layout: dashboard, monitoring, model card, manual scoring, feedback.

What each event does lives in ``handlers.py``. Every action is a named API endpoint
(``/dashboard``, ``/flagged``, ``/feedback``, ``/score``, ``/explain``, ``/model``,
``/monitoring``) that scripts can call with ``gradio_client``; each is rate-limited
per client (the logged-in user, else the client's IP). Configuration comes only from
environment variables (see ``config.py`` and ``fraud_assets.settings``). Beyond loopback the
app serves only behind a login (``auth.py``), unless told otherwise on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app_gradio import auth, config, data, guard
from app_gradio.dashboard import Dashboard
from app_gradio.handlers import VERDICTS, Handlers
from app_gradio.scoring import Scorer
from app_gradio.views import client_key, drift_table, kpi_html  # noqa: F401 - the app's API
from fraud_assets.lib.ratelimit import RateLimiter
from fraud_assets.lib.schema import CATEGORIES
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.settings import Settings, load_settings

log = logging.getLogger(__name__)

CSS = """
.kpis {display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px;}
.kpi {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px;
      background: var(--background-fill-secondary);}
.kpi .label {display: block; font-size: 0.85em; color: var(--body-text-color-subdued);}
.kpi .value {display: block; font-size: 1.5em; font-weight: 600;}
.kpi .note {display: block; font-size: 0.75em; color: var(--body-text-color-subdued);}
.nodata {padding: 16px; border-radius: 8px; background: var(--background-fill-secondary);}
"""

# Concurrency, per event group (Gradio runs at most this many of a group at once).
#: Dashboard reads (page load, timer, button, filters, /dashboard, /flagged) share one group.
#: They read the shared snapshot, and at most one caller per snapshot queries the database
#: (the snapshot's lock), so several may run at once: one refreshing must not hold up the
#: others, who get the previous snapshot. The limit bounds worker threads, not database load.
DASHBOARD_READS, DASHBOARD_LIMIT = "dashboard-reads", 8
#: Manual scoring is CPU-bound (forest and TreeSHAP): as many as the 2 cores we size for;
#: more would only contend, and a burst then queues instead of starving dashboard reads.
SCORE_LIMIT = 2
#: Monitoring reads are small queries, but uncached: two at a time.
MONITORING, MONITORING_LIMIT = "monitoring", 2
#: Everything else (verdicts, the model card, small UI events): within the warehouse's pool
#: of 4 connections.
DEFAULT_LIMIT = 4
#: Events waiting beyond this are refused at once rather than queued without bound (the rate
#: limiter only sees an event once a worker picks it up).
QUEUE_SIZE = 256


def _built_once(settings: Settings) -> Callable[[], Warehouse]:
    """The configured warehouse, built once (not from the environment at every request)."""
    wh = config.warehouse(settings)
    return lambda: wh


def make_scorer() -> Scorer:
    settings = load_settings()
    return Scorer(
        settings.mlflow_tracking_uri,
        settings.model_name,
        _built_once(settings),
        settings.feed_semantics,
        settings.model_cache_dir,
        limits=settings.row_limits(),
    )


@dataclass(frozen=True)
class DashboardTab:
    """The Dashboard tab's components, for its events (``_dashboard_events``)."""

    filters: list[Any]  # time range, category, minimum probability, minimum amount
    outputs: list[Any]  # what /dashboard fills, in its order
    table: Any
    feedback: list[Any]  # transaction id, verdict, analyst
    save: Any
    status: Any
    refresh: Any


def _figure_rows() -> list[Any]:
    """The trend, the breakdowns by category, hour and path."""
    with gr.Row():
        trend = gr.LinePlot(
            x="time",
            y="value",
            color="metric",
            title="Fraud probability and flag rate over time",
            y_lim=[0, 1],
            elem_id="trend",
        )
    tooltip = ["scored", "flagged", "amount_flagged", "flag_rate"]
    with gr.Row():
        per_category = gr.BarPlot(
            x="category",
            y="flag_rate",
            title="Flag rate by category",
            x_label_angle=-45,
            tooltip=["category", *tooltip],
            elem_id="by-category",
        )
        per_hour = gr.BarPlot(
            x="hour",
            y="flag_rate",
            title="Flag rate by hour of day (UTC)",
            tooltip=["hour", *tooltip],
            elem_id="by-hour",
        )
        per_path = gr.BarPlot(
            x="decided_via",
            x_title="path",
            y="scored",
            title="Decisions by path",
            y_lim=[0, None],  # from 0, so that a single path still shows its bar
            tooltip=["decided_via", *tooltip],
            elem_id="by-path",
        )
    return [trend, per_category, per_hour, per_path]


def _filters() -> list[Any]:
    with gr.Row():
        time_range = gr.Dropdown(
            list(data.TIME_RANGES), value="all", label="Time range", elem_id="f-time"
        )
        category = gr.Dropdown(
            [data.ALL_CATEGORIES, *CATEGORIES],
            value=data.ALL_CATEGORIES,
            label="Category",
            elem_id="f-category",
        )
        min_probability = gr.Slider(
            0, 1, value=0, step=0.01, label="Minimum probability", elem_id="f-prob"
        )
        min_amount = gr.Number(value=0, label="Minimum amount ($)", elem_id="f-amount")
    return [time_range, category, min_probability, min_amount]


def _feedback_row() -> tuple[list[Any], Any]:
    """The verdict form under the flagged list, and its save button."""
    with gr.Row(elem_id="feedback-row"):
        trans = gr.Textbox(label="Transaction id", elem_id="feedback-trans-num")
        verdict = gr.Radio(
            list(VERDICTS), value="confirmed fraud", label="Verdict", elem_id="fb-verdict"
        )
        analyst = gr.Textbox(label="Analyst", elem_id="feedback-analyst")
        save = gr.Button("Save label", variant="primary", elem_id="feedback-save")
    return [trans, verdict, analyst], save


def _dashboard_tab() -> DashboardTab:
    """Headline cards, decisions by path, trend, breakdowns, the flagged list and the
    analysts' verdicts."""
    with gr.Tab("Dashboard", id="dashboard", elem_id="tab-dashboard"):
        kpis = gr.HTML(elem_id="kpis")
        paths = gr.HTML(elem_id="paths")
        trend, per_category, per_hour, per_path = _figure_rows()
        gr.Markdown("### Latest flagged transactions")
        filters = _filters()
        table = gr.Dataframe(
            label="Flagged transactions (click a row to label it; click a header to sort)",
            elem_id="flagged",
            interactive=False,
            show_search="filter",
            max_height=420,
        )
        feedback, save = _feedback_row()
        status = gr.Markdown(elem_id="feedback-status")
        with gr.Accordion("Headline figures as JSON", open=False):
            figures = gr.JSON(elem_id="figures")
        refresh = gr.Button("Refresh now", elem_id="refresh")
    outputs = [kpis, figures, trend, per_category, per_hour, per_path, paths, table]
    return DashboardTab(filters, outputs, table, feedback, save, status, refresh)


def _dashboard_events(
    app: gr.Blocks, h: Handlers, tab: DashboardTab, timer: gr.Timer, signed_in: Any
) -> None:
    """Page load, the timer, the button and the time range refresh every figure; the other
    filters only the flagged list. Outside the tabs: ``gr.api`` makes a block of its own."""
    filters, out, table = tab.filters, tab.outputs, tab.table
    reads = {"concurrency_id": DASHBOARD_READS, "concurrency_limit": DASHBOARD_LIMIT}
    private = {"api_visibility": "private", **reads}
    tab.refresh.click(h.dashboard_view, inputs=filters, outputs=out, api_name="dashboard", **reads)
    app.load(h.dashboard_view, inputs=filters, outputs=out, **private)
    timer.tick(h.dashboard_view, inputs=filters, outputs=out, show_progress="hidden", **private)
    filters[0].change(h.dashboard_view, inputs=filters, outputs=out, **private)
    for control in filters[1:]:
        control.change(h.flagged_frame, inputs=filters, outputs=table, **private)
    table.select(h.pick_row, outputs=tab.feedback[0], api_visibility="private")
    tab.save.click(
        h.feedback, inputs=tab.feedback, outputs=tab.status, api_name="feedback"
    ).success(h.flagged_frame, inputs=filters, outputs=table, **private)
    gr.api(h.flagged_records, api_name="flagged", **reads)
    app.load(h.whoami, outputs=[tab.feedback[2], signed_in], api_visibility="private")


def _monitoring_tab(h: Handlers) -> None:
    """Live performance by model version, the newest drift run, the alert history."""
    with gr.Tab("Monitoring", id="monitoring", elem_id="tab-monitoring") as monitoring_tab:
        mon_status = gr.Markdown(elem_id="monitoring-status")
        gr.Markdown("### Live performance by model version (delayed labels)")
        perf_plot = gr.LinePlot(
            x="day",
            y="value",
            color="series",
            title="Precision, recall and flag rate per day",
            y_lim=[0, 1],
            elem_id="monitoring-plot",
        )
        perf_table = gr.Dataframe(
            label="Live performance per day and model version (newest first)",
            interactive=False,
            max_height=320,
            elem_id="monitoring-performance",
        )
        gr.Markdown("### Feature drift (newest run; PSI against the training reference)")
        drift = gr.Dataframe(
            label="PSI per feature, most drifted first (drifted ones highlighted)",
            interactive=False,
            max_height=420,
            elem_id="monitoring-drift",
        )
        gr.Markdown("### Alerts (newest first)")
        alerts = gr.Dataframe(
            label="Alert history",
            interactive=False,
            max_height=320,
            elem_id="monitoring-alerts",
        )
        mon_refresh = gr.Button("Refresh monitoring", elem_id="monitoring-refresh")

    mon_out = [mon_status, perf_table, perf_plot, drift, alerts]
    mon = {"concurrency_id": MONITORING, "concurrency_limit": MONITORING_LIMIT}
    mon_refresh.click(h.monitoring_view, outputs=mon_out, api_name="monitoring", **mon)
    monitoring_tab.select(h.monitoring_view, outputs=mon_out, api_visibility="private", **mon)


def _model_tab(app: gr.Blocks, h: Handlers) -> None:
    """The champion: summary, validation metrics, feature importances."""
    with gr.Tab("Model", id="model", elem_id="tab-model"):
        model_md = gr.Markdown(elem_id="model-summary")
        with gr.Row():
            metrics = gr.Dataframe(
                label="Validation metrics", interactive=False, elem_id="model-metrics"
            )
            importance_plot = gr.BarPlot(
                x="feature",
                y="importance",
                title="Feature importance (mean decrease in impurity)",
                sort="-y",
                x_label_angle=-45,
                elem_id="model-importances",
            )
        model_refresh = gr.Button("Reload model", elem_id="model-refresh")

    model_refresh.click(h.model, outputs=[model_md, metrics, importance_plot], api_name="model")
    app.load(h.model, outputs=[model_md, metrics, importance_plot], api_visibility="private")


SCORE_INTRO = (
    "Serves this transaction exactly as the live path would: the champion, the card's state "
    "read by card (its profile for arrival feeds, its history for event-time feeds), "
    "calibrated probability and the expected-cost decision. Times are UTC. Without a card "
    "number the card is unknown to the model. The explanation shows feature families only, "
    "never a feature's value."
)


def _transaction_column() -> list[Any]:
    """The transaction and cardholder fields: amount, category, time, card, birth date,
    gender, city population."""
    with gr.Column():
        amount = gr.Number(value=120.0, label="Amount ($)", elem_id="in-amount")
        category = gr.Dropdown(
            list(CATEGORIES),
            value="shopping_net",
            label="Category",
            allow_custom_value=True,
            elem_id="in-category",
        )
        tx_time = gr.Textbox(
            value="",
            label="Transaction time (UTC, YYYY-MM-DD HH:MM:SS; empty = now)",
            elem_id="in-time",
        )
        card = gr.Textbox(value="", label="Card number (optional)", elem_id="in-card")
        dob = gr.Textbox(value="1980-05-17", label="Date of birth (YYYY-MM-DD)", elem_id="in-dob")
        gender = gr.Dropdown(
            ["", "F", "M"], value="", label="Gender (optional)", elem_id="in-gender"
        )
        city_pop = gr.Textbox(value="", label="City population (optional)", elem_id="in-city-pop")
    return [amount, category, tx_time, card, dob, gender, city_pop]


def _places_and_result_column() -> tuple[list[Any], Any, list[Any]]:
    """Where the cardholder and the merchant are, the Score button, and the answer."""
    with gr.Column():
        places = [
            gr.Number(value=40.71, label="Cardholder latitude", elem_id="in-lat"),
            gr.Number(value=-74.01, label="Cardholder longitude", elem_id="in-long"),
            gr.Number(value=40.85, label="Merchant latitude", elem_id="in-mlat"),
            gr.Number(value=-73.87, label="Merchant longitude", elem_id="in-mlong"),
        ]
        button = gr.Button("Score", variant="primary", elem_id="score-button")
        probability = gr.Number(
            label="Fraud probability", precision=4, interactive=False, elem_id="score-probability"
        )
        decision = gr.Textbox(label="Decision", interactive=False, elem_id="score-decision")
    return places, button, [probability, decision]


def _explanation() -> tuple[Any, Any]:
    """What moved the score: a plot and the table of contributions by feature family."""
    plot = gr.BarPlot(
        x="family",
        y="contribution",
        color="direction",
        color_map={"raises risk": "#d62728", "lowers risk": "#2ca02c"},
        title="What moved the score, by feature family",
        sort="-y",
        x_label_angle=-30,
        elem_id="score-plot",
    )
    table = gr.Dataframe(
        label="Explanation: TreeSHAP contributions to the model's raw score, summed "
        "by feature family (positive = pushed the score up; they add up to the raw "
        "score minus the model's baseline)",
        interactive=False,
        elem_id="score-explanation",
    )
    return plot, table


def _score_tab(h: Handlers) -> None:
    """A transaction scored by hand through the serving path, and what moved its score."""
    with gr.Tab("Score a transaction", id="score", elem_id="tab-score"):
        gr.Markdown(SCORE_INTRO)
        with gr.Row():
            amount, category, tx_time, card, dob, gender, city_pop = _transaction_column()
            (c_lat, c_long, m_lat, m_long), button, answer = _places_and_result_column()
        plot, explanation = _explanation()
    # In the order of Handlers.score's parameters (the /score and /explain endpoints').
    form = [amount, category, m_lat, m_long, c_lat, c_long, dob, tx_time, card, gender, city_pop]
    _score_events(h, form, button, answer, plot, explanation)


def _score_events(
    h: Handlers, form: list[Any], button: Any, answer: list[Any], plot: Any, explanation: Any
) -> None:
    button.click(
        h.score, inputs=form, outputs=answer, api_name="score", concurrency_limit=SCORE_LIMIT
    ).success(
        h.explain,
        inputs=form,
        outputs=explanation,
        api_name="explain",
        concurrency_limit=SCORE_LIMIT,
    ).success(h.contributions_plot, inputs=explanation, outputs=plot, api_visibility="private")


def build_app(
    scorer: Scorer | None = None,
    dashboard: Dashboard | None = None,
    warehouse: Callable[[], Warehouse] | None = None,
) -> gr.Blocks:
    """The Blocks app. ``scorer``, ``dashboard`` and ``warehouse`` (a factory) default to the
    configured ones, read from the settings once."""
    settings = load_settings()
    warehouse = warehouse or _built_once(settings)
    scorer = scorer or make_scorer()
    dashboard = dashboard or Dashboard(warehouse, settings.app_snapshot_seconds)
    h = Handlers(scorer, dashboard, warehouse, RateLimiter(settings.app_rate_limit_per_minute))
    with gr.Blocks(title="Card fraud detection", analytics_enabled=False) as app:
        gr.Markdown("# Card fraud detection", elem_id="title")
        signed_in = gr.Markdown(elem_id="signed-in")
        # Every tab in one gr.Tabs: a block made between two tabs (a gr.Timer, a gr.api)
        # would end the group and start a second row of tabs below the first tab's content.
        timer = gr.Timer(settings.app_refresh_seconds)
        with gr.Tabs(elem_id="tabs"):
            dashboard_tab = _dashboard_tab()
            _monitoring_tab(h)
            _model_tab(app, h)
            _score_tab(h)
        _dashboard_events(app, h, dashboard_tab, timer, signed_in)
    app.queue(default_concurrency_limit=DEFAULT_LIMIT, max_size=QUEUE_SIZE)
    return app


def launch(app: gr.Blocks, **kwargs: Any) -> tuple[Any, str, str]:
    """Launch as deployments do: loopback unless GRADIO_SERVER_NAME says otherwise, no run
    history (form inputs are personal data), a login from FRAUD_APP_USERS(_FILE) when set,
    sessions of FRAUD_APP_SESSION_HOURS, clients told apart behind FRAUD_APP_TRUSTED_PROXIES
    (``guard.py``).

    Raises auth.InsecureStartup, before binding anything, when it would serve beyond loopback
    without a login and FRAUD_APP_ALLOW_ANONYMOUS is not true (auth.UsersError for a malformed
    login entry)."""
    settings = load_settings()
    host = kwargs.pop("server_name", None) or settings.app_server_name
    options: dict[str, Any] = {
        "server_name": host,
        "run_history": False,
        "footer_links": ["api"],
        "css": CSS,
        "show_error": False,
        "app_kwargs": guard.app_kwargs(settings, kwargs.pop("app_kwargs", None)),
    }
    if "auth" not in kwargs:
        users = auth.login_policy(settings, host)
        if users:
            options["auth"] = auth.gradio_auth(users)
            options["auth_message"] = "Fraud analysts only: sign in with your analyst login."
            log.info("login required; %d analysts configured", len(users.names))
    with guard.uvicorn_trusts_no_proxy():
        return app.launch(**(options | kwargs))
