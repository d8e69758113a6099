"""What the dashboard shows, computed from warehouse frames (no Gradio here, so it is testable)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import polars as pl

from fraud_assets.lib.feedback import read_labels
from fraud_assets.lib.schema import CATEGORIES, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

#: Filter choices for the flagged list: label -> how far back from the newest transaction.
TIME_RANGES: dict[str, dt.timedelta | None] = {
    "last hour": dt.timedelta(hours=1),
    "last 24 hours": dt.timedelta(days=1),
    "last 7 days": dt.timedelta(days=7),
    "all": None,
}
ALL_CATEGORIES = "all"
FLAGGED_COLUMNS = [
    "event_time",
    "trans_num",
    "card",
    "merchant",
    "category",
    "amt",
    "fraud_probability",
    "model_version",
    "api_label",
    "analyst_label",
]
NO_DATA = (
    "No scored transactions yet. The first model trains by itself; scored rows appear here "
    "within a few minutes of `make run`."
)


@dataclass
class Summary:
    """Headline numbers, plus live precision/recall from the API's delayed labels."""

    scored: int
    flagged: int
    flag_rate: float
    amount_at_risk: float
    model_version: str
    labelled: int
    labelled_frauds: int
    precision: float | None
    recall: float | None
    newest_event: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def load_scored(wh: Warehouse, limit: int = 50_000) -> pl.DataFrame:
    """The ``limit`` most recent scored rows (by event time)."""
    return wh.read(
        "scored_transactions", SCORED_TRANSACTIONS_SCHEMA, order_by="event_time", limit=limit
    )


def load_labels(wh: Warehouse) -> pl.DataFrame:
    return read_labels(wh)


def summarize(scored: pl.DataFrame) -> Summary:
    """Headline numbers; precision and recall count only rows whose delayed label arrived."""
    if scored.height == 0:
        return Summary(0, 0, 0.0, 0.0, "none", 0, 0, None, None, None)
    flagged = scored.filter("is_flagged")
    labelled = scored.filter(pl.col("label_is_fraud").is_not_null())
    truth = labelled["label_is_fraud"] == 1
    hits = int((labelled["is_flagged"] & truth).sum())
    flagged_labelled = int(labelled["is_flagged"].sum())
    frauds = int(truth.sum())
    return Summary(
        scored=scored.height,
        flagged=flagged.height,
        flag_rate=flagged.height / scored.height,
        amount_at_risk=float(flagged["amt"].sum()),
        model_version=str(scored.sort("scored_at")["model_version"][-1]),
        labelled=labelled.height,
        labelled_frauds=frauds,
        precision=hits / flagged_labelled if flagged_labelled else None,
        recall=hits / frauds if frauds else None,
        newest_event=str(scored["event_time"].max()),
    )


def over_time(scored: pl.DataFrame) -> pl.DataFrame:
    """Mean fraud probability and flag rate per hour (per day when data spans over 3 days),
    in long form: ``time``, ``metric``, ``value``."""
    if scored.height == 0:
        return pl.DataFrame(schema={"time": pl.Datetime("ns"), "metric": pl.String, "value": float})
    span = scored["event_time"].max() - scored["event_time"].min()
    every = "1d" if span > dt.timedelta(days=3) else "1h"
    wide = (
        scored.sort("event_time")
        .group_by_dynamic("event_time", every=every)
        .agg(
            pl.col("fraud_probability").mean().alias("mean probability"),
            pl.col("is_flagged").cast(pl.Float64).mean().alias("flag rate"),
        )
        .rename({"event_time": "time"})
    )
    # Nanoseconds: pandas writes datetime64[ms] to JSON wrongly, and Gradio plots use that JSON.
    long = wide.unpivot(index="time", variable_name="metric", value_name="value")
    return long.with_columns(pl.col("time").cast(pl.Datetime("ns")))


def _breakdown(scored: pl.DataFrame, by: pl.Expr, name: str) -> pl.DataFrame:
    return (
        scored.group_by(by.alias(name))
        .agg(
            pl.len().alias("scored"),
            pl.col("is_flagged").sum().cast(pl.Int64).alias("flagged"),
            pl.col("amt").filter("is_flagged").sum().round(2).alias("amount_flagged"),
        )
        .with_columns(flag_rate=(pl.col("flagged") / pl.col("scored")).round(4))
        .sort(name)
    )


def by_category(scored: pl.DataFrame) -> pl.DataFrame:
    """Per category: rows scored, flagged, amount flagged and flag rate."""
    return _breakdown(scored, pl.col("category"), "category")


def by_hour(scored: pl.DataFrame) -> pl.DataFrame:
    """Per hour of day (UTC, 0-23): rows scored, flagged, amount flagged and flag rate."""
    return _breakdown(scored, pl.col("event_time").dt.hour().cast(pl.Int32), "hour")


def mask_card(cc_num: pl.Expr) -> pl.Expr:
    """Only the last four digits of a card number are shown."""
    return pl.lit("•••• ") + cc_num.str.slice(-4)


def flagged_table(
    scored: pl.DataFrame,
    labels: pl.DataFrame,
    time_range: str = "all",
    category: str = ALL_CATEGORIES,
    min_probability: float = 0.0,
    min_amount: float = 0.0,
    limit: int = 200,
) -> pl.DataFrame:
    """The flagged transactions matching the filters, newest first, with any analyst verdict.

    ``time_range`` counts back from the newest scored transaction, so it works on replayed data.
    """
    if time_range not in TIME_RANGES:
        raise ValueError(f"time range must be one of {', '.join(TIME_RANGES)}")
    if category != ALL_CATEGORIES and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    rows = scored.filter(
        pl.col("is_flagged"),
        pl.col("fraud_probability") >= (min_probability or 0.0),
        pl.col("amt") >= (min_amount or 0.0),
    )
    if category != ALL_CATEGORIES:
        rows = rows.filter(pl.col("category") == category)
    window = TIME_RANGES[time_range]
    if window is not None and scored.height:
        rows = rows.filter(pl.col("event_time") >= scored["event_time"].max() - window)
    verdicts = labels.select(
        "trans_num",
        analyst_label=pl.when(pl.col("is_fraud") == 1)
        .then(pl.lit("fraud"))
        .otherwise(pl.lit("not fraud"))
        + pl.lit(" (")
        + pl.col("analyst")
        + pl.lit(")"),
    )
    return (
        rows.sort("event_time", "trans_num", descending=True)
        .head(limit)
        .join(verdicts, on="trans_num", how="left", maintain_order="left")
        .with_columns(
            card=mask_card(pl.col("cc_num")),
            amt=pl.col("amt").round(2),
            fraud_probability=pl.col("fraud_probability").round(4),
            api_label=pl.col("label_is_fraud")
            .replace_strict({1: "fraud", 0: "not fraud"}, default=None, return_dtype=pl.String)
            .fill_null("pending"),
            analyst_label=pl.col("analyst_label").fill_null(""),
            event_time=pl.col("event_time").dt.strftime("%Y-%m-%d %H:%M:%S"),
        )
        .select(FLAGGED_COLUMNS)
    )
