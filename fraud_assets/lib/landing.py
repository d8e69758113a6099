"""Landing raw API payloads and turning them into validated, de-duplicated rows.

Every payload the sensor fetched is kept as it came, under a Hive-style hour key
(``landing/transactions/hour=<hour>/<ms>-<id>.json``). Parsing a batch isolates each payload
and each row: whatever one holds, it is set aside with its reason (quarantine, under a key
made from a hash, never from payload content) and the rest go on. The ``payload_ledger``
records every payload's outcome, so a payload is parsed once whatever happened to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from fraud_assets.lib.payloads import Limits, PayloadError, parse_body, rows_frame
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA
from fraud_assets.lib.storage import ObjectStore

LANDING_PREFIX = "landing/transactions"
QUARANTINE_PREFIX = "quarantine/transactions"
HOUR_FORMAT = "%Y-%m-%d-%H:00"  # Dagster's hourly partition key format
#: Columns whose content defines a transaction (a repeat of the same draw matches on them).
CONTENT_COLUMNS: tuple[str, ...] = tuple(
    c
    for c in LIVE_TRANSACTIONS_SCHEMA
    if c
    not in (
        "event_time",
        "batch_hour",
        "arrived_at",
        "event_time_source",
        "payload_key",
        "row_hash",
    )
)

LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "payload_key": pl.String(),
    "batch_hour": pl.String(),
    "outcome": pl.String(),  # loaded, partly loaded, repeats only, rejected
    "rows_valid": pl.Int64(),
    "rows_rejected": pl.Int64(),
    "reason": pl.String(),
    "processed_at": pl.Datetime("ms"),
}
CONFLICTS_SCHEMA: dict[str, pl.DataType] = {
    "conflict_key": pl.String(),
    "trans_num": pl.String(),
    "kept_payload_key": pl.String(),
    "conflicting_payload_key": pl.String(),
    "kept_hash": pl.String(),
    "conflicting_hash": pl.String(),
    "detected_at": pl.Datetime("ms"),
}


def hour_of(moment: dt.datetime) -> str:
    return moment.strftime(HOUR_FORMAT)


def hour_dir(hour: str) -> str:
    """The Hive-style directory value of an hour partition key: ``YYYY-MM-DD-HH``."""
    return hour[:13]


def hour_prefix(hour: str, prefix: str = LANDING_PREFIX) -> str:
    return f"{prefix}/hour={hour_dir(hour)}/"


def landing_key(fetched_at: dt.datetime, suffix: str | None = None) -> str:
    """A unique, time-ordered key for one raw payload."""
    ms = int(fetched_at.replace(tzinfo=dt.UTC).timestamp() * 1000)
    tail = suffix or uuid.uuid4().hex[:12]
    return f"{hour_prefix(hour_of(fetched_at))}{ms:013d}-{tail}.json"


_HOUR_SEGMENT = re.compile(r"hour=([0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2})")
_LANDED_NAME = re.compile(r"([0-9]{13})-[A-Za-z0-9_-]{1,64}\.json")


def hour_of_key(key: str) -> str:
    """The hour partition key of an object under a landing (or quarantine) hour directory;
    ValueError for a key outside any hour directory."""
    for segment in reversed(key.split("/")[:-1]):
        found = _HOUR_SEGMENT.fullmatch(segment)
        if found:
            return found[1] + ":00"
    raise ValueError("the key is in no hour=YYYY-MM-DD-HH directory")


def arrived_at_of_key(key: str) -> dt.datetime:
    """When a landed payload arrived, from its key; PayloadError for a key that the sensor
    did not write (a stray object under a landing hour)."""
    found = _LANDED_NAME.fullmatch(key.rsplit("/", 1)[-1])
    if found is None:
        raise PayloadError("not a landed payload's key (<13-digit ms>-<id>.json)")
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(found[1]))


def arrival_or_none(key: str) -> dt.datetime | None:
    """``arrived_at_of_key``, or None for a stray key."""
    try:
        return arrived_at_of_key(key)
    except PayloadError:
        return None


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def quarantine_key(payload_key: str, row: int | None = None) -> str:
    """Where a rejected payload (or one of its rows) is kept: a hash, never payload content."""
    hour = hour_of_key(payload_key)
    return f"{hour_prefix(hour, QUARANTINE_PREFIX)}{_digest(payload_key, row)}.json"


@dataclass(frozen=True)
class Feed:
    """The feed's time semantics: ``arrival`` (no true event time: a row's event time is when
    it arrived, the real API's case) or ``payload`` (each row carries its event time in
    ``event_time_field``)."""

    semantics: str = "arrival"
    event_time_field: str = "event_time"

    def __post_init__(self) -> None:
        if self.semantics not in ("arrival", "payload"):
            raise ValueError(f"unknown feed semantics {self.semantics!r}; 'arrival' or 'payload'")

    @property
    def field(self) -> str | None:
        return self.event_time_field if self.semantics == "payload" else None


@dataclass(frozen=True)
class Reject:
    """A payload (``row`` None) or one row set aside, with why."""

    payload_key: str
    reason: str
    row: int | None = None
    trans_num: str | None = None

    @property
    def key(self) -> str:
        return quarantine_key(self.payload_key, self.row)

    def record(self, body: bytes | None = None) -> bytes:
        """The quarantine record: the reason, and the raw body for a whole-payload reject."""
        doc = {
            "payload_key": self.payload_key,
            "reason": self.reason,
            "row": self.row,
            "trans_num": self.trans_num,
        }
        if body is not None:
            doc["body"] = body[:200_000].decode("utf-8", "replace")
        return json.dumps(doc, sort_keys=True).encode()


@dataclass
class ParsedBatch:
    """Valid rows of a batch of payloads, what was set aside, and the ledger of it all."""

    rows: pl.DataFrame
    rejects: list[Reject]
    duplicates: int
    conflicts: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CONFLICTS_SCHEMA))
    ledger: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=LEDGER_SCHEMA))


#: The row hash's scheme, stored with every hash: a stored hash of another scheme is
#: recomputed from the stored row before rows are compared (``lib/ingest.py``).
HASH_SCHEME = "h2"


def content_columns(semantics: str = "arrival") -> tuple[str, ...]:
    """The columns whose values define a transaction: every content column, and the event
    time too when the feed carries it (``payload``); under ``arrival`` it is the arrival."""
    return (*CONTENT_COLUMNS, "event_time") if semantics == "payload" else CONTENT_COLUMNS


def row_hash(columns: tuple[str, ...] = CONTENT_COLUMNS) -> pl.Expr:
    """A stable, unambiguous hash of a row's transaction content: each value is written as
    ``<byte length>:<text>`` (a null as ``-``), so no field's content can pass for a
    boundary between fields."""
    parts = []
    for name in columns:
        text = pl.col(name).cast(pl.String)
        parts.append(
            pl.when(text.is_null())
            .then(pl.lit("-"))
            .otherwise(pl.concat_str(text.str.len_bytes().cast(pl.String), pl.lit(":"), text))
        )
    return pl.concat_str(parts).map_elements(
        lambda t: f"{HASH_SCHEME}:{hashlib.sha256(t.encode()).hexdigest()[:32]}",
        return_dtype=pl.String,
    )


def _key_text(key: str) -> str:
    """The key as the ledger can store it: object stores hold UTF-8 keys (a local directory's
    file names that are not UTF-8 are never listed), so this only escapes what no store
    gives."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return key.encode("utf-8", "backslashreplace").decode("utf-8")
    return key


