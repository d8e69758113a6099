"""Landing raw API payloads and turning them into validated, de-duplicated rows."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.api import PayloadError, decode_payload, records_to_frame
from fraud_assets.lib.schema import LIVE_TRANSACTIONS_SCHEMA, validate_transactions

LANDING_PREFIX = "landing/transactions"
QUARANTINE_PREFIX = "quarantine/transactions"
HOUR_FORMAT = "%Y-%m-%d-%H:00"  # Dagster's hourly partition key format


def hour_of(moment: dt.datetime) -> str:
    return moment.strftime(HOUR_FORMAT)


def landing_key(fetched_at: dt.datetime) -> str:
    """A unique, time-ordered key for one raw payload: ``landing/transactions/<hour>/<ms>-<id>``."""
    ms = int(fetched_at.replace(tzinfo=dt.UTC).timestamp() * 1000)
    return f"{LANDING_PREFIX}/{hour_of(fetched_at)}/{ms:013d}-{uuid.uuid4().hex[:12]}.json"


def hour_of_key(key: str) -> str:
    return key.split("/")[-2]


def arrived_at_of_key(key: str) -> dt.datetime:
    ms = int(key.rsplit("/", 1)[-1].split("-", 1)[0])
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)


def quarantine_key(landing: str) -> str:
    return landing.replace(LANDING_PREFIX, QUARANTINE_PREFIX, 1)


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


@dataclass
class ParsedBatch:
    """Valid rows of a batch of payloads, and what was set aside."""

    rows: pl.DataFrame
    rejects: list[dict]  # {"payload_key", "reason", "trans_num"?}
    duplicates: int


def parse_payloads(payloads: list[tuple[str, bytes]], feed: Feed = Feed()) -> ParsedBatch:
    """Parse, validate and de-duplicate (first arrival wins) a batch of landed payloads.

    Payloads are decoded one by one but built into one frame and validated once; only when
    that frame cannot be built is each payload built alone, to find the culprit.
    """
    rejects: list[dict] = []
    decoded: list[tuple[str, dict[str, list]]] = []
    for key, body in sorted(payloads):
        try:
            decoded.append((key, decode_payload(body, feed.field)))
        except PayloadError as exc:
            rejects.append({"payload_key": key, "reason": str(exc)})
    try:
        frames = [_frame(decoded, feed)] if decoded else []
    except PayloadError:
        frames = []
        for key, records in decoded:
            try:
                frames.append(_frame([(key, records)], feed))
            except PayloadError as exc:
                rejects.append({"payload_key": key, "reason": str(exc)})
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=LIVE_TRANSACTIONS_SCHEMA)
    reasons = validate_transactions(rows)
    for key, tn, why in zip(
        rows.filter(reasons.is_not_null())["payload_key"],
        rows.filter(reasons.is_not_null())["trans_num"],
        reasons.drop_nulls(),
        strict=True,
    ):
        rejects.append({"payload_key": key, "reason": why, "trans_num": tn})
    rows = rows.filter(reasons.is_null()).select(
        pl.col(c).cast(t) for c, t in LIVE_TRANSACTIONS_SCHEMA.items()
    )
    unique = rows.unique("trans_num", keep="first", maintain_order=True)
    return ParsedBatch(unique, rejects, rows.height - unique.height)


def _frame(decoded: list[tuple[str, dict[str, list]]], feed: Feed) -> pl.DataFrame:
    """One canonical frame (plus landing columns) from decoded payloads. Without a true event
    time, a row's event time is its arrival."""
    columns = decoded[0][1].keys()
    merged = {c: [v for _, rec in decoded for v in rec[c]] for c in columns}
    keys = [key for key, rec in decoded for _ in rec["trans_num"]]
    arrived = pl.Series([arrived_at_of_key(k) for k in keys], dtype=pl.Datetime("ms"))
    frame = records_to_frame(merged).with_columns(
        batch_hour=pl.Series([hour_of_key(k) for k in keys], dtype=pl.String),
        arrived_at=arrived,
        event_time_source=pl.lit(feed.semantics),
        payload_key=pl.Series(keys, dtype=pl.String),
    )
    return frame if feed.field else frame.with_columns(event_time=arrived)


def quarantine_record(reject: dict) -> bytes:
    return json.dumps(reject, sort_keys=True).encode()
