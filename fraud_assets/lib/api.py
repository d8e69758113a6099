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

from fraud_assets.lib.schema import API_COLUMNS

ENDPOINT = "/current-transactions"


class ApiUnavailable(RuntimeError):
    """The API could not be reached or kept failing after retries."""


class _Retryable(RuntimeError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


class _Deadline:
    """The time left of one fetch's budget."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


class TransactionsClient:
    """HTTP client for ``GET {base_url}/current-transactions``.

    Retries timeouts, connection errors, 5xx and 429 (honouring ``Retry-After``) with
    exponential backoff, never calls more often than ``min_interval_seconds``, and never
    outlasts ``budget_seconds`` per fetch: every wait and request timeout is cut to what is
    left, so a caller with a deadline (Dagster's 60 s for a sensor tick) keeps to it. A body
    larger than ``max_body_bytes`` is refused while it streams in, never read whole.
    """

    def __init__(
        self,
        base_url: str,
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        min_interval_seconds: float = 12.0,
        session: requests.Session | None = None,
        budget_seconds: float = 30.0,
        max_body_bytes: int = 1_000_000,
    ) -> None:
        self.url = base_url.rstrip("/") + ENDPOINT
        self.timeout = timeout_seconds
        self.max_attempts = max_attempts
        self.min_interval = min_interval_seconds
        self.budget = budget_seconds
        self.max_body = max_body_bytes
        self.session = session or requests.Session()
        self._last_call = 0.0
        self._lock = threading.Lock()

    def _pace(self, deadline: _Deadline) -> None:
        with self._lock:
            wait = self._last_call + self.min_interval - time.monotonic()
            if wait > deadline.left():
                raise ApiUnavailable("no time left in this fetch's budget for a paced call")
            if wait > 0:
                time.sleep(wait)
            self._last_call = time.monotonic()

    def _read(self, resp: requests.Response) -> bytes:
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise ApiUnavailable(f"response body of {declared} bytes is over the {self.max_body}")
        chunks, size = [], 0
        for chunk in resp.iter_content(chunk_size=65_536):
            size += len(chunk)
            if size > self.max_body:
                raise ApiUnavailable(f"response body is over the {self.max_body}-byte cap")
            chunks.append(chunk)
        return b"".join(chunks)

    def _get_once(self, deadline: _Deadline) -> FetchedPayload:
        self._pace(deadline)
        timeout = min(self.timeout, deadline.left())
        if timeout <= 0:
            raise ApiUnavailable("no time left in this fetch's budget")
        try:
            with self.session.get(self.url, timeout=timeout, stream=True) as resp:
                if resp.status_code == 429:
                    after = resp.headers.get("Retry-After", "")
                    wait = float(after) if after.isdigit() else None
                    raise _Retryable("rate limited (429)", wait)
                if resp.status_code >= 500:
                    raise _Retryable(f"server error {resp.status_code}")
                if resp.status_code != 200:
                    raise ApiUnavailable(f"unexpected status {resp.status_code}")
                body = self._read(resp)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise _Retryable(f"{type(exc).__name__}") from exc
        return FetchedPayload(body, dt.datetime.now(dt.UTC).replace(tzinfo=None), 200)

    def fetch(self, budget_seconds: float | None = None) -> FetchedPayload:
        """Fetch one response body within the budget (``budget_seconds`` or the client's);
        raise ApiUnavailable when retries or the budget are exhausted."""
        budget = min(self.budget, budget_seconds) if budget_seconds else self.budget
        deadline = _Deadline(budget)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            delay = wait_exponential_jitter(initial=1, max=8)(state)
            if isinstance(exc, _Retryable) and exc.retry_after is not None:
                delay = exc.retry_after
            if delay >= deadline.left():
                raise ApiUnavailable(
                    f"{self.url}: {exc} (retry in {delay:.0f} s would pass the "
                    f"{budget:.0f} s budget)"
                )
            return delay

        retrying = retry(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            reraise=True,
        )(self._get_once)
        try:
            return retrying(deadline)
        except _Retryable as exc:
            raise ApiUnavailable(f"{self.url}: {exc} (after {self.max_attempts} attempts)") from exc
