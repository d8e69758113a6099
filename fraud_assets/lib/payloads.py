"""Decoding and strict validation of the transactions API's payloads, one row at a time.

A body is a JSON string whose content is a pandas ``orient="split"`` frame. Whatever a body
holds, decoding it never raises anything but ``PayloadError`` (a catch-all: hostile nesting,
wrong shapes, non-JSON), and each row is checked on its own against the contract, so one bad
row is set aside with its reason while the good rows around it go on. No value is ever cast
with loss: ``zip`` 1.7, an amount of ``true`` or ``is_fraud`` 7 are refused, not coerced.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.schema import API_COLUMNS, CATEGORIES, TRANSACTION_SCHEMA

GENDERS = frozenset({"F", "M"})
_EPOCH = dt.datetime(1970, 1, 1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PayloadError(ValueError):
    """A response body (or a row of it) that does not follow the contract; says why."""


@dataclass(frozen=True)
class Limits:
    """Bounds a row must keep to (``fraud_assets.settings`` sets them)."""

    max_amount: float = 1_000_000.0
    max_string: int = 200
    max_skew: dt.timedelta = dt.timedelta(hours=24)
    max_rows: int = 1000


@dataclass(frozen=True)
class RowReject:
    """A row set aside: its index in the payload, why, and its trans_num if it had a sane one."""

    row: int
    reason: str
    trans_num: str | None = None


def decode_body(body: bytes | str) -> tuple[list[str], list[list]]:
    """``(columns, rows)`` of a double-encoded split frame; PayloadError for anything else."""
    try:
        outer = json.loads(body)
        inner = json.loads(outer) if isinstance(outer, str) else outer
    except RecursionError:
        raise PayloadError("body is nested too deeply to be a transactions payload") from None
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the body's fault
        raise PayloadError(f"body is not JSON: {type(exc).__name__}") from None
    if not isinstance(inner, dict):
        raise PayloadError("body is not a split-oriented frame (needs 'columns' and 'data')")
    columns, data = inner.get("columns"), inner.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError("'columns' must be a list of column names")
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise PayloadError("'data' must be a list of rows")
    if len(set(columns)) != len(columns):
        raise PayloadError("'columns' repeats a name")
    return columns, data


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _integer(v: object) -> int | None:
    """An integer without loss (12 or 12.0), else None."""
    if _is_int(v):
        return int(v)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return None


def _text(name: str, limits: Limits) -> Callable[[object], str]:
    def check(v: object) -> str:
        if not isinstance(v, str):
            raise PayloadError(f"{name} must be a string")
        if len(v) > limits.max_string:
            raise PayloadError(f"{name} is longer than {limits.max_string} characters")
        if "\x00" in v:
            raise PayloadError(f"{name} holds a NUL character")
        return v

    return check


def _number(name: str, low: float, high: float) -> Callable[[object], float]:
    def check(v: object) -> float:
        if not _is_number(v):
            raise PayloadError(f"{name} must be a finite number")
        if not low <= v <= high:
            raise PayloadError(f"{name} {v!r} is outside {low:g}..{high:g}")
        return float(v)

    return check


def _whole(name: str, low: int, high: int) -> Callable[[object], int]:
    def check(v: object) -> int:
        n = _integer(v)
        if n is None:
            raise PayloadError(f"{name} must be a whole number")
        if not low <= n <= high:
            raise PayloadError(f"{name} {n} is outside {low}..{high}")
        return n

    return check


def _cc_num(v: object) -> str:
    text = str(v) if _is_int(v) else v
    if not isinstance(text, str) or not re.fullmatch(r"\d{8,19}", text):
        raise PayloadError("cc_num must be 8 to 19 digits")
    return text


def _trans_num(limits: Limits) -> Callable[[object], str]:
    def check(v: object) -> str:
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
            raise PayloadError("trans_num must be 1 to 64 letters, digits, '-' or '_'")
        return v

    return check


def _dob(v: object) -> str:
    if not isinstance(v, str) or not _DATE.match(v):
        raise PayloadError("dob must be a YYYY-MM-DD date")
    try:
        born = dt.date.fromisoformat(v)
    except ValueError:
        raise PayloadError("dob must be a real YYYY-MM-DD date") from None
    if born.year < 1900:
        raise PayloadError("dob is before 1900")
    return v


def _choice(name: str, allowed: frozenset[str] | tuple[str, ...]) -> Callable[[object], str]:
    def check(v: object) -> str:
        if v not in allowed:
            raise PayloadError(f"{name} must be one of {', '.join(sorted(allowed))}")
        return v  # type: ignore[return-value]

    return check


def _epoch_ms(name: str) -> Callable[[object], dt.datetime]:
    def check(v: object) -> dt.datetime:
        if not _is_int(v):
            raise PayloadError(f"{name} must be integer epoch milliseconds")
        if not 0 <= v < 253_402_300_800_000:  # 1970-01-01 .. 9999-12-31
            raise PayloadError(f"{name} {v} is not a time between 1970 and 9999")
        return _EPOCH + dt.timedelta(milliseconds=v)

    return check


def _event_time(v: object) -> dt.datetime:
    if isinstance(v, str) and len(v) <= 40:
        try:
            moment = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError("event time is not an ISO date-time") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment
    return _epoch_ms("event time")(v)


def row_checks(limits: Limits) -> dict[str, Callable[[object], object]]:
    """One checker per API column: returns the typed value or raises PayloadError."""
    text = {c: _text(c, limits) for c in ("merchant", "first", "last", "street", "city", "job")}
    return {
        "cc_num": _cc_num,
        **text,
        "category": _choice("category", CATEGORIES),
        "amt": _number("amt", 0.0, limits.max_amount),
        "gender": _choice("gender", tuple(GENDERS)),
        "state": _text("state", limits),
        "zip": _whole("zip", 0, 99_999_999),
        "lat": _number("lat", -90, 90),
        "long": _number("long", -180, 180),
        "city_pop": _whole("city_pop", 0, 10_000_000_000),
        "dob": _dob,
        "trans_num": _trans_num(limits),
        "merch_lat": _number("merch_lat", -90, 90),
        "merch_long": _number("merch_long", -180, 180),
        "is_fraud": _whole("is_fraud", 0, 1),
        "current_time": _epoch_ms("current_time"),
    }


def _safe_trans_num(row: dict[str, object]) -> str | None:
    v = row.get("trans_num")
    return v if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) else None


@dataclass
class ParsedPayload:
    """A payload's valid rows (canonical, typed) and the rows set aside."""

    rows: list[dict[str, object]]
    rejects: list[RowReject]