@dataclass
class _Parsed:
    """One payload's outcome: its rows (``LIVE_TRANSACTIONS_SCHEMA``), rejects and ledger."""

    rows: pl.DataFrame
    rejects: list[Reject]
    entry: dict[str, object]


def _parse_one(
    key: str, body: bytes, feed: Feed, limits: Limits, hour: str | None, at: dt.datetime
) -> _Parsed:
    """Everything that touches one payload: its key, body, rows, frame and hashes. Whatever
    it holds, the outcome is a ledger entry; nothing raises."""
    try:
        batch_hour = hour_of_key(key)
    except ValueError:
        batch_hour = hour or "unknown"
    try:
        arrived = arrived_at_of_key(key)
        parsed = parse_body(body, arrived, feed.field, limits)
        rows = _frame(parsed.rows, key, batch_hour, arrived, feed)
    except PayloadError as exc:
        return _rejected(key, batch_hour, str(exc), at)
    except Exception as exc:  # noqa: BLE001 - whatever it is, it is this payload's alone
        return _rejected(key, batch_hour, f"payload could not be read: {type(exc).__name__}", at)
    rejects = [Reject(key, r.reason, r.row, r.trans_num) for r in parsed.rejects]
    outcome = "loaded" if not rejects else "partly loaded" if rows.height else "rejected"
    reason = rejects[0].reason if rejects else None
    entry = _entry(key, batch_hour, outcome, rows.height, len(rejects), reason, at)
    return _Parsed(rows, rejects, entry)


