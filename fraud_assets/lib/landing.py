"""Landing raw API payloads and turning them into validated, de-duplicated rows."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.api import PayloadError, parse_payload
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


@dataclass
class ParsedBatch:
    """Valid rows of a batch of payloads, and what was set aside."""

    rows: pl.DataFrame
    rejects: list[dict]  # {"payload_key", "reason", "trans_num"?}
    duplicates: int


def parse_payloads(payloads: list[tuple[str, bytes]]) -> ParsedBatch:
    """Parse, validate and de-duplicate (first arrival wins) a batch of landed payloads."""
    frames: list[pl.DataFrame] = []
    rejects: list[dict] = []
    for key, body in sorted(payloads):
        try:
            frame = parse_payload(body)
        except PayloadError as exc:
            rejects.append({"payload_key": key, "reason": str(exc)})
            continue
        reasons = validate_transactions(frame)
        for tn, why in zip(
            frame.filter(reasons.is_not_null())["trans_num"], reasons.drop_nulls(), strict=False
        ):
            rejects.append({"payload_key": key, "reason": why, "trans_num": tn})
        frames.append(
            frame.filter(reasons.is_null()).with_columns(
                batch_hour=pl.lit(hour_of_key(key)),
                arrived_at=pl.lit(arrived_at_of_key(key), dtype=pl.Datetime("ms")),
                payload_key=pl.lit(key),
            )
        )
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=LIVE_TRANSACTIONS_SCHEMA)
    rows = rows.select(pl.col(c).cast(t) for c, t in LIVE_TRANSACTIONS_SCHEMA.items())
    unique = rows.unique("trans_num", keep="first", maintain_order=True)
    return ParsedBatch(unique, rejects, rows.height - unique.height)


def quarantine_record(reject: dict) -> bytes:
    return json.dumps(reject, sort_keys=True).encode()
