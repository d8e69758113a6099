"""What the app's events and named endpoints do: one method each, rate-limited per client.

Kept apart from the layout (``app.py``) so each stays readable; methods are bound, so Gradio
sees the same parameters (and docstrings) as the endpoints document.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd
import polars as pl

from app_gradio import data, monitoring
from app_gradio.dashboard import Dashboard
from app_gradio.model_info import model_card
from app_gradio.scoring import InvalidTransaction, ManualTransaction, Scorer, parse_form
from app_gradio.views import client_key, drift_table, kpi_html, paths_html, warehouse_error
from fraud_assets.lib.features import IncompatibleModel
from fraud_assets.lib.feedback import record_label
from fraud_assets.lib.ratelimit import RateLimiter, retry_message
from fraud_assets.lib.registry import NoChampionError
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

VERDICTS = {"confirmed fraud": True, "not fraud": False}


class Handlers:
    """The app's actions, over one scorer, one shared dashboard snapshot and one limiter."""

    def __init__(
        self,
        scorer: Scorer,
        dashboard: Dashboard,
        warehouse: Callable[[], Warehouse],
        limiter: RateLimiter,
    ) -> None:
        self.scorer, self.dashboard = scorer, dashboard
        self.warehouse, self.limiter = warehouse, limiter

    def limit(self, request: gr.Request | None) -> None:
        wait = self.limiter.acquire(client_key(request))
        if wait > 0:
            raise gr.Error(retry_message(wait), title="Too many requests")

    def dashboard_view(
        self,
        time_range: str = "all",
        category: str = data.ALL_CATEGORIES,
        min_probability: float = 0.0,
        min_amount: float = 0.0,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """Headline cards and figures, trend, breakdowns by category and hour, decisions by
        path (polled, decision service, stream) as a plot and as cards with the decision
        service's own figures (decisions, review rate, server time p50 and p99 over the
        decision log's last 15 minutes), all but those last over the time range, and the
        flagged list (newest 200 matching every filter)."""
        started = time.perf_counter()
        self.limit(request)
        try:
            agg = self.dashboard.aggregates(time_range)
            table = self.dashboard.flagged(time_range, category, min_probability, min_amount)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:
            raise warehouse_error(exc) from exc
        paths = paths_html(agg.by_path, agg.logged)
        out = (
            kpi_html(agg.summary),
            agg.figures,
            agg.trend,
            agg.categories,
            agg.hours,
            agg.paths,
            paths,
            table,
        )
        if self.dashboard.timings is not None:
            self.dashboard.timings.handler.append(time.perf_counter() - started)
        return out

    def flagged_frame(
        self,
        time_range: str,
        category: str,
        min_probability: float,
        min_amount: float,
        request: gr.Request | None = None,
    ) -> pd.DataFrame:
        """The flagged transactions matching the filters, newest first (up to 200)."""
        self.limit(request)
        try:
            return self.dashboard.flagged(time_range, category, min_probability, min_amount)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:
            raise warehouse_error(exc) from exc

    def flagged_records(
        self,
        time_range: str = "all",
        category: str = data.ALL_CATEGORIES,
        min_probability: float = 0.0,
        min_amount: float = 0.0,
        request: gr.Request | None = None,
    ) -> list[dict]:
        """The flagged list as records, for scripts: same filters as the dashboard table."""
        frame = self.flagged_frame(time_range, category, min_probability, min_amount, request)
        return frame.to_dict("records")

    def _form(self, *fields: object) -> ManualTransaction:
        try:
            return parse_form(*fields, limits=self.scorer.limits)
        except InvalidTransaction as exc:
            raise gr.Error(f"Invalid transaction: {exc}", title="Invalid input") from exc

    def _with_model(self, call):  # noqa: ANN001, ANN202
        try:
            return call()
        except NoChampionError as exc:
            raise gr.Error(
                "No champion model yet: the first training run registers one.",
                title="No model",
            ) from exc
        except IncompatibleModel as exc:
            raise gr.Error(f"The champion cannot be served: {exc}", title="No model") from exc

    def score(
        self,
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
        self.limit(request)
        tx = self._form(
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
        result = self._with_model(lambda: self.scorer.score(tx))
        return result.probability, result.decision()

    def explain(
        self,
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
        self.limit(request)
        tx = self._form(
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
        return self._with_model(lambda: self.scorer.explain(tx)).families.to_pandas()

    def feedback(self, trans_num: str, verdict: str, analyst: str, request: gr.Request) -> str:
        """Record an analyst's verdict on a scored transaction (marking again replaces it).
        ``verdict`` is "confirmed fraud" or "not fraud". With a login, the verdict is the
        logged-in user's whatever ``analyst`` says; without one, ``analyst`` is required."""
        self.limit(request)
        user = getattr(request, "username", None)
        who = (user or analyst or "").strip()
        tid = (trans_num or "").strip()
        if verdict not in VERDICTS:
            raise gr.Error(f"verdict must be one of: {', '.join(VERDICTS)}")
        if not tid:
            raise gr.Error("Pick a transaction in the flagged list (or give its id).")
        if not who:
            raise gr.Error("Say who you are: fill in the analyst name.")
        wh = self.warehouse()
        known = wh.read(
            "scored_transactions",
            SCORED_TRANSACTIONS_SCHEMA,
            columns=["trans_num"],
            where={"trans_num": [tid]},
        )
        if known.height == 0:
            raise gr.Error(f"No scored transaction has id {tid!r}.")
        row = record_label(wh, tid, VERDICTS[verdict], who)
        self.dashboard.labels_changed()
        when = f"{row['labelled_at']:%Y-%m-%d %H:%M:%S}"
        return f"Saved: {tid} marked **{verdict}** by {who} at {when} UTC."

    def model(self, request: gr.Request | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
        """The champion model: summary, validation metrics and feature importances."""
        self.limit(request)
        try:
            loaded = self.scorer.model()
        except (NoChampionError, IncompatibleModel):
            empty = pl.DataFrame(schema={"metric": pl.String, "value": pl.Float64})
            imp = pl.DataFrame(schema={"feature": pl.String, "importance": pl.Float64})
            return "No champion model yet.", empty.to_pandas(), imp.to_pandas()
        card = model_card(self.scorer.tracking_uri, loaded.model, loaded.info)
        return card.markdown(), card.metrics.to_pandas(), card.importances.to_pandas()

    def monitoring_view(self, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Live performance by model version and day (table and plot of precision, recall and
        flag rate), the newest feature-drift run (PSI per feature, drifted ones marked) and
        the alert history, newest first."""
        self.limit(request)
        try:
            mon = monitoring.read(self.warehouse())
        except Exception as exc:
            raise warehouse_error(exc) from exc
        return (
            mon.status(),
            mon.performance.to_pandas(),
            mon.lines.to_pandas(),
            drift_table(mon.drift),
            mon.alerts.with_columns(
                pl.col("raised_at", "window_start").dt.strftime("%Y-%m-%d %H:%M:%S")
            ).to_pandas(),
        )

    def whoami(self, request: gr.Request) -> tuple[Any, str]:
        """With a login, the analyst field shows (and is) the logged-in user."""
        user = getattr(request, "username", None)
        if not user:
            return gr.update(), ""
        box = gr.update(value=user, interactive=False, label="Analyst (your login)")
        return box, f"Signed in as **{html.escape(user)}** · [log out](logout)"

    def contributions_plot(self, explanation: pd.DataFrame) -> pd.DataFrame:
        frame = pl.from_pandas(explanation) if len(explanation) else pl.DataFrame()
        top = frame.filter(pl.col("contribution") != 0).head(10) if frame.height else frame
        if top.height == 0:
            return pd.DataFrame({"family": [], "contribution": [], "direction": []})
        return top.with_columns(
            direction=pl.when(pl.col("contribution") >= 0)
            .then(pl.lit("raises risk"))
            .otherwise(pl.lit("lowers risk"))
        ).to_pandas()

    def pick_row(self, evt: gr.SelectData) -> str:
        row = evt.row_value or []
        return str(row[data.FLAGGED_COLUMNS.index("trans_num")]) if row else ""
