"""The transactions API contract: parse its double-encoded payloads and fetch them politely."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass

import polars as pl
import requests
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from fraud_assets.lib.schema import API_COLUMNS, TRANSACTION_SCHEMA, SchemaError, to_canonical

ENDPOINT = "/current-transactions"


class PayloadError(ValueError):
    """A response body that does not follow the contract; the message says why."""


class ApiUnavailable(RuntimeError):
    """The API could not be reached or kept failing after retries."""


class _Retryable(RuntimeError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: Key under which decoded records carry the feed's own event time, when it has one.
EVENT_TIME_KEY = "_event_time"


def decode_payload(body: bytes | str, event_time_field: str | None = None) -> dict[str, list]:
    """Decode one body's structure into column lists (API columns, ``cc_num`` as strings);
    raise PayloadError if it is not the contract's double-encoded split frame.

    With ``event_time_field`` (feeds that carry a true event time), that column is required
    and returned under ``EVENT_TIME_KEY``."""
    try:
        outer = json.loads(body)
        inner = json.loads(outer) if isinstance(outer, str) else outer
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from exc
    if not isinstance(inner, dict) or not {"columns", "data"} <= inner.keys():
        raise PayloadError("body is not a split-oriented frame (needs 'columns' and 'data')")
    columns, data = inner["columns"], inner["data"]
    wanted_columns = [*API_COLUMNS, *([event_time_field] if event_time_field else [])]
    missing = [c for c in wanted_columns if c not in columns]
    if missing:
        raise PayloadError(f"payload lacks columns: {', '.join(missing)}")
    if not isinstance(data, list) or any(
        not isinstance(r, list) or len(r) != len(columns) for r in data
    ):
        raise PayloadError("payload rows do not match its columns")
    wanted = {c: columns.index(c) for c in API_COLUMNS}
    records = {c: [row[i] for row in data] for c, i in wanted.items()}
    if event_time_field:
        at = columns.index(event_time_field)
        records[EVENT_TIME_KEY] = [row[at] for row in data]
    if any(not isinstance(v, int) or isinstance(v, bool) for v in records["current_time"]):
        raise PayloadError("current_time must be integer epoch milliseconds")
    if any(not isinstance(v, int | str) or isinstance(v, bool) for v in records["cc_num"]):
        raise PayloadError("cc_num must be an integer or a string of digits")
    records["cc_num"] = [str(v) for v in records["cc_num"]]
    return records


def _epoch_ms_or_iso(values: list) -> pl.Series:
    """Event times given as integer epoch milliseconds or ISO date-time strings (naive UTC)."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pl.from_epoch(pl.Series(values, dtype=pl.Int64), "ms").cast(pl.Datetime("ms"))
    if all(isinstance(v, str) for v in values):
        parsed = pl.Series(values, dtype=pl.String).str.to_datetime(time_unit="ms", strict=False)
        if parsed.null_count() == 0:
            return parsed.dt.replace_time_zone(None) if parsed.dtype.time_zone else parsed
    raise PayloadError("event time must be integer epoch milliseconds or an ISO date-time")