def parse_body(
    body: bytes | str,
    arrived_at: dt.datetime | None = None,
    event_time_field: str | None = None,
    limits: Limits = Limits(),
) -> ParsedPayload:
    """Check every row of one body. ``event_time`` is ``event_time_field`` when given (a feed
    with a true event time), else the row's arrival (``arrived_at``). With ``arrived_at``,
    ``current_time`` must lie within ``limits.max_skew`` of it, and so must an event time
    not be later than it. Raises PayloadError only when the body as a whole is unusable."""
    columns, data = decode_body(body)
    wanted = [*API_COLUMNS, *([event_time_field] if event_time_field else [])]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise PayloadError(f"payload lacks columns: {', '.join(missing[:10])}")
    if len(data) > limits.max_rows:
        raise PayloadError(f"payload holds {len(data)} rows, more than {limits.max_rows}")
    checks = row_checks(limits)
    at = {c: columns.index(c) for c in wanted}
    rows: list[dict[str, object]] = []
    rejects: list[RowReject] = []
    for i, raw in enumerate(data):
        if len(raw) != len(columns):
            rejects.append(RowReject(i, "row length does not match the columns"))
            continue
        values = {c: raw[j] for c, j in at.items()}
        try:
            typed = {c: check(values[c]) for c, check in checks.items()}
            typed["event_time"] = _when(typed, values, arrived_at, event_time_field, limits)
        except PayloadError as exc:
            rejects.append(RowReject(i, str(exc), _safe_trans_num(values)))
            continue
        except Exception as exc:  # noqa: BLE001 - any surprise is this row's fault alone
            rejects.append(RowReject(i, f"row could not be read: {type(exc).__name__}"))
            continue
        typed.pop("current_time")
        rows.append(typed)
    return ParsedPayload(rows, rejects)


def _when(
    typed: dict[str, object],
    values: dict[str, object],
    arrived_at: dt.datetime | None,
    field: str | None,
    limits: Limits,
) -> dt.datetime:
    server = typed["current_time"]
    if arrived_at is not None and abs(server - arrived_at) > limits.max_skew:  # type: ignore[operator]
        raise PayloadError(
            f"current_time {server:%Y-%m-%d %H:%M} is more than {limits.max_skew} from the "
            f"arrival at {arrived_at:%Y-%m-%d %H:%M}"
        )
    if field is None:
        return arrived_at or server  # type: ignore[return-value]
    event = _event_time(values[field])
    if arrived_at is not None and event > arrived_at + limits.max_skew:
        raise PayloadError(f"event time {event:%Y-%m-%d %H:%M} is in the future")
    return event


def rows_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """The canonical frame of checked rows (it cannot fail: every value is typed)."""
    if not rows:
        return pl.DataFrame(schema=TRANSACTION_SCHEMA)
    return pl.DataFrame(rows, schema=TRANSACTION_SCHEMA, orient="row")


def parse_payload(body: bytes | str, event_time_field: str | None = None) -> pl.DataFrame:
    """Parse one body into canonical rows, strictly: PayloadError if the body or any row is
    off-contract. Without ``event_time_field``, ``event_time`` is ``current_time``."""
    parsed = parse_body(body, None, event_time_field)
    if parsed.rejects:
        first = parsed.rejects[0]
        raise PayloadError(
            f"payload values do not fit the contract: row {first.row}: {first.reason}"
        )
    return rows_frame(parsed.rows)
