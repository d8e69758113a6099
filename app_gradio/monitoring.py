"""What the Monitoring tab shows, read from the monitoring tables (no Gradio here).

``live_performance`` (per day and model version), the newest run of ``feature_drift`` (PSI per
feature), and ``alerts``, newest first. The monitoring assets write these tables; until they
have, each read is empty and the tab says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.redaction import redact
from fraud_assets.lib.schema import (
    ALERTS_SCHEMA,
    FEATURE_DRIFT_SCHEMA,
    LIVE_PERFORMANCE_SCHEMA,
)
from fraud_assets.lib.warehouse import Warehouse

PERFORMANCE, DRIFT, ALERTS = "live_performance", "feature_drift", "alerts"
NO_DATA = "No monitoring data yet: the monitoring assets write it."
#: Rows of live performance shown (days x model versions), newest days first.
PERFORMANCE_ROWS = 1000
ALERT_ROWS = 200
PERFORMANCE_COLUMNS = [
    "day",
    "model_version",
    "rows",
    "labelled",
    "frauds",
    "flagged",
    "precision",
    "recall",
    "ap",
    "flag_rate",
    "fraud_rate",
    "cost",
]
PLOTTED = {"precision": "precision", "recall": "recall", "flag_rate": "flag rate"}
DRIFT_COLUMNS = ["feature", "psi", "drifted", "model_version", "reference_rows", "current_rows"]
ALERT_COLUMNS = ["raised_at", "severity", "condition", "message", "window_start", "sink"]
ALERT_COLUMNS += ["delivered"]


def _columns(schema: dict[str, pl.DataType], names: list[str]) -> dict[str, pl.DataType]:
    return {c: schema[c] for c in names}


def _select(names: list[str], alias: str = "") -> str:
    return ", ".join(f'{alias}"{c}"' for c in names)


def performance(wh: Warehouse, limit: int = PERFORMANCE_ROWS) -> pl.DataFrame:
    """Live performance per day and model version, newest day first."""
    schema = _columns(LIVE_PERFORMANCE_SCHEMA, PERFORMANCE_COLUMNS)
    if not wh.table_exists(PERFORMANCE):
        return pl.DataFrame(schema=schema)
    return wh.query(
        f"SELECT {_select(PERFORMANCE_COLUMNS)} FROM {{t:{PERFORMANCE}}} "
        f'ORDER BY "day" DESC, "model_version" LIMIT {int(limit)}',
        schema,
    )


def performance_lines(perf: pl.DataFrame) -> pl.DataFrame:
    """Precision, recall and flag rate per day in long form (``day``, ``series``, ``value``),
    one line per model version and figure, for the line plot."""
    long = (
        perf.select("day", "model_version", *PLOTTED)
        .unpivot(index=["day", "model_version"], variable_name="figure", value_name="value")
        .drop_nulls("value")
    )
    return long.select(
        # Nanoseconds: pandas writes datetime64[ms] to JSON wrongly, and Gradio plots use it.
        pl.col("day").str.to_datetime("%Y-%m-%d", time_unit="ns", strict=False),
        series=pl.lit("v")
        + pl.col("model_version")
        + pl.lit(" ")
        + pl.col("figure").replace_strict(PLOTTED, return_dtype=pl.String),
        value=pl.col("value"),
    ).sort("day", "series")


def latest_drift(wh: Warehouse) -> pl.DataFrame:
    """PSI per feature of the newest drift run, most drifted first, with when it ran."""
    schema = _columns(FEATURE_DRIFT_SCHEMA, [*DRIFT_COLUMNS, "drift_key", "computed_at"])
    if not wh.table_exists(DRIFT):
        return pl.DataFrame(schema=schema)
    newest = wh.query(
        f'SELECT "drift_key", "feature", "computed_at" FROM {{t:{DRIFT}}} '
        'ORDER BY "computed_at" DESC, "drift_key" DESC LIMIT 1',
        _columns(FEATURE_DRIFT_SCHEMA, ["drift_key", "feature", "computed_at"]),
    )
    if newest.height == 0:
        return pl.DataFrame(schema=schema)
    key, feature, at = newest.row(0)
    suffix = f"/{feature}"
    if key.endswith(suffix):  # drift_key is "<run id>/<feature>": take the whole run
        run = key[: -len(suffix) + 1]
        where, params = 'substr("drift_key", 1, CAST(? AS INTEGER)) = ?', [len(run), run]
    else:
        stamp = at if wh.postgres else f"{at:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        where, params = '"computed_at" = ?', [stamp]
    rows = wh.query(
        f"SELECT {_select(list(schema))} FROM {{t:{DRIFT}}} WHERE {where}",
        schema,
        params,
    )
    return rows.sort(["psi", "feature"], descending=[True, False], nulls_last=True)


def alert_history(wh: Warehouse, limit: int = ALERT_ROWS) -> pl.DataFrame:
    """The newest ``limit`` alerts, newest first; messages redacted."""
    schema = _columns(ALERTS_SCHEMA, ALERT_COLUMNS)
    if not wh.table_exists(ALERTS):
        return pl.DataFrame(schema=schema)
    rows = wh.query(
        f"SELECT {_select(ALERT_COLUMNS)} FROM {{t:{ALERTS}}} "
        f'ORDER BY "raised_at" DESC, "alert_key" DESC LIMIT {int(limit)}',
        schema,
    )
    return rows.with_columns(pl.col("message").map_elements(redact, return_dtype=pl.String))


@dataclass(frozen=True)
class Monitoring:
    performance: pl.DataFrame
    lines: pl.DataFrame
    drift: pl.DataFrame
    alerts: pl.DataFrame

    @property
    def empty(self) -> bool:
        return not (self.performance.height or self.drift.height or self.alerts.height)

    def status(self) -> str:
        """A few lines of Markdown saying what there is (or that there is nothing yet)."""
        if self.empty:
            return NO_DATA
        lines = []
        if self.performance.height:
            days = self.performance["day"]
            versions = ", ".join(sorted(set(self.performance["model_version"].drop_nulls())))
            lines.append(
                f"Live performance: {days.n_unique()} days, {days.min()} to {days.max()} "
                f"(model versions {versions})."
            )
        else:
            lines.append(f"Live performance: none yet. {NO_DATA}")
        if self.drift.height:
            drifted = int(self.drift["drifted"].fill_null(False).sum())
            when = _when(self.drift["computed_at"].max())
            version = self.drift["model_version"][0]
            lines.append(
                f"Feature drift, run of {when} UTC (model v{version}): **{drifted} of "
                f"{self.drift.height}** drifted."
            )
        else:
            lines.append(f"Feature drift: none yet. {NO_DATA}")
        if self.alerts.height:
            lines.append(
                f"Alerts: {self.alerts.height} shown, newest raised "
                f"{_when(self.alerts['raised_at'][0])} UTC."
            )
        else:
            lines.append("Alerts: none raised.")
        return "\n\n".join(lines)


def _when(value: dt.datetime | None) -> str:
    return "?" if value is None else f"{value:%Y-%m-%d %H:%M}"


def read(wh: Warehouse) -> Monitoring:
    perf = performance(wh)
    return Monitoring(perf, performance_lines(perf), latest_drift(wh), alert_history(wh))
