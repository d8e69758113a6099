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


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _cards(cards: list[tuple[str, str, str, str]]) -> str:
    """Cards of (key, label, value, note); each carries ``data-kpi`` so tests and scrapers can
    find it."""
    body = "".join(
        f'<div class="kpi" data-kpi="{key}"><span class="label">{label}</span>'
        f'<span class="value">{value}</span><span class="note">{note}</span></div>'
        for key, label, value, note in cards
    )
    return f'<div class="kpis">{body}</div>'


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
    newest = html.escape(summary.newest_event or "")
    return f'{_cards(cards)}<p class="note">Newest transaction: {newest} UTC</p>'


#: What each path's card says it is.
PATH_CARDS = {
    "poll": "Polled (Dagster runs)",
    "service": "Decision service",
    "stream": "Stream",
}


def paths_html(by_path: pl.DataFrame, logged: data.Logged) -> str:
    """Decisions by path over the time range (every path, 0 when it decided nothing), and
    the decision service's own figures over the decision log's recent window (the stream's
    too, once it decided in that window)."""
    counts = {row["decided_by"]: row for row in by_path.to_dicts()}
    total = sum(row["scored"] for row in counts.values())
    cards = []
    for decided_by, label in PATH_CARDS.items():
        row = counts.get(decided_by, {"scored": 0, "flag_rate": None})
        share = f"{row['scored'] / total:.1%} of decisions" if total else ""
        rate = "" if row["flag_rate"] is None else f", flag rate {row['flag_rate']:.2%}"
        cards.append((f"path_{decided_by}", label, f"{row['scored']:,}", share + rate))
    minutes = f"{logged.window.total_seconds() / 60:g} min"
    parts = [f"<h4>Decisions by path</h4>{_cards(cards)}"]
    for decided_by, title in (("service", "Decision service"), ("stream", "Stream")):
        f = logged.of(decided_by)
        if decided_by == "stream" and not f["decisions"]:
            continue
        parts.append(
            f"<h4>{title}, last {minutes} (decision log)</h4>"
            + _cards(
                [
                    (f"{decided_by}_decisions", "Decisions", f"{f['decisions']:,}", ""),
                    (f"{decided_by}_review_rate", "Review rate", _pct(f["review_rate"]), ""),
                    (f"{decided_by}_p50", "Server time p50", _ms(f["server_ms_p50"]), ""),
                    (f"{decided_by}_p99", "Server time p99", _ms(f["server_ms_p99"]), ""),
                ]
            )
        )
    newest = "none yet" if logged.newest is None else f"{logged.newest:%Y-%m-%d %H:%M:%S} UTC"
    parts.append(f'<p class="note">Newest logged decision: {html.escape(newest)}</p>')
    return "".join(parts)


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
