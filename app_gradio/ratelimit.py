"""Per-client rate limiting: one token bucket per client (no Gradio here, so it is testable).

A bucket holds up to ``per_minute`` tokens and refills at ``per_minute / 60`` tokens a second;
each call takes one. A client may therefore burst up to ``per_minute`` calls, then keep up
``per_minute`` calls a minute.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by client (a user name or an IP address). ``per_minute <= 0``
    turns limiting off. Idle clients' buckets are dropped once there are ``max_clients``."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.per_minute = per_minute
        self.capacity = float(max(per_minute, 0))
        self.rate = self.capacity / 60.0  # tokens per second
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, updated)
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take a token for ``client``: 0.0 when the call may go ahead, else the seconds to wait
        until one is available (nothing is taken then)."""
        if self.per_minute <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens = self._tokens(client, now)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _tokens(self, client: str, now: float) -> float:
        if client not in self._buckets and len(self._buckets) >= self.max_clients:
            self._forget_idle(now)
        tokens, updated = self._buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - updated) * self.rate)

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes nothing."""
        full = [
            client
            for client, (tokens, updated) in self._buckets.items()
            if tokens + (now - updated) * self.rate >= self.capacity
        ]
        for client in full:
            del self._buckets[client]


def retry_message(wait_seconds: float) -> str:
    """What a limited caller is told."""
    return f"rate limited, try again in {max(1, math.ceil(wait_seconds))} s"