def _rejected(key: str, batch_hour: str, reason: str, at: dt.datetime) -> _Parsed:
    return _Parsed(
        pl.DataFrame(schema=LIVE_TRANSACTIONS_SCHEMA),
        [Reject(key, reason)],
        _entry(key, batch_hour, "rejected", 0, 1, reason, at),
    )


def _frame(
    rows: list[dict[str, object]], key: str, hour: str, arrived: dt.datetime, feed: Feed
) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=LIVE_TRANSACTIONS_SCHEMA)
    frame = rows_frame(rows).with_columns(
        batch_hour=pl.lit(hour),
        arrived_at=pl.lit(arrived, dtype=pl.Datetime("ms")),
        event_time_source=pl.lit(feed.semantics),
        payload_key=pl.lit(key),
    )
    frame = frame.with_columns(row_hash=row_hash(content_columns(feed.semantics)))
    return frame.select(pl.col(c).cast(t) for c, t in LIVE_TRANSACTIONS_SCHEMA.items())


def parse_payloads(
    payloads: list[tuple[str, bytes]],
    feed: Feed = Feed(),
    limits: Limits | None = None,
    processed_at: dt.datetime | None = None,
    hour: str | None = None,
) -> ParsedBatch:
    """Parse, validate and de-duplicate (first arrival wins) a batch of landed payloads, each
    payload and each row on its own: whatever a payload holds, it is ledgered (loaded, partly
    loaded or rejected with its reason) and never stops the others. A repeat of a row with
    different content is a conflict: the first copy is kept and the conflict recorded.
    ``hour`` is the batch's hour, for a key outside any hour directory."""
    processed_at = processed_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    limits = limits or Limits()
    texts = [(_key_text(k), b) for k, b in payloads]
    parsed = [_parse_one(k, b, feed, limits, hour, processed_at) for k, b in sorted(texts)]
    rows = pl.concat(
        [pl.DataFrame(schema=LIVE_TRANSACTIONS_SCHEMA), *(p.rows for p in parsed)], how="vertical"
    )
    unique = rows.unique("trans_num", keep="first", maintain_order=True)
    return ParsedBatch(
        unique,
        [r for p in parsed for r in p.rejects],
        rows.height - unique.height,
        find_conflicts(unique, rows, processed_at),
        pl.DataFrame([p.entry for p in parsed], schema=LEDGER_SCHEMA),
    )


def find_conflicts(
    kept: pl.DataFrame, incoming: pl.DataFrame, detected_at: dt.datetime
) -> pl.DataFrame:
    """Rows of ``incoming`` whose ``trans_num`` is in ``kept`` with other content."""
    joined = incoming.join(
        kept.select("trans_num", kept_hash="row_hash", kept_key="payload_key"), on="trans_num"
    ).filter(pl.col("row_hash") != pl.col("kept_hash"))
    return joined.select(
        conflict_key=pl.concat_str("trans_num", "row_hash", separator="/"),
        trans_num="trans_num",
        kept_payload_key="kept_key",
        conflicting_payload_key="payload_key",
        kept_hash="kept_hash",
        conflicting_hash="row_hash",
        detected_at=pl.lit(detected_at, dtype=pl.Datetime("ms")),
    ).unique("conflict_key")


def _entry(
    key: str,
    hour: str,
    outcome: str,
    valid: int,
    rejected: int,
    reason: str | None,
    at: dt.datetime,
) -> dict[str, object]:
    return {
        "payload_key": key,
        "batch_hour": hour,
        "outcome": outcome,
        "rows_valid": valid,
        "rows_rejected": rejected,
        "reason": reason[:500] if reason else None,
        "processed_at": at,
    }


class Spool:
    """A local directory holding payloads that could not be landed yet (object store down),
    so a fetched payload is never lost: ``flush`` lands them once the store answers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, key: str, body: bytes) -> None:
        path = self.root / key.replace("/", "__")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(body)
        tmp.replace(path)

    def pending(self) -> list[Path]:
        return sorted(p for p in self.root.glob("*.json")) if self.root.is_dir() else []

    def flush(self, store: ObjectStore) -> int:
        """Land every spooled payload under its own key; returns how many were landed."""
        landed = 0
        for path in self.pending():
            store.put_bytes(path.name.replace("__", "/"), path.read_bytes())
            path.unlink()
            landed += 1
        return landed


def land(store: ObjectStore, spool: Spool, key: str, body: bytes) -> bool:
    """Land one payload; when the store fails, keep it in the spool. True if landed now."""
    try:
        store.put_bytes(key, body)
        return True
    except Exception:  # noqa: BLE001 - any store failure: keep the payload for later
        spool.put(key, body)
        return False
