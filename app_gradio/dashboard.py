"""The dashboard's snapshots: SQL aggregates computed at most once per interval and shared by
every browser session (``SnapshotCache``), whatever the number of sessions polling."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
import polars as pl

from app_gradio import data
from app_gradio.snapshot import SnapshotCache
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.warehouse import Warehouse


@dataclass(frozen=True)
class Aggregates:
    """Everything above the flagged list, for one time range, ready for Gradio."""

    summary: data.Summary
    analyst_labels: int
    trend: pd.DataFrame
    categories: pd.DataFrame
    hours: pd.DataFrame
    by_path: pl.DataFrame  # data.by_path, over the time range
    logged: data.Logged  # the decision log's recent window (whatever the time range)

    @property
    def paths(self) -> pd.DataFrame:
        return self.by_path.to_pandas()

    @property
    def figures(self) -> dict[str, object]:
        by_path = {
            row.pop("decided_via"): row
            for row in self.by_path.select(
                "decided_via", "scored", "flagged", "flag_rate"
            ).to_dicts()
        }
        return self.summary.as_dict() | {
            "analyst_labels": self.analyst_labels,
            "by_path": by_path,
            "decision_log": self.logged.as_dict(),
        }


@dataclass
class Timings:
    """Seconds spent per dashboard call (``handler``) and per snapshot computed from the
    database (``aggregates``, ``flagged``), kept only when asked for (benchmarks)."""

    handler: list[float] = field(default_factory=list)
    aggregates: list[float] = field(default_factory=list)
    flagged: list[float] = field(default_factory=list)


class Dashboard:
    """The dashboard's figures, from the warehouse ``warehouse()`` returns, cached ``ttl`` s."""

    def __init__(
        self,
        warehouse: Callable[[], Warehouse],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        record: bool = False,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.warehouse = warehouse
        self.now = now  # the wall clock (naive UTC) the decision log's window ends at
        self.cache: SnapshotCache = SnapshotCache(ttl, clock)
        self.timings = Timings() if record else None
        # The aggregates are independent queries: run them side by side (each on its own
        # connection) so a refresh takes the slowest one, not their sum.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard-sql")

    def _timed(self, kind: str, compute: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            started = time.perf_counter()
            try:
                return compute()
            finally:
                if self.timings is not None:
                    getattr(self.timings, kind).append(time.perf_counter() - started)

        return run

    def window_start(self, time_range: str) -> dt.datetime | None:
        """Where ``time_range`` starts (shared by the aggregates and the flagged lists)."""
        if time_range not in data.TIME_RANGES:
            raise ValueError(f"time range must be one of {', '.join(data.TIME_RANGES)}")
        if data.TIME_RANGES[time_range] is None:
            return None
        return self.cache.get(
            ("start", time_range), lambda: data.window_start(self.warehouse(), time_range)
        )

    def aggregates(self, time_range: str) -> Aggregates:
        """Headline figures, trend and breakdowns of the rows in ``time_range``."""
        self.window_start(time_range)  # validates it before it becomes a cache key
        return self.cache.get(
            ("aggregates", time_range),
            self._timed("aggregates", lambda: self._aggregate(time_range)),
        )

    def _aggregate(self, time_range: str) -> Aggregates:
        since = self.window_start(time_range)
        wh = self.warehouse()
        jobs = {
            name: self._pool.submit(fn, wh, since)
            for name, fn in {
                "summary": data.summary_and_paths,
                "hours": data.hourly,
                "categories": data.by_category,
                "labels": lambda wh, _: data.label_count(wh),
                "logged": lambda wh, _: self.logged(),
            }.items()
        }
        done = {name: job.result() for name, job in jobs.items()}
        by_hour = data.by_hour(done["hours"])
        by_hour = by_hour.with_columns(pl.col("hour").cast(pl.String).str.zfill(2))
        summary, by_path = done["summary"]
        return Aggregates(
            summary=summary,
            analyst_labels=done["labels"],
            trend=data.over_time(done["hours"]).to_pandas(),
            categories=done["categories"].to_pandas(),
            hours=by_hour.to_pandas(),
            by_path=by_path,
            logged=done["logged"],
        )

    def logged(self) -> data.Logged:
        """The decision log's figures over its recent window: one snapshot for every time
        range, as they do not depend on it."""
        return self.cache.get(("logged",), lambda: data.logged(self.warehouse(), self.now()))

    def flagged(
        self,
        time_range: str = "all",
        category: str = data.ALL_CATEGORIES,
        min_probability: float = 0.0,
        min_amount: float = 0.0,
    ) -> pd.DataFrame:
        """The flagged list for these filters (newest first, at most 200 rows)."""
        if time_range not in data.TIME_RANGES:
            raise ValueError(f"time range must be one of {', '.join(data.TIME_RANGES)}")
        if category != data.ALL_CATEGORIES and category not in data.CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        prob, amount = float(min_probability or 0.0), float(min_amount or 0.0)

        def compute() -> pd.DataFrame:
            since = self.window_start(time_range)
            return data.flagged_table(self.warehouse(), since, category, prob, amount).to_pandas()

        return self.cache.get(
            ("flagged", time_range, category, prob, amount), self._timed("flagged", compute)
        )

    def labels_changed(self) -> None:
        """A verdict was stored: the flagged lists must show it at once (the label count in
        the headline figures follows at the next refresh)."""
        self.cache.invalidate(lambda key: key[0] == "flagged")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
