"""What the dashboard shows, computed by the warehouse in SQL (no Gradio here, so it is testable).

Each figure comes from one read-only query through ``Warehouse.query``, on SQLite or PostgreSQL
(the per-hour buckets serve both the trend and the hour-of-day breakdown), bounded by the time
filter: the rows whose event time is at most the range before the newest scored row's
(``window_start``), so a replayed feed works like a live one. Only aggregates and at most
``limit`` flagged rows leave the database.

Scored rows say which path decided them (``decided_by``: Dagster's runs of the polled API, the
decision service, the stream); the decision log (``decision_log``) also gives the paths that
log their decisions (the service, the stream) figures of their own over its last minutes by
wall clock: decisions, review rate and server time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from fraud_assets.lib.schema import CATEGORIES
from fraud_assets.lib.warehouse import Warehouse

SCORED = "scored_transactions"
LABELS = "analyst_labels"
LOG = "decision_log"
#: The paths that decide (``decided_by``), as the dashboard names them. NULL (rows scored
#: before the column existed) counts as polled.
PATHS = {"poll": "polled", "service": "decision service", "stream": "stream"}
#: The decision log's own figures (decisions, review rate, server time) cover this long,
#: back from now: they say how the decision service is doing, not what the feed replays.
LOGGED_WINDOW = dt.timedelta(minutes=15)
#: Filter choices: label -> how far back from the newest transaction.
TIME_RANGES: dict[str, dt.timedelta | None] = {
    "last hour": dt.timedelta(hours=1),
    "last 24 hours": dt.timedelta(days=1),
    "last 7 days": dt.timedelta(days=7),
    "all": None,
}
ALL_CATEGORIES = "all"
FLAGGED_LIMIT = 200
#: The trend is per hour, or per day when the rows in range span more than this.
DAILY_TREND_AFTER = dt.timedelta(days=3)
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


EMPTY_SUMMARY = Summary(0, 0, 0.0, 0.0, "none", 0, 0, None, None, None)


@dataclass(frozen=True)
class _Sql:
    """What differs between the dialects here: time expressions and time parameters."""

    hour_bucket: str  # event_time truncated to the hour

    @staticmethod
    def of(wh: Warehouse) -> _Sql:
        if wh.postgres:
            return _Sql(hour_bucket="date_trunc('hour', event_time)")
        # SQLite keeps times as 'YYYY-MM-DD HH:MM:SS.fff' text (see Warehouse), so prefixes work.
        return _Sql(hour_bucket="substr(event_time, 1, 13) || ':00:00.000'")


def _time_param(wh: Warehouse, when: dt.datetime) -> Any:
    if wh.postgres:
        return when
    return f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d}"


def _since(wh: Warehouse, since: dt.datetime | None, column: str = "event_time") -> tuple:
    """A WHERE condition (``TRUE`` when unbounded) and its parameters."""
    if since is None:
        return "1 = 1", []
    return f"{column} >= ?", [_time_param(wh, since)]


def window_start(wh: Warehouse, time_range: str) -> dt.datetime | None:
    """Where ``time_range`` starts: that long before the newest scored row (None for "all" or
    an empty table)."""
    if time_range not in TIME_RANGES:
        raise ValueError(f"time range must be one of {', '.join(TIME_RANGES)}")
    span = TIME_RANGES[time_range]
    if span is None or not wh.table_exists(SCORED):
        return None
    newest = wh.query(
        f"SELECT max(event_time) AS newest FROM {{t:{SCORED}}}", {"newest": pl.Datetime("ms")}
    )["newest"][0]
    return None if newest is None else newest - span


GROUPS_SCHEMA = {
    "model_version": pl.String,
    "decided_by": pl.String,
    "scored": pl.Int64,
    "flagged": pl.Int64,
    "amount_flagged": pl.Float64,
    "labelled": pl.Int64,
    "labelled_frauds": pl.Int64,
    "flagged_labelled": pl.Int64,
    "hits": pl.Int64,
    "newest": pl.Datetime("ms"),
    "last_scored": pl.Datetime("ms"),
}


def _groups(wh: Warehouse, since: dt.datetime | None) -> pl.DataFrame:
    """The rows from ``since`` counted per model version and deciding path (NULL: "poll"):
    a handful of groups, from which the headline figures and the paths both add up."""
    if not wh.table_exists(SCORED):
        return pl.DataFrame(schema=GROUPS_SCHEMA)
    where, params = _since(wh, since)
    path = "COALESCE(decided_by, 'poll')"
    return wh.query(
        f"""
        SELECT model_version,
               {path},
               count(*),
               sum(CASE WHEN is_flagged THEN 1 ELSE 0 END),
               sum(CASE WHEN is_flagged THEN amt ELSE 0.0 END),
               sum(CASE WHEN label_is_fraud IS NOT NULL THEN 1 ELSE 0 END),
               sum(CASE WHEN label_is_fraud = 1 THEN 1 ELSE 0 END),
               sum(CASE WHEN is_flagged AND label_is_fraud IS NOT NULL THEN 1 ELSE 0 END),
               sum(CASE WHEN is_flagged AND label_is_fraud = 1 THEN 1 ELSE 0 END),
               max(event_time),
               max(scored_at)
        FROM {{t:{SCORED}}} WHERE {where}
        GROUP BY model_version, {path}
        """,
        GROUPS_SCHEMA,
        params,
    )


def _summary_of(groups: pl.DataFrame) -> Summary:
    if groups.height == 0:
        return EMPTY_SUMMARY
    counts = groups.drop("model_version", "decided_by", "newest", "last_scored")
    row = counts.sum().row(0, named=True)
    latest = groups.sort("last_scored", "model_version", nulls_last=False)[-1]
    hits, flagged_labelled, frauds = row["hits"], row["flagged_labelled"], row["labelled_frauds"]
    return Summary(
        scored=row["scored"],
        flagged=row["flagged"],
        flag_rate=row["flagged"] / row["scored"],
        amount_at_risk=float(row["amount_flagged"]),
        model_version=str(latest["model_version"][0]),
        labelled=row["labelled"],
        labelled_frauds=frauds,
        precision=hits / flagged_labelled if flagged_labelled else None,
        recall=hits / frauds if frauds else None,
        newest_event=str(groups["newest"].max()),
    )


def _paths_of(groups: pl.DataFrame) -> pl.DataFrame:
    per_path = (
        groups.group_by("decided_by")
        .agg(pl.col("scored", "flagged", "amount_flagged").sum())
        .sort("decided_by")
    )
    named = pl.col("decided_by").replace_strict(PATHS, default=pl.col("decided_by"))
    columns = ["decided_by", "scored", "flagged", "amount_flagged", "flag_rate"]
    return _rates(per_path).select(named.alias("decided_via"), *columns)


def summarize(wh: Warehouse, since: dt.datetime | None = None) -> Summary:
    """Headline numbers of the rows from ``since``; precision and recall count only rows whose
    delayed label arrived. The model version is the one that scored most recently.

    One scan: the figures come per model version and path (a handful of groups) and add up
    here, which also tells which version scored last without a second pass over the rows."""
    return _summary_of(_groups(wh, since))


def by_path(wh: Warehouse, since: dt.datetime | None = None) -> pl.DataFrame:
    """Per path that decided (``decided_by``: "poll", "service", "stream"; NULL counts as
    "poll"), named for people in ``decided_via``: rows scored, flagged, amount flagged and
    flag rate."""
    return _paths_of(_groups(wh, since))


def summary_and_paths(
    wh: Warehouse, since: dt.datetime | None = None
) -> tuple[Summary, pl.DataFrame]:
    """``summarize`` and ``by_path`` from the one scan."""
    groups = _groups(wh, since)
    return _summary_of(groups), _paths_of(groups)


TREND_SCHEMA = {"time": pl.Datetime("ns"), "metric": pl.String, "value": pl.Float64}


def hourly(wh: Warehouse, since: dt.datetime | None = None) -> pl.DataFrame:
    """Per hour (``time``, truncated) of the rows from ``since``: ``rows``, ``probability_sum``,
    ``flagged``, ``amount_flagged`` and the first and last event times. Sums, not means, so
    that hours add up exactly to days (the trend) and to hours of the day (``by_hour``): one
    scan serves both."""
    schema = {
        "time": pl.Datetime("ms"),
        "rows": pl.Int64,
        "probability_sum": pl.Float64,
        "flagged": pl.Int64,
        "amount_flagged": pl.Float64,
        "first_event": pl.Datetime("ms"),
        "last_event": pl.Datetime("ms"),
    }
    if not wh.table_exists(SCORED):
        return pl.DataFrame(schema=schema)
    where, params = _since(wh, since)
    bucket = _Sql.of(wh).hour_bucket
    return wh.query(
        f"""
        SELECT {bucket} AS hour_start, count(*), sum(fraud_probability),
               sum(CASE WHEN is_flagged THEN 1 ELSE 0 END),
               sum(CASE WHEN is_flagged THEN amt ELSE 0.0 END),
               min(event_time), max(event_time)
        FROM {{t:{SCORED}}} WHERE {where}
        GROUP BY {bucket} ORDER BY hour_start
        """,
        schema,
        params,
    )


def over_time(hours: pl.DataFrame) -> pl.DataFrame:
    """Mean fraud probability and flag rate per hour, or per day when the rows span more than
    three days, in long form (``time``, ``metric``, ``value``) for the trend plot."""
    if hours.height == 0:
        return pl.DataFrame(schema=TREND_SCHEMA)
    span = hours["last_event"].max() - hours["first_event"].min()
    if span > DAILY_TREND_AFTER:
        hours = hours.group_by(pl.col("time").dt.truncate("1d")).agg(
            pl.col("rows", "probability_sum", "flagged").sum()
        )
    wide = hours.sort("time").select(
        "time",
        (pl.col("probability_sum") / pl.col("rows")).alias("mean probability"),
        (pl.col("flagged") / pl.col("rows")).alias("flag rate"),
    )
    # Nanoseconds: pandas writes datetime64[ms] to JSON wrongly, and Gradio plots use that JSON.
    long = wide.unpivot(index="time", variable_name="metric", value_name="value")
    return long.with_columns(pl.col("time").cast(pl.Datetime("ns"))).cast(TREND_SCHEMA)


def _rates(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("amount_flagged").round(2),
        flag_rate=(pl.col("flagged") / pl.col("scored")).round(4),
    )


def by_hour(hours: pl.DataFrame) -> pl.DataFrame:
    """Per hour of day (UTC, 0-23), from ``hourly``: rows scored, flagged, amount flagged and
    flag rate.

    Adding up the hourly buckets (a few hundred rows) is exact and spares the database a
    second pass: PostgreSQL cannot tell how many groups an hour-of-day expression makes, so
    grouping by one plans a sort of every row."""
    return _rates(
        hours.group_by(hour=pl.col("time").dt.hour().cast(pl.Int32))
        .agg(
            pl.col("rows").sum().alias("scored"),
            pl.col("flagged").sum(),
            pl.col("amount_flagged").sum(),
        )
        .sort("hour")
    )


def by_category(wh: Warehouse, since: dt.datetime | None = None) -> pl.DataFrame:
    """Per category: rows scored, flagged, amount flagged and flag rate."""
    schema = {
        "category": pl.String,
        "scored": pl.Int64,
        "flagged": pl.Int64,
        "amount_flagged": pl.Float64,
    }
    if not wh.table_exists(SCORED):
        return _rates(pl.DataFrame(schema=schema))
    where, params = _since(wh, since)
    return _rates(
        wh.query(
            f"""
            SELECT category, count(*), sum(CASE WHEN is_flagged THEN 1 ELSE 0 END),
                   sum(CASE WHEN is_flagged THEN amt ELSE 0.0 END)
            FROM {{t:{SCORED}}} WHERE {where}
            GROUP BY category ORDER BY category
            """,
            schema,
            params,
        )
    )


LOGGED_SCHEMA = {
    "decided_by": pl.String,
    "decisions": pl.Int64,
    "reviews": pl.Int64,
    "server_ms_p50": pl.Float64,
    "server_ms_p99": pl.Float64,
}


def logged_figures(
    wh: Warehouse, now: dt.datetime, window: dt.timedelta = LOGGED_WINDOW
) -> pl.DataFrame:
    """Per path of the decision log (the decision service, the stream), over the ``window``
    before ``now`` (naive UTC, as ``logged_at``): decisions, reviews, review rate, and the
    server time's p50 and p99 (nearest rank: the smallest ``server_ms`` with at least that
    share of the decisions at or below it).

    The quantiles come from the database too: each decision's rank by server time within its
    path (a window function, on SQLite and PostgreSQL alike), and the first value from the
    quantile's rank on (compared in whole numbers, so both dialects round alike)."""
    if not wh.table_exists(LOG):
        rows = pl.DataFrame(schema=LOGGED_SCHEMA)
    else:
        where, params = _since(wh, now - window, "logged_at")
        rows = wh.query(
            f"""
            WITH ranked AS (
                SELECT decided_by, is_flagged, server_ms,
                       row_number() OVER (PARTITION BY decided_by ORDER BY server_ms) AS r,
                       count(*) OVER (PARTITION BY decided_by) AS n
                FROM {{t:{LOG}}} WHERE {where} AND server_ms IS NOT NULL
            )
            SELECT decided_by, max(n), sum(CASE WHEN is_flagged THEN 1 ELSE 0 END),
                   min(CASE WHEN 100 * r >= 50 * n THEN server_ms END),
                   min(CASE WHEN 100 * r >= 99 * n THEN server_ms END)
            FROM ranked GROUP BY decided_by ORDER BY decided_by
            """,
            LOGGED_SCHEMA,
            params,
        )
    return rows.with_columns(review_rate=(pl.col("reviews") / pl.col("decisions")).round(4))


