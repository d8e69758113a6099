"""Analyst feedback: verdicts on scored transactions, stored in the warehouse.

The ``analyst_labels`` table holds one verdict per ``trans_num`` (a second verdict replaces
the first) with the analyst and the time. Training can take live transactions with their
verdicts as extra labelled rows through :func:`with_analyst_labels`.
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


def with_analyst_labels(transactions: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Transactions that an analyst labelled, with ``is_fraud`` set to the analyst's verdict.

    This is how training can use the feedback: live transactions (canonical frame) joined to
    their verdicts become labelled rows, and override any label the API sent.
    """
    verdicts = labels.select("trans_num", pl.col("is_fraud").cast(pl.Int8).alias("_verdict"))
    joined = transactions.join(verdicts, on="trans_num", how="inner")
    return joined.with_columns(is_fraud=pl.col("_verdict")).drop("_verdict")
