"""The lake: Parquet in object storage under Hive-style hour keys, so polars and DuckDB can
prune by hour (``…/hour=YYYY-MM-DD-HH:00/…``)."""

from __future__ import annotations

import datetime as dt
import hashlib

import polars as pl

from fraud_assets.lib.landing import HOUR_FORMAT, hour_prefix
from fraud_assets.lib.storage import ObjectStore

SERVED_PREFIX = "served_features"
SCORED_PREFIX = "lake/scored_transactions"


def hours_since(since: dt.datetime, until: dt.datetime) -> list[str]:
    """Hour partition keys from ``since``'s hour to ``until``'s, inclusive."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= until:
        out.append(hour.strftime(HOUR_FORMAT))
        hour += dt.timedelta(hours=1)
    return out


def content_key(prefix: str, hour: str, version: str, trans_nums: list[str]) -> str:
    """A part of one hour, named by its content (the rows and the model version that scored
    them), so a retried write lands on the same key and never adds a copy."""
    digest = hashlib.sha256("\n".join(sorted(trans_nums)).encode()).hexdigest()[:16]
    return f"{hour_prefix(hour, prefix)}v{version}-{digest}.parquet"


def hour_key(prefix: str, hour: str) -> str:
    """The one part holding all of an hour's rows (rewritten whole: idempotent)."""
    return f"{hour_prefix(hour, prefix)}part.parquet"


def read_hours(store: ObjectStore, prefix: str, hours: list[str]) -> pl.DataFrame:
    """Every part under ``prefix`` for ``hours``, concatenated (empty frame if none)."""
    parts = [
        store.get_parquet(key)
        for hour in hours
        for key in store.list(hour_prefix(hour, prefix))
        if key.endswith(".parquet")
    ]
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
