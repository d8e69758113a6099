"""How the app shows things: headline cards, the drift table, errors, and who is calling."""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr
import polars as pl

from app_gradio import data

log = logging.getLogger(__name__)

DRIFTED_STYLE = "background-color: #fde2e1; color: #8a1c1c; font-weight: 600"


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


def warehouse_error(exc: Exception) -> gr.Error:
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
