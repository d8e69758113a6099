"""Analyst feedback: verdicts on scored transactions, stored in the warehouse.

The ``analyst_labels`` table holds one verdict per ``trans_num`` (a second verdict replaces
the first) with the analyst and the time. Monitoring and retraining read verdicts as labels
that override the API's (``lib/monitoring.with_labels``).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from fraud_assets.lib.schema import ANALYST_LABELS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

TABLE = "analyst_labels"


def record_label(
    wh: Warehouse,
    trans_num: str,
    is_fraud: bool,
    analyst: str,
    at: dt.datetime | None = None,
) -> dict[str, object]:
    """Store (or replace) the verdict on ``trans_num``; return the stored row."""
    if not trans_num.strip():
        raise ValueError("no transaction id given")
    if not analyst.strip():
        raise ValueError("say who is labelling (analyst name)")
    row = {
        "trans_num": trans_num.strip(),
        "is_fraud": int(bool(is_fraud)),
        "analyst": analyst.strip(),
        "labelled_at": (at or dt.datetime.now(dt.UTC)).replace(tzinfo=None),
    }
    wh.ensure_table(TABLE, ANALYST_LABELS_SCHEMA)
    wh.upsert(TABLE, pl.DataFrame([row], schema=ANALYST_LABELS_SCHEMA), update=True)
    return row


def read_labels(wh: Warehouse, trans_nums: list[str] | None = None) -> pl.DataFrame:
    """Every verdict (or those on ``trans_nums``); empty when none was ever recorded."""
    where = {"trans_num": trans_nums} if trans_nums is not None else None
    return wh.read(TABLE, ANALYST_LABELS_SCHEMA, where=where)
