"""What the dashboard shows, computed from the warehouse (no Gradio here, so it is testable)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fraud_assets import settings
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

TABLE_COLUMNS = [
    "event_time",
    "trans_num",
    "category",
    "amt",
    "fraud_probability",
    "is_flagged",
    "model_version",
    "label_is_fraud",
]


@dataclass
class Summary:
    scored: int
    flagged: int
    flag_rate: float
    amount_at_risk: float
    model_version: str

    def markdown(self) -> str:
        if not self.scored:
            return (
                "**No scored transactions yet.** The first model trains by itself; "
                "scored rows appear here within a few minutes of `make run`."
            )
        return (
            f"**{self.scored:,}** transactions scored · **{self.flagged:,}** flagged "
            f"({self.flag_rate:.2%}) · **${self.amount_at_risk:,.2f}** at risk · "
            f"model version **{self.model_version}**"
        )


def warehouse() -> Warehouse:
    return Warehouse(settings.database_url(), schema=settings.database_schema())


def load_scored(wh: Warehouse | None = None, limit: int = 50_000) -> pl.DataFrame:
    """The most recent scored rows (newest first)."""
    wh = wh or warehouse()
    return wh.read(
        "scored_transactions", SCORED_TRANSACTIONS_SCHEMA, order_by="event_time", limit=limit
    )


def summarize(scored: pl.DataFrame) -> Summary:
    if scored.height == 0:
        return Summary(0, 0, 0.0, 0.0, "none")
    flagged = scored.filter("is_flagged")
    latest = scored.sort("scored_at")["model_version"][-1]
    return Summary(
        scored.height,
        flagged.height,
        flagged.height / scored.height,
        float(flagged["amt"].sum()),
        latest,
    )


def latest_flagged(scored: pl.DataFrame, n: int = 100) -> pl.DataFrame:
    return (
        scored.filter("is_flagged")
        .sort("event_time", descending=True)
        .head(n)
        .select(TABLE_COLUMNS)
    )
