"""The Gradio app: dashboard, monitoring, model card, manual scoring, analyst feedback.

Every action is a named API endpoint (``/dashboard``, ``/flagged``, ``/feedback``, ``/score``,
``/model``, ``/monitoring``) that scripts can call with ``gradio_client``; each is rate-limited
per client (the logged-in user, else the client's IP). Configuration comes only from
environment variables (see ``config.py`` and ``fraud_assets.settings``). Beyond loopback the
app serves only behind a login (``auth.py``), unless told otherwise on purpose.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd
import polars as pl

from app_gradio import auth, config, data, monitoring
from app_gradio.dashboard import Dashboard
from app_gradio.model_info import model_card
from app_gradio.ratelimit import RateLimiter, retry_message
from app_gradio.scoring import InvalidTransaction, ManualTransaction, Scorer, parse_form
from fraud_assets.lib.feedback import record_label
from fraud_assets.lib.registry import NoChampionError
from fraud_assets.lib.schema import CATEGORIES, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.settings import load_settings

log = logging.getLogger(__name__)

VERDICTS = {"confirmed fraud": True, "not fraud": False}
CSS = """
.kpis {display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px;}
.kpi {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px;
      background: var(--background-fill-secondary);}
.kpi .label {display: block; font-size: 0.85em; color: var(--body-text-color-subdued);}
.kpi .value {display: block; font-size: 1.5em; font-weight: 600;}
.kpi .note {display: block; font-size: 0.75em; color: var(--body-text-color-subdued);}
.nodata {padding: 16px; border-radius: 8px; background: var(--background-fill-secondary);}
"""
DRIFTED_STYLE = "background-color: #fde2e1; color: #8a1c1c; font-weight: 600"

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


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def kpi_html(summary: data.Summary) -> str:
    """Headline cards; each carries ``data-kpi`` so tests and scrapers can find it."""
    if not summary.scored:
        return f'<div class="nodata" data-kpi="none">{html.escape(data.NO_DATA)}</div>'
    labelled = f"from {summary.labelled:,} delayed labels"
    cards = [
        ("scored", "Transactions scored", f"{summary.scored:,}", ""),
        ("flagged", "Flagged", f"{summary.flagged:,}", ""),
        ("flag_rate", "Flag rate", f"{summary.flag_rate:.2%}", ""),
        ("amount_at_risk", "Amount at risk", f"${summary.amount_at_risk:,.2f}", ""),
        ("model_version", "Model version", html.escape(summary.model_version), ""),
        ("precision", "Live precision", _pct(summary.precision), labelled),
        ("recall", "Live recall", _pct(summary.recall), labelled),
    ]
    body = "".join(
        f'<div class="kpi" data-kpi="{key}"><span class="label">{label}</span>'
        f'<span class="value">{value}</span><span class="note">{note}</span></div>'
        for key, label, value, note in cards
    )
    newest = html.escape(summary.newest_event or "")
    return f'<div class="kpis">{body}</div><p class="note">Newest transaction: {newest} UTC</p>'


def _warehouse_error(exc: Exception) -> gr.Error:
    log.exception("warehouse read failed")
    return gr.Error(f"Cannot read the warehouse ({type(exc).__name__}); see the app log.")


def client_key(request: gr.Request | None) -> str:
    """Whom a call counts against: the logged-in user, else the client's address."""
    user = getattr(request, "username", None)
    if user:
        return f"user:{user}"
    client = getattr(request, "client", None)
    return f"ip:{getattr(client, 'host', None) or 'unknown'}"


def drift_table(drift: pl.DataFrame) -> Any:
    """The drift run as a table whose drifted rows stand out (and say so in words)."""
    frame = drift.select(
        "feature",
        "psi",
        drifted=pl.when(pl.col("drifted")).then(pl.lit("DRIFTED")).otherwise(pl.lit("")),
        model_version="model_version",
        reference_rows="reference_rows",
        current_rows="current_rows",
    ).to_pandas()
    marked = frame["drifted"] == "DRIFTED"
    return frame.style.format({"psi": "{:.3f}"}, na_rep="").apply(
        lambda row: [DRIFTED_STYLE if marked[row.name] else ""] * len(row), axis=1
    )