def records_to_frame(records: dict[str, list]) -> pl.DataFrame:
    """Build canonical rows from decoded column lists. ``event_time`` is the feed's own event
    time when the records carry one (``EVENT_TIME_KEY``), else ``current_time``.
    Raise PayloadError naming any column whose values do not fit the contract."""
    schema = {c: t for c, t in TRANSACTION_SCHEMA.items() if c in records}
    try:
        frame = pl.DataFrame({c: records[c] for c in schema}, schema=schema, strict=False)
        lost = [c for c in schema if frame[c].null_count() > records[c].count(None)]
        if lost:
            raise SchemaError(f"values of the wrong type in {', '.join(lost)}")
        event_time = _epoch_ms_or_iso(records.get(EVENT_TIME_KEY, records["current_time"]))
        return to_canonical(frame.with_columns(event_time=event_time))
    except (SchemaError, pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise PayloadError(f"payload values do not fit the contract: {exc}") from exc


def parse_payload(body: bytes | str, event_time_field: str | None = None) -> pl.DataFrame:
    """Parse one response body into canonical rows; raise PayloadError on anything off-contract.

    The body is a JSON string whose content is a DataFrame in ``orient="split"`` form. Integers
    stay exact (19-digit ``cc_num``). ``event_time`` is ``event_time_field`` when given (feeds
    with a true event time), else ``current_time`` (epoch ms).
    """
    return records_to_frame(decode_payload(body, event_time_field))


def encode_payload(
    frame: pl.DataFrame,
    index: list[int],
    current_time_ms: list[int],
    extra: dict[str, list] | None = None,
) -> bytes:
    """Encode API-layout rows exactly as the real API does: a JSON string of a split frame.
    ``extra`` adds columns after ``current_time``, one value per row (a feed's own event
    time, say)."""
    cols = [c for c in API_COLUMNS if c != "current_time"]
    extra = extra or {}
    rows = [
        [_api_value(c, row[c]) for c in cols] + [ms] + [values[i] for values in extra.values()]
        for i, (row, ms) in enumerate(
            zip(frame.select(cols).iter_rows(named=True), current_time_ms, strict=False)
        )
    ]
    inner = json.dumps(
        {"columns": [*API_COLUMNS, *extra], "index": index, "data": rows}, separators=(",", ":")
    )
    return json.dumps(inner).encode()


def _api_value(column: str, value):  # noqa: ANN001, ANN202
    if column == "cc_num":
        return int(value)
    return int(value) if column == "is_fraud" else value


@dataclass
class FetchedPayload:
    """One raw response body and when it arrived."""

    body: bytes
    fetched_at: dt.datetime
    status: int


#: Longest Retry-After honoured inside one fetch; a longer one ends the fetch (the caller, e.g.
#: the sensor, tries again on its next tick instead of blocking).
MAX_RETRY_AFTER_SECONDS = 30.0


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retryable) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_AFTER_SECONDS)
    return wait_exponential_jitter(initial=1, max=8)(state)


class TransactionsClient:
    """HTTP client for ``GET {base_url}/current-transactions``.

    Retries timeouts, connection errors, 5xx and 429 (honouring ``Retry-After``) with
    exponential backoff, and never calls more often than ``min_interval_seconds``.
    """

    def __init__(
        self,
        base_url: str,
        timeout_seconds: float = 30.0,
        max_attempts: int = 3,
        min_interval_seconds: float = 12.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + ENDPOINT
        self.timeout = timeout_seconds
        self.max_attempts = max_attempts
        self.min_interval = min_interval_seconds
        self.session = session or requests.Session()
        self._last_call = 0.0
        self._lock = threading.Lock()

    def _pace(self) -> None:
        with self._lock:
            wait = self._last_call + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_call = time.monotonic()

    def _get_once(self) -> FetchedPayload:
        self._pace()
        try:
            resp = self.session.get(self.url, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code == 429:
            after = resp.headers.get("Retry-After", "")
            raise _Retryable("rate limited (429)", float(after) if after.isdigit() else None)
        if resp.status_code >= 500:
            raise _Retryable(f"server error {resp.status_code}: {resp.text[:120]!r}")
        if resp.status_code != 200:
            raise ApiUnavailable(f"unexpected status {resp.status_code}: {resp.text[:120]!r}")
        return FetchedPayload(resp.content, dt.datetime.now(dt.UTC).replace(tzinfo=None), 200)

    def fetch(self) -> FetchedPayload:
        """Fetch one response body; raise ApiUnavailable when retries are exhausted."""
        retrying = retry(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait,
            reraise=True,
        )(self._get_once)
        try:
            return retrying()
        except _Retryable as exc:
            raise ApiUnavailable(f"{self.url}: {exc} (after {self.max_attempts} attempts)") from exc
