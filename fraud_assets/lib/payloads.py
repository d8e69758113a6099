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
#: ``\d`` would match any Unicode digit (Arabic-Indic, fullwidth...): digits here are ASCII.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CARD = re.compile(r"[0-9]{8,19}")
_TRANS_NUM = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The earliest plausible birth date or event time.
EARLIEST = dt.datetime(1900, 1, 1)
#: Characters no field may hold: C0/C1 controls (NUL, newline, escape...), Unicode line and
#: paragraph separators, and the bidirectional overrides that make text display out of order.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: What a person cannot have typed: the bidirectional overrides, and every character of the
#: categories Cc (C0, DEL, C1), Zl and Zp (the tests check this against ``unicodedata``).
_UNTYPABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(_BIDI)) + "]")


class PayloadError(ValueError):
    """A response body (or a row of it) that does not follow the contract; says why, and
    ``field`` names the column at fault when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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


def check_string(name: str, v: str, max_length: int) -> str:
    """``v`` if it is text a person could have typed: encodable as UTF-8 (no lone surrogates),
    no control or bidirectional-override characters, at most ``max_length`` characters."""
    if len(v) > max_length:
        raise PayloadError(f"{name} is longer than {max_length} characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{name} cannot be encoded as UTF-8 (a lone surrogate)") from None
    if "\x00" in v:
        raise PayloadError(f"{name} holds a NUL character")
    found = _UNTYPABLE.search(v)
    if found:
        raise PayloadError(f"{name} holds a control character (U+{ord(found.group()):04X})")
    return v


def _text(name: str, limits: Limits) -> Callable[[object], str]:
    def check(v: object) -> str:
        if not isinstance(v, str):
            raise PayloadError(f"{name} must be a string")
        return check_string(name, v, limits.max_string)

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
    if not isinstance(text, str) or not _CARD.fullmatch(text):
        raise PayloadError("cc_num must be 8 to 19 digits (0-9)")
    return text


def _trans_num(limits: Limits) -> Callable[[object], str]:
    def check(v: object) -> str:
        if not isinstance(v, str) or not _TRANS_NUM.fullmatch(v):
            raise PayloadError("trans_num must be 1 to 64 letters, digits, '-' or '_'")
        return v

    return check


def check_dob(v: object) -> str:
    """A ``YYYY-MM-DD`` birth date (ASCII digits), not before 1900."""
    if not isinstance(v, str) or not _DATE.fullmatch(v):
        raise PayloadError("dob must be a YYYY-MM-DD date")
    try:
        born = dt.date.fromisoformat(v)
    except ValueError:
        raise PayloadError("dob must be a real YYYY-MM-DD date") from None
    if born < EARLIEST.date():
        raise PayloadError("dob is before 1900")
    return v


def _choice(name: str, allowed: frozenset[str] | tuple[str, ...]) -> Callable[[object], str]:
    def check(v: object) -> str:
        if v not in allowed:
            raise PayloadError(f"{name} must be one of {', '.join(sorted(allowed))}")
        return v  # type: ignore[return-value]

    return check


_MAX_MS = 253_402_300_800_000  # 9999-12-31


def _epoch_ms(name: str, earliest: dt.datetime = _EPOCH) -> Callable[[object], dt.datetime]:
    low = int((earliest - _EPOCH).total_seconds() * 1000)

    def check(v: object) -> dt.datetime:
        if not _is_int(v):
            raise PayloadError(f"{name} must be integer epoch milliseconds")
        if not low <= v < _MAX_MS:
            raise PayloadError(f"{name} {v} is not a time between {earliest.year} and 9999")
        return _EPOCH + dt.timedelta(milliseconds=v)

    return check


_ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.,+\-Z]*)?")


def event_time(v: object) -> dt.datetime:
    """A feed's event time: ISO 8601 (naive means UTC) or epoch milliseconds, as naive UTC,
    not before 1900."""
    if isinstance(v, str) and len(v) <= 40:
        if not _ISO_TIME.fullmatch(v):
            raise PayloadError("event time is not an ISO date-time")
        try:
            moment = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        except (ValueError, OverflowError):
            raise PayloadError("event time is not an ISO date-time") from None
        if moment < EARLIEST:
            raise PayloadError(f"event time {moment:%Y-%m-%d} is before 1900")
        return moment
    return _epoch_ms("event time", EARLIEST)(v)


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
        "dob": check_dob,
        "trans_num": _trans_num(limits),
        "merch_lat": _number("merch_lat", -90, 90),
        "merch_long": _number("merch_long", -180, 180),
        "is_fraud": _whole("is_fraud", 0, 1),
        "current_time": _epoch_ms("current_time"),
    }


def _safe_trans_num(row: dict[str, object]) -> str | None:
    v = row.get("trans_num")
    return v if isinstance(v, str) and _TRANS_NUM.fullmatch(v) else None


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
            rows.append(check_row(values, arrived_at, event_time_field, limits, checks))
        except PayloadError as exc:
            rejects.append(RowReject(i, str(exc), _safe_trans_num(values)))
        except Exception as exc:  # noqa: BLE001 - any surprise is this row's fault alone
            rejects.append(RowReject(i, f"row could not be read: {type(exc).__name__}"))
    return ParsedPayload(rows, rejects)


def check_row(
    values: dict[str, object],
    arrived_at: dt.datetime | None,
    event_time_field: str | None,
    limits: Limits,
    checks: dict[str, Callable[[object], object]] | None = None,
) -> dict[str, object]:
    """One row's canonical, typed values; PayloadError names the first field that is off the
    contract. Columns absent from ``values`` are not checked (a caller that has no
    ``current_time``, such as the decision service, leaves it out)."""
    checks = checks or row_checks(limits)
    typed: dict[str, object] = {}
    for column, check in checks.items():
        if column in values:
            try:
                typed[column] = check(values[column])
            except PayloadError as exc:
                raise PayloadError(str(exc), column) from None
    try:
        typed["event_time"] = _when(typed, values, arrived_at, event_time_field, limits)
    except PayloadError as exc:
        raise PayloadError(str(exc), event_time_field or "current_time") from None
    when: dt.datetime = typed["event_time"]  # type: ignore[assignment]
    if "dob" in typed and str(typed["dob"]) > when.date().isoformat():
        raise PayloadError(f"dob {typed['dob']} is after the transaction", "dob")
    typed.pop("current_time", None)
    return typed


def _when(
    typed: dict[str, object],
    values: dict[str, object],
    arrived_at: dt.datetime | None,
    field: str | None,
    limits: Limits,
) -> dt.datetime:
    server: dt.datetime | None = typed.get("current_time")  # type: ignore[assignment]
    if arrived_at is not None and server is not None and abs(server - arrived_at) > limits.max_skew:
        raise PayloadError(
            f"current_time {server:%Y-%m-%d %H:%M} is more than {limits.max_skew} from the "
            f"arrival at {arrived_at:%Y-%m-%d %H:%M}"
        )
    if field is None:
        moment = arrived_at or server
        if moment is None:
            raise PayloadError("no arrival time and no current_time")
        return moment
    if values.get(field) is None:
        raise PayloadError(f"{field} is required: this feed carries each row's event time")
    event = event_time(values[field])
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
