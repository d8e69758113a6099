"""Analyst feedback: verdicts on scored transactions, stored in the warehouse.

Every verdict is appended to ``analyst_verdicts`` with who gave it and when; history is never
overwritten. In the same transaction, ``analyst_labels`` takes the latest verdict per
``trans_num``: that is the label monitoring and retraining read, overriding the API's
(``lib/monitoring.with_labels``).
"""

from __future__ import annotations

import datetime as dt
import uuid

import polars as pl

from fraud_assets.lib.schema import ANALYST_LABELS_SCHEMA, ANALYST_VERDICTS_SCHEMA
from fraud_assets.lib.warehouse import TableWrite, Warehouse

TABLE = "analyst_labels"
HISTORY_TABLE = "analyst_verdicts"


def record_label(
    wh: Warehouse,
    trans_num: str,
    is_fraud: bool,
    analyst: str,
    at: dt.datetime | None = None,
) -> dict[str, object]:
    """Append the verdict on ``trans_num`` to the history and make it the label; return the
    label row."""
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
    wh.ensure_table(HISTORY_TABLE, ANALYST_VERDICTS_SCHEMA, key="verdict_id", indexes=["trans_num"])
    verdict = {"verdict_id": uuid.uuid4().hex, **row}
    wh.write(
        [
            TableWrite(
                HISTORY_TABLE,
                pl.DataFrame([verdict], schema=ANALYST_VERDICTS_SCHEMA),
                key="verdict_id",
                update=False,
            ),
            TableWrite(TABLE, pl.DataFrame([row], schema=ANALYST_LABELS_SCHEMA)),
        ]
    )
    return row


def read_labels(wh: Warehouse, trans_nums: list[str] | None = None) -> pl.DataFrame:
    """Every verdict (or those on ``trans_nums``); empty when none was ever recorded."""
    where = {"trans_num": trans_nums} if trans_nums is not None else None
    return wh.read(TABLE, ANALYST_LABELS_SCHEMA, where=where)


def verdict_history(wh: Warehouse, trans_num: str) -> pl.DataFrame:
    """Every verdict given on ``trans_num``, oldest first."""
    rows = wh.read(HISTORY_TABLE, ANALYST_VERDICTS_SCHEMA, where={"trans_num": [trans_num]})
    return rows.sort("labelled_at", "verdict_id")