def newest_logged(wh: Warehouse) -> dt.datetime | None:
    """When the newest decision was logged (None while the log is empty or missing)."""
    if not wh.table_exists(LOG):
        return None
    at = wh.query(f"SELECT max(logged_at) FROM {{t:{LOG}}}", {"at": pl.Datetime("ms")})
    return at["at"][0]


NOTHING_LOGGED = {
    "decisions": 0,
    "reviews": 0,
    "server_ms_p50": None,
    "server_ms_p99": None,
    "review_rate": None,
}


@dataclass(frozen=True)
class Logged:
    """The decision log's figures over the recent window, per path, and its newest entry."""

    figures: pl.DataFrame  # logged_figures
    newest: dt.datetime | None
    window: dt.timedelta = LOGGED_WINDOW

    def of(self, decided_by: str) -> dict[str, Any]:
        """One path's figures (zeros and None when it decided nothing in the window)."""
        rows = self.figures.filter(pl.col("decided_by") == decided_by).drop("decided_by")
        return rows.row(0, named=True) if rows.height else dict(NOTHING_LOGGED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_minutes": self.window.total_seconds() / 60,
            "newest_logged_at": None if self.newest is None else str(self.newest),
            **{decided_by: self.of(decided_by) for decided_by in ("service", "stream")},
        }


