"""Loading one hour of landed payloads into the warehouse: exactly once, nothing lost.

The payloads of the hour that the ledger has not seen are parsed (at most ``max_payloads`` per
call, oldest first). Rejected payloads and rows go to quarantine in object storage first;
then the new rows, the conflicts and the ledger entries are written in one transaction. A
failure anywhere before that commit changes nothing, so a retry redoes the same work; after
it, the ledger keeps the payloads from being parsed again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from fraud_assets.lib.landing import (
    CONFLICTS_SCHEMA,
    HASH_SCHEME,
    LEDGER_SCHEMA,
    Feed,
    ParsedBatch,
    arrival_or_none,
    content_columns,
    find_conflicts,
    hour_of_key,
    hour_prefix,
    parse_payloads,
    row_hash,
)
from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA
from fraud_assets.lib.storage import ObjectStore
from fraud_assets.lib.warehouse import TableWrite, Warehouse

LIVE_TABLE = "live_transactions"
LEDGER_TABLE = "payload_ledger"
CONFLICTS_TABLE = "transaction_conflicts"


def ensure_tables(wh: Warehouse) -> None:
    wh.ensure_table(LIVE_TABLE, LIVE_TRANSACTIONS_SCHEMA, indexes=["batch_hour", "cc_num"])
    wh.ensure_table(LEDGER_TABLE, LEDGER_SCHEMA, key="payload_key", indexes=["batch_hour"])
    wh.ensure_table(CONFLICTS_TABLE, CONFLICTS_SCHEMA, key="conflict_key")


@dataclass
class IngestReport:
    """What one call did."""

    hour: str
    payloads_read: int
    payloads_left: int
    rows_written: int
    rows_valid: int
    duplicates: int
    conflicts: int
    rejects: list = field(default_factory=list)

    @classmethod
    def total(cls, reports: list[IngestReport]) -> IngestReport:
        """The sum of several hours' reports."""
        return cls(
            hour=",".join(r.hour for r in reports),
            payloads_read=sum(r.payloads_read for r in reports),
            payloads_left=sum(r.payloads_left for r in reports),
            rows_written=sum(r.rows_written for r in reports),
            rows_valid=sum(r.rows_valid for r in reports),
            duplicates=sum(r.duplicates for r in reports),
            conflicts=sum(r.conflicts for r in reports),
            rejects=[x for r in reports for x in r.rejects],
        )


def ledgered_keys(wh: Warehouse, hours: list[str]) -> set[str]:
    """Payload keys of ``hours`` that the ledger has an entry for."""
    seen = wh.read(
        LEDGER_TABLE, LEDGER_SCHEMA, columns=["payload_key"], where={"batch_hour": hours}
    )
    return set(seen["payload_key"].to_list())


def unprocessed_keys(store: ObjectStore, wh: Warehouse, hour: str) -> list[str]:
    """Landed keys of ``hour`` the ledger has not seen, oldest first."""
    done = ledgered_keys(wh, [hour])
    return [k for k in store.list(hour_prefix(hour)) if k not in done]


def ingest_hour(
    store: ObjectStore,
    wh: Warehouse,
    hour: str,
    feed: Feed,
    limits: Limits,
    max_payloads: int,
    now: dt.datetime | None = None,
) -> IngestReport:
    """Load the hour's unseen payloads (see the module docstring)."""
    ensure_tables(wh)
    keys = unprocessed_keys(store, wh, hour)
    todo, left = keys[:max_payloads], max(len(keys) - max_payloads, 0)
    bodies = [(k, store.get_bytes(k)) for k in todo]
    parsed = parse_payloads(bodies, feed, limits, now, hour)
    raw = dict(bodies)
    for reject in parsed.rejects:
        body = raw.get(reject.payload_key) if reject.row is None else None
        store.put_bytes(reject.key, reject.record(body))
    rows, conflicts = _against_stored(wh, parsed, feed, now or dt.datetime.now(dt.UTC))
    written = wh.write(
        [
            TableWrite(LIVE_TABLE, rows, update=False),
            TableWrite(CONFLICTS_TABLE, conflicts, key="conflict_key", update=False),
            TableWrite(LEDGER_TABLE, parsed.ledger, key="payload_key", update=False),
        ]
    )
    return IngestReport(
        hour=hour,
        payloads_read=len(todo),
        payloads_left=left,
        rows_written=written.get(LIVE_TABLE, 0),
        rows_valid=parsed.rows.height,
        duplicates=parsed.duplicates,
        conflicts=conflicts.height,
        rejects=parsed.rejects,
    )


def _against_stored(
    wh: Warehouse, parsed: ParsedBatch, feed: Feed, now: dt.datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """New rows only; a stored row with the same ``trans_num`` and other content makes a
    conflict (the stored, first copy is kept). A stored hash of an older scheme is
    recomputed from the stored row first, so an upgrade raises no false conflicts."""
    rows = parsed.rows
    if rows.height == 0:
        return rows, parsed.conflicts
    columns = content_columns(feed.semantics)
    stored = wh.read(
        LIVE_TABLE,
        LIVE_TRANSACTIONS_SCHEMA,
        columns=list(dict.fromkeys(["trans_num", "row_hash", "payload_key", *columns])),
        where={"trans_num": rows["trans_num"].to_list()},
    )
    if stored.height:
        legacy = ~pl.col("row_hash").str.starts_with(f"{HASH_SCHEME}:")
        stored = stored.with_columns(
            row_hash=pl.when(legacy).then(row_hash(columns)).otherwise(pl.col("row_hash"))
        )
    later = find_conflicts(stored, rows, now.replace(tzinfo=None))
    fresh = rows.filter(~pl.col("trans_num").is_in(stored["trans_num"].implode()))
    return fresh, pl.concat([parsed.conflicts, later]).unique("conflict_key")


def stranded_keys(
    store: ObjectStore, wh: Warehouse, prefix: str, older_than: dt.datetime
) -> dict[str, int]:
    """Landed payloads, across all time, that no ledger entry accounts for and that landed
    before ``older_than``: hour -> count. Nothing landed is left behind unnoticed."""
    seen = set(wh.read(LEDGER_TABLE, LEDGER_SCHEMA, columns=["payload_key"])["payload_key"])
    stranded: dict[str, int] = {}
    for key in store.list(prefix):
        if key in seen:
            continue
        arrived = arrival_or_none(key)  # a stray key has no time: it counts at once
        if arrived is None or arrived < older_than:
            hour = _hour_or_unknown(key)
            stranded[hour] = stranded.get(hour, 0) + 1
    return stranded


def _hour_or_unknown(key: str) -> str:
    try:
        return hour_of_key(key)
    except ValueError:
        return "unknown"