def make_scorer() -> Scorer:
    settings = load_settings()
    return Scorer(
        settings.mlflow_tracking_uri,
        settings.model_name,
        config.warehouse,
        settings.feed_semantics,
        settings.model_cache_dir,
    )


def build_app(
    scorer: Scorer | None = None,
    dashboard: Dashboard | None = None,
    warehouse: Callable[[], Warehouse] = config.warehouse,
) -> gr.Blocks:
    """The Blocks app. ``scorer``, ``dashboard`` and ``warehouse`` (a factory; the default
    reads the environment at each call) default to the configured ones."""
    settings = load_settings()
    scorer = scorer or make_scorer()
    dashboard = dashboard or Dashboard(warehouse, settings.app_snapshot_seconds)
    limiter = RateLimiter(settings.app_rate_limit_per_minute)

    def limit(request: gr.Request | None) -> None:
        wait = limiter.acquire(client_key(request))
        if wait > 0:
            raise gr.Error(retry_message(wait), title="Too many requests")

    def dashboard_view(
        time_range: str = "all",
        category: str = data.ALL_CATEGORIES,
        min_probability: float = 0.0,
        min_amount: float = 0.0,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """Headline cards and figures, trend, breakdowns by category and hour (all over the
        time range), and the flagged list (newest 200 matching every filter)."""
        started = time.perf_counter()
        limit(request)
        try:
            agg = dashboard.aggregates(time_range)
            table = dashboard.flagged(time_range, category, min_probability, min_amount)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:
            raise _warehouse_error(exc) from exc
        out = (kpi_html(agg.summary), agg.figures, agg.trend, agg.categories, agg.hours, table)
        if dashboard.timings is not None:
            dashboard.timings.handler.append(time.perf_counter() - started)
        return out

    def flagged_frame(
        time_range: str,
        category: str,
        min_probability: float,
        min_amount: float,
        request: gr.Request | None = None,
    ) -> pd.DataFrame:
        """The flagged transactions matching the filters, newest first (up to 200)."""
        limit(request)
        try:
            return dashboard.flagged(time_range, category, min_probability, min_amount)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:
            raise _warehouse_error(exc) from exc

    def flagged_records(
        time_range: str = "all",
        category: str = data.ALL_CATEGORIES,
        min_probability: float = 0.0,
        min_amount: float = 0.0,
        request: gr.Request | None = None,
    ) -> list[dict]:
        """The flagged list as records, for scripts: same filters as the dashboard table."""
        frame = flagged_frame(time_range, category, min_probability, min_amount, request)
        return frame.to_dict("records")

    def _form(*fields: object) -> ManualTransaction:
        try:
            return parse_form(*fields)
        except InvalidTransaction as exc:
            raise gr.Error(f"Invalid transaction: {exc}", title="Invalid input") from exc

    def _with_model(call):  # noqa: ANN001, ANN202
        try:
            return call()
        except NoChampionError as exc:
            raise gr.Error(
                "No champion model yet: the first training run registers one.",
                title="No model",
            ) from exc

    def score(
        amount: float,
        category: str,
        merchant_lat: float,
        merchant_long: float,
        cardholder_lat: float,
        cardholder_long: float,
        date_of_birth: str,
        transaction_time: str = "",
        card_number: str = "",
        gender: str = "",
        city_population: str = "",
        request: gr.Request | None = None,
    ) -> tuple[float, str]:
        """Calibrated fraud probability and the expected-cost decision, served exactly as the
        live path serves a transaction. Times are UTC (``YYYY-MM-DD HH:MM:SS``); dates
        ``YYYY-MM-DD``. The card number is optional and only used to read the card's state.
        ``/explain`` (same parameters) says what moved the score."""
        limit(request)
        tx = _form(
            amount,
            category,
            merchant_lat,
            merchant_long,
            cardholder_lat,
            cardholder_long,
            date_of_birth,
            transaction_time,
            card_number,
            gender,
            city_population,
        )
        result = _with_model(lambda: scorer.score(tx))
        return result.probability, result.decision()

    def explain(
        amount: float,
        category: str,
        merchant_lat: float,
        merchant_long: float,
        cardholder_lat: float,
        cardholder_long: float,
        date_of_birth: str,
        transaction_time: str = "",
        card_number: str = "",
        gender: str = "",
        city_population: str = "",
        request: gr.Request | None = None,
    ) -> pd.DataFrame:
        """What moved the score: TreeSHAP contributions to the model's raw score, summed by
        feature family (they add up to the raw score minus the model's baseline). No
        feature's value is ever shown."""
        limit(request)
        tx = _form(
            amount,
            category,
            merchant_lat,
            merchant_long,
            cardholder_lat,
            cardholder_long,
            date_of_birth,
            transaction_time,
            card_number,
            gender,
            city_population,
        )
        return _with_model(lambda: scorer.explain(tx)).families.to_pandas()

    def feedback(trans_num: str, verdict: str, analyst: str, request: gr.Request) -> str:
        """Record an analyst's verdict on a scored transaction (marking again replaces it).
        ``verdict`` is "confirmed fraud" or "not fraud". With a login, the verdict is the
        logged-in user's whatever ``analyst`` says; without one, ``analyst`` is required."""
        limit(request)
        user = getattr(request, "username", None)
        who = (user or analyst or "").strip()
        tid = (trans_num or "").strip()
        if verdict not in VERDICTS:
            raise gr.Error(f"verdict must be one of: {', '.join(VERDICTS)}")
        if not tid:
            raise gr.Error("Pick a transaction in the flagged list (or give its id).")
        if not who:
            raise gr.Error("Say who you are: fill in the analyst name.")
        wh = warehouse()
        known = wh.read(
            "scored_transactions",
            SCORED_TRANSACTIONS_SCHEMA,
            columns=["trans_num"],
            where={"trans_num": [tid]},
        )
        if known.height == 0:
            raise gr.Error(f"No scored transaction has id {tid!r}.")
        row = record_label(wh, tid, VERDICTS[verdict], who)
        dashboard.labels_changed()
        when = f"{row['labelled_at']:%Y-%m-%d %H:%M:%S}"
        return f"Saved: {tid} marked **{verdict}** by {who} at {when} UTC."

    def model(request: gr.Request | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
        """The champion model: summary, validation metrics and feature importances."""
        limit(request)
        try:
            loaded = scorer.model()
        except NoChampionError:
            empty = pl.DataFrame(schema={"metric": pl.String, "value": pl.Float64})
            imp = pl.DataFrame(schema={"feature": pl.String, "importance": pl.Float64})
            return "No champion model yet.", empty.to_pandas(), imp.to_pandas()
        card = model_card(scorer.tracking_uri, loaded.model, loaded.info)
        return card.markdown(), card.metrics.to_pandas(), card.importances.to_pandas()

    def monitoring_view(request: gr.Request | None = None) -> tuple[Any, ...]:
        """Live performance by model version and day (table and plot of precision, recall and
        flag rate), the newest feature-drift run (PSI per feature, drifted ones marked) and
        the alert history, newest first."""
        limit(request)
        try:
            mon = monitoring.read(warehouse())
        except Exception as exc:
            raise _warehouse_error(exc) from exc
        return (
            mon.status(),
            mon.performance.to_pandas(),
            mon.lines.to_pandas(),
            drift_table(mon.drift),
            mon.alerts.with_columns(
                pl.col("raised_at", "window_start").dt.strftime("%Y-%m-%d %H:%M:%S")
            ).to_pandas(),
        )

    def whoami(request: gr.Request) -> tuple[Any, str]:
        """With a login, the analyst field shows (and is) the logged-in user."""
        user = getattr(request, "username", None)
        if not user:
            return gr.update(), ""
        box = gr.update(value=user, interactive=False, label="Analyst (your login)")
        return box, f"Signed in as **{html.escape(user)}** · [log out](logout)"

    def contributions_plot(explanation: pd.DataFrame) -> pd.DataFrame:
        frame = pl.from_pandas(explanation) if len(explanation) else pl.DataFrame()
        top = frame.filter(pl.col("contribution") != 0).head(10) if frame.height else frame
        if top.height == 0:
            return pd.DataFrame({"family": [], "contribution": [], "direction": []})
        return top.with_columns(
            direction=pl.when(pl.col("contribution") >= 0)
            .then(pl.lit("raises risk"))
            .otherwise(pl.lit("lowers risk"))
        ).to_pandas()

    def pick_row(evt: gr.SelectData) -> str:
        row = evt.row_value or []
        return str(row[data.FLAGGED_COLUMNS.index("trans_num")]) if row else ""

    with gr.Blocks(title="Card fraud detection", analytics_enabled=False) as app:
        gr.Markdown("# Card fraud detection", elem_id="title")
        signed_in = gr.Markdown(elem_id="signed-in")
        with gr.Tab("Dashboard", id="dashboard", elem_id="tab-dashboard"):
            kpis = gr.HTML(elem_id="kpis")
            with gr.Row():
                trend = gr.LinePlot(
                    x="time",
                    y="value",
                    color="metric",
                    title="Fraud probability and flag rate over time",
                    y_lim=[0, 1],
                    elem_id="trend",
                )
            with gr.Row():
                per_category = gr.BarPlot(
                    x="category",
                    y="flag_rate",
                    title="Flag rate by category",
                    x_label_angle=-45,
                    tooltip=["category", "scored", "flagged", "amount_flagged", "flag_rate"],
                    elem_id="by-category",
                )
                per_hour = gr.BarPlot(
                    x="hour",
                    y="flag_rate",
                    title="Flag rate by hour of day (UTC)",
                    tooltip=["hour", "scored", "flagged", "amount_flagged", "flag_rate"],
                    elem_id="by-hour",
                )
            gr.Markdown("### Latest flagged transactions")
            with gr.Row():
                time_range = gr.Dropdown(
                    list(data.TIME_RANGES), value="all", label="Time range", elem_id="f-time"
                )
                category_filter = gr.Dropdown(
                    [data.ALL_CATEGORIES, *CATEGORIES],
                    value=data.ALL_CATEGORIES,
                    label="Category",
                    elem_id="f-category",
                )
                min_probability = gr.Slider(
                    0, 1, value=0, step=0.01, label="Minimum probability", elem_id="f-prob"
                )
                min_amount = gr.Number(value=0, label="Minimum amount ($)", elem_id="f-amount")
            table = gr.Dataframe(
                label="Flagged transactions (click a row to label it; click a header to sort)",
                elem_id="flagged",
                interactive=False,
                show_search="filter",
                max_height=420,
            )
            with gr.Row(elem_id="feedback-row"):
                fb_trans = gr.Textbox(label="Transaction id", elem_id="feedback-trans-num")
                fb_verdict = gr.Radio(
                    list(VERDICTS), value="confirmed fraud", label="Verdict", elem_id="fb-verdict"
                )
                fb_analyst = gr.Textbox(label="Analyst", elem_id="feedback-analyst")
                fb_save = gr.Button("Save label", variant="primary", elem_id="feedback-save")
            fb_status = gr.Markdown(elem_id="feedback-status")
            with gr.Accordion("Headline figures as JSON", open=False):
                figures = gr.JSON(elem_id="figures")
            refresh = gr.Button("Refresh now", elem_id="refresh")

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

        with gr.Tab("Score a transaction", id="score", elem_id="tab-score"):
            gr.Markdown(
                "Scores with the champion model and the pipeline's own feature code. "
                "Times are UTC. With a card number, the card's history (training data and "
                "live transactions) feeds the history features; without one, the "
                "transaction counts as the card's first."
            )
            with gr.Row():
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
                    dob = gr.Textbox(
                        value="1980-05-17", label="Date of birth (YYYY-MM-DD)", elem_id="in-dob"
                    )
                    gender = gr.Dropdown(
                        ["", "F", "M"], value="", label="Gender (optional)", elem_id="in-gender"
                    )
                    city_pop = gr.Textbox(
                        value="", label="City population (optional)", elem_id="in-city-pop"
                    )
                with gr.Column():
                    c_lat = gr.Number(value=40.71, label="Cardholder latitude", elem_id="in-lat")
                    c_long = gr.Number(
                        value=-74.01, label="Cardholder longitude", elem_id="in-long"
                    )
                    m_lat = gr.Number(value=40.85, label="Merchant latitude", elem_id="in-mlat")
                    m_long = gr.Number(value=-73.87, label="Merchant longitude", elem_id="in-mlong")
                    score_btn = gr.Button("Score", variant="primary", elem_id="score-button")
                    probability = gr.Number(
                        label="Fraud probability",
                        precision=4,
                        interactive=False,
                        elem_id="score-probability",
                    )
                    decision = gr.Textbox(
                        label="Decision", interactive=False, elem_id="score-decision"
                    )
            contrib_plot = gr.BarPlot(
                x="family",
                y="contribution",
                color="direction",
                color_map={"raises risk": "#d62728", "lowers risk": "#2ca02c"},
                title="What moved the score, by feature family",
                sort="-y",
                x_label_angle=-30,
                elem_id="score-plot",
            )
            explanation = gr.Dataframe(
                label="Explanation: TreeSHAP contributions to the model's raw score, summed "
                "by feature family (positive = pushed the score up; they add up to the raw "
                "score minus the model's baseline)",
                interactive=False,
                elem_id="score-explanation",
            )

        filters = [time_range, category_filter, min_probability, min_amount]
        dash_out = [kpis, figures, trend, per_category, per_hour, table]
        reads = {"concurrency_id": DASHBOARD_READS, "concurrency_limit": DASHBOARD_LIMIT}
        private = {"api_visibility": "private", **reads}
        refresh.click(
            dashboard_view, inputs=filters, outputs=dash_out, api_name="dashboard", **reads
        )
        app.load(dashboard_view, inputs=filters, outputs=dash_out, **private)
        timer = gr.Timer(settings.app_refresh_seconds)
        timer.tick(
            dashboard_view, inputs=filters, outputs=dash_out, show_progress="hidden", **private
        )
        # The time range bounds every figure; the other filters only the flagged list.
        time_range.change(dashboard_view, inputs=filters, outputs=dash_out, **private)
        for control in filters[1:]:
            control.change(flagged_frame, inputs=filters, outputs=table, **private)
        table.select(pick_row, outputs=fb_trans, api_visibility="private")
        fb_save.click(
            feedback,
            inputs=[fb_trans, fb_verdict, fb_analyst],
            outputs=fb_status,
            api_name="feedback",
        ).success(flagged_frame, inputs=filters, outputs=table, **private)
        gr.api(flagged_records, api_name="flagged", **reads)
        app.load(whoami, outputs=[fb_analyst, signed_in], api_visibility="private")

        mon_out = [mon_status, perf_table, perf_plot, drift, alerts]
        mon = {"concurrency_id": MONITORING, "concurrency_limit": MONITORING_LIMIT}
        mon_refresh.click(monitoring_view, outputs=mon_out, api_name="monitoring", **mon)
        monitoring_tab.select(monitoring_view, outputs=mon_out, api_visibility="private", **mon)

        model_refresh.click(model, outputs=[model_md, metrics, importance_plot], api_name="model")
        app.load(model, outputs=[model_md, metrics, importance_plot], api_visibility="private")
        form = [amount, category, m_lat, m_long, c_lat, c_long, dob, tx_time, card, gender]
        form += [city_pop]
        score_btn.click(
            score,
            inputs=form,
            outputs=[probability, decision],
            api_name="score",
            concurrency_limit=SCORE_LIMIT,
        ).success(
            explain,
            inputs=form,
            outputs=explanation,
            api_name="explain",
            concurrency_limit=SCORE_LIMIT,
        ).success(
            contributions_plot,
            inputs=explanation,
            outputs=contrib_plot,
            api_visibility="private",
        )
    app.queue(default_concurrency_limit=DEFAULT_LIMIT, max_size=QUEUE_SIZE)
    return app


def launch(app: gr.Blocks, **kwargs: Any) -> tuple[Any, str, str]:
    """Launch as deployments do: loopback unless GRADIO_SERVER_NAME says otherwise, no run
    history (form inputs are personal data), a login from FRAUD_APP_USERS(_FILE) when set.

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
    }
    if "auth" not in kwargs:
        users = auth.login_policy(settings, host)
        if users:
            options["auth"] = auth.gradio_auth(users)
            options["auth_message"] = "Fraud analysts only: sign in with your analyst login."
            log.info("login required; %d analysts configured", len(users.names))
    return app.launch(**(options | kwargs))
