"""The Gradio app: dashboard, model card, manual scoring with explanation, analyst feedback.

Every action is a named API endpoint (``/dashboard``, ``/flagged``, ``/score``, ``/feedback``,
``/model``) that scripts can call with ``gradio_client``. Configuration comes only from
environment variables (see ``config.py`` and ``fraud_assets.settings``).
"""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr
import pandas as pd
import polars as pl

from app_gradio import config, data
from app_gradio.model_info import model_card
from app_gradio.scoring import InvalidTransaction, Scorer, parse_form
from fraud_assets.lib.feedback import record_label
from fraud_assets.lib.registry import NoChampionError
from fraud_assets.lib.schema import CATEGORIES, SCORED_TRANSACTIONS_SCHEMA
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


def _load_filtered(
    time_range: str, category: str, min_probability: float, min_amount: float
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Scored rows, analyst labels, and the flagged table filtered as asked."""
    wh = config.warehouse()
    try:
        scored, labels = data.load_scored(wh), data.load_labels(wh)
    except Exception as exc:
        raise _warehouse_error(exc) from exc
    try:
        table = data.flagged_table(
            scored, labels, time_range, category, min_probability or 0.0, min_amount or 0.0
        )
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc
    return scored, labels, table


def flagged_frame(
    time_range: str, category: str, min_probability: float, min_amount: float
) -> pd.DataFrame:
    """The flagged transactions matching the filters, newest first (up to 200)."""
    return _load_filtered(time_range, category, min_probability, min_amount)[2].to_pandas()


def flagged_records(
    time_range: str = "all",
    category: str = data.ALL_CATEGORIES,
    min_probability: float = 0.0,
    min_amount: float = 0.0,
) -> list[dict]:
    """The flagged list as records, for scripts: same filters as the dashboard table."""
    return flagged_frame(time_range, category, min_probability, min_amount).to_dict("records")


def dashboard(
    time_range: str = "all",
    category: str = data.ALL_CATEGORIES,
    min_probability: float = 0.0,
    min_amount: float = 0.0,
) -> tuple[Any, ...]:
    """Headline cards and figures, trend, breakdowns by category and hour, flagged list."""
    scored, labels, table = _load_filtered(time_range, category, min_probability, min_amount)
    summary = data.summarize(scored)
    figures = summary.as_dict() | {"analyst_labels": labels.height}
    return (
        kpi_html(summary),
        figures,
        data.over_time(scored).to_pandas(),
        data.by_category(scored).to_pandas(),
        data.by_hour(scored).with_columns(pl.col("hour").cast(pl.String).str.zfill(2)).to_pandas(),
        table.to_pandas(),
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


def build_app(scorer: Scorer | None = None) -> gr.Blocks:
    """The Blocks app; ``scorer`` defaults to one built from the environment."""
    scorer = scorer or make_scorer()

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
    ) -> tuple[float, str, pd.DataFrame]:
        """Calibrated fraud probability, the expected-cost decision, and what moved the score:
        TreeSHAP contributions to the model's raw score, summed by feature family.
        Times are UTC (``YYYY-MM-DD HH:MM:SS``); dates ``YYYY-MM-DD``. The card number is
        optional and only used to look up the card's history."""
        try:
            tx = parse_form(
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
            result = scorer.score(tx)
        except InvalidTransaction as exc:
            raise gr.Error(f"Invalid transaction: {exc}", title="Invalid input") from exc
        except NoChampionError as exc:
            raise gr.Error(
                "No champion model yet: the first training run registers one.",
                title="No model",
            ) from exc
        return result.probability, result.decision(), result.explanation.to_pandas()

    def feedback(trans_num: str, verdict: str, analyst: str, request: gr.Request) -> str:
        """Record an analyst's verdict on a scored transaction (marking again replaces it).
        ``verdict`` is "confirmed fraud" or "not fraud"; with login on, the logged-in user is
        the analyst."""
        who = (getattr(request, "username", None) or analyst or "").strip()
        tid = (trans_num or "").strip()
        if verdict not in VERDICTS:
            raise gr.Error(f"verdict must be one of: {', '.join(VERDICTS)}")
        if not tid:
            raise gr.Error("Pick a transaction in the flagged list (or give its id).")
        if not who:
            raise gr.Error("Say who you are: fill in the analyst name.")
        wh = config.warehouse()
        known = wh.read(
            "scored_transactions",
            SCORED_TRANSACTIONS_SCHEMA,
            columns=["trans_num"],
            where={"trans_num": [tid]},
        )
        if known.height == 0:
            raise gr.Error(f"No scored transaction has id {tid!r}.")
        row = record_label(wh, tid, VERDICTS[verdict], who)
        when = f"{row['labelled_at']:%Y-%m-%d %H:%M:%S}"
        return f"Saved: {tid} marked **{verdict}** by {who} at {when} UTC."

    def model() -> tuple[str, pd.DataFrame, pd.DataFrame]:
        """The champion model: summary, validation metrics and feature importances."""
        try:
            loaded = scorer.model()
        except NoChampionError:
            empty = pl.DataFrame(schema={"metric": pl.String, "value": pl.Float64})
            imp = pl.DataFrame(schema={"feature": pl.String, "importance": pl.Float64})
            return "No champion model yet.", empty.to_pandas(), imp.to_pandas()
        card = model_card(scorer.tracking_uri, loaded.model, loaded.info)
        return card.markdown(), card.metrics.to_pandas(), card.importances.to_pandas()

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
        refresh.click(dashboard, inputs=filters, outputs=dash_out, api_name="dashboard")
        for control in filters:
            control.change(flagged_frame, inputs=filters, outputs=table, api_visibility="private")
        app.load(dashboard, inputs=filters, outputs=dash_out, api_visibility="private")
        timer = gr.Timer(load_settings().app_refresh_seconds)
        timer.tick(
            dashboard,
            inputs=filters,
            outputs=dash_out,
            api_visibility="private",
            show_progress="hidden",
        )
        table.select(pick_row, outputs=fb_trans, api_visibility="private")
        fb_save.click(
            feedback,
            inputs=[fb_trans, fb_verdict, fb_analyst],
            outputs=fb_status,
            api_name="feedback",
        ).success(flagged_frame, inputs=filters, outputs=table, api_visibility="private")
        gr.api(flagged_records, api_name="flagged")
        model_refresh.click(model, outputs=[model_md, metrics, importance_plot], api_name="model")
        app.load(model, outputs=[model_md, metrics, importance_plot], api_visibility="private")
        score_btn.click(
            score,
            inputs=[amount, category, m_lat, m_long, c_lat, c_long, dob, tx_time, card, gender]
            + [city_pop],
            outputs=[probability, decision, explanation],
            api_name="score",
            concurrency_limit=4,
        ).success(
            contributions_plot,
            inputs=explanation,
            outputs=contrib_plot,
            api_visibility="private",
        )
    return app


def launch(app: gr.Blocks, **kwargs: Any) -> tuple[Any, str, str]:
    """Launch as deployments do: loopback unless GRADIO_SERVER_NAME says otherwise, no run
    history (form inputs are personal data), optional login from the environment."""
    options: dict[str, Any] = {
        "server_name": load_settings().app_server_name,
        "run_history": False,
        "footer_links": ["api"],
        "css": CSS,
        "show_error": False,
    }
    return app.launch(**(options | kwargs))