def logged(wh: Warehouse, now: dt.datetime, window: dt.timedelta = LOGGED_WINDOW) -> Logged:
    """``logged_figures`` and the newest logged decision."""
    return Logged(logged_figures(wh, now, window), newest_logged(wh), window)


def mask_card(cc_num: pl.Expr) -> pl.Expr:
    """Only the last four digits of a card number are shown."""
    return pl.lit("•••• ") + cc_num.str.slice(-4)


def flagged_table(
    wh: Warehouse,
    since: dt.datetime | None = None,
    category: str = ALL_CATEGORIES,
    min_probability: float = 0.0,
    min_amount: float = 0.0,
    limit: int = FLAGGED_LIMIT,
) -> pl.DataFrame:
    """The newest ``limit`` flagged transactions from ``since`` matching the filters, with any
    analyst verdict; card numbers masked."""
    if category != ALL_CATEGORIES and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    schema = {
        "event_time": pl.Datetime("ms"),
        "trans_num": pl.String,
        "cc_num": pl.String,
        "merchant": pl.String,
        "category": pl.String,
        "amt": pl.Float64,
        "fraud_probability": pl.Float64,
        "model_version": pl.String,
        "label_is_fraud": pl.Int8,
        "verdict": pl.Int8,
        "analyst": pl.String,
    }
    if not wh.table_exists(SCORED):
        rows = pl.DataFrame(schema=schema)
    else:
        where, params = _since(wh, since, "s.event_time")
        conditions = [where, "s.is_flagged", "s.fraud_probability >= ?", "s.amt >= ?"]
        params += [float(min_probability or 0.0), float(min_amount or 0.0)]
        if category != ALL_CATEGORIES:
            conditions.append("s.category = ?")
            params.append(category)
        has_labels = wh.table_exists(LABELS)
        verdicts = "l.is_fraud, l.analyst" if has_labels else "NULL, NULL"
        join = f"LEFT JOIN {{t:{LABELS}}} l ON l.trans_num = s.trans_num" if has_labels else ""
        rows = wh.query(
            f"""
            SELECT s.event_time, s.trans_num, s.cc_num, s.merchant, s.category, s.amt,
                   s.fraud_probability, s.model_version, s.label_is_fraud, {verdicts}
            FROM {{t:{SCORED}}} s {join}
            WHERE {" AND ".join(conditions)}
            ORDER BY s.event_time DESC, s.trans_num DESC LIMIT {int(limit)}
            """,
            schema,
            params,
        )
    verdict = pl.when(pl.col("verdict") == 1).then(pl.lit("fraud")).otherwise(pl.lit("not fraud"))
    return rows.with_columns(
        card=mask_card(pl.col("cc_num")),
        amt=pl.col("amt").round(2),
        fraud_probability=pl.col("fraud_probability").round(4),
        api_label=pl.col("label_is_fraud")
        .replace_strict({1: "fraud", 0: "not fraud"}, default=None, return_dtype=pl.String)
        .fill_null("pending"),
        analyst_label=pl.when(pl.col("verdict").is_not_null())
        .then(verdict + pl.lit(" (") + pl.col("analyst") + pl.lit(")"))
        .otherwise(pl.lit("")),
        event_time=pl.col("event_time").dt.strftime("%Y-%m-%d %H:%M:%S"),
    ).select(FLAGGED_COLUMNS)


def label_count(wh: Warehouse) -> int:
    """How many analyst verdicts are stored."""
    return wh.count(LABELS)
