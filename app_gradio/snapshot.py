"""A cache of snapshots shared by every browser session (no Gradio here, so it is testable).

Each key (say, the dashboard's aggregates for "last 24 hours") holds one value, recomputed at
most once every ``ttl`` seconds however many sessions ask. Only one caller computes a key at a
time: while it does, the others get the previous snapshot, or wait for this one when there is
none yet. So N sessions polling cost the database one computation per key and interval.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_MISSING: Any = object()


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Any = _MISSING
    computed_at: float = float("-inf")
    error: BaseException | None = None
    failed_at: float = float("-inf")


class SnapshotCache(Generic[T]):
    """Single-flight, time-bounded snapshots by key; at most ``max_keys`` keys (least recently
    used dropped first), since filter values come from clients."""

    def __init__(
        self, ttl: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 64
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_keys = max_keys
        self.computations = 0
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, key: Hashable) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self.max_keys:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            return entry

    def _fresh(self, entry: _Entry) -> bool:
        return entry.value is not _MISSING and self.clock() - entry.computed_at < self.ttl

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The snapshot for ``key``, computing it when it is missing or older than ``ttl``."""
        entry = self._entry(key)
        if self._fresh(entry):
            return entry.value
        if entry.error is not None and self.clock() - entry.failed_at < self.ttl:
            # It failed a moment ago: keep the last snapshot (or that error) for one interval
            # rather than hammer a failing database with every caller.
            if entry.value is not _MISSING:
                return entry.value
            raise entry.error
        if entry.value is not _MISSING:
            if not entry.lock.acquire(blocking=False):
                return entry.value  # someone is refreshing it: the last one will do meanwhile
        else:
            entry.lock.acquire()
        try:
            if self._fresh(entry):
                return entry.value  # computed while this caller waited
            if entry.error is not None and self.clock() - entry.failed_at < self.ttl:
                raise entry.error  # it failed for the caller this one waited on
            try:
                value = compute()
            except Exception as exc:
                entry.error, entry.failed_at = exc, self.clock()
                raise
            self.computations += 1
            entry.value, entry.computed_at, entry.error = value, self.clock(), None
            return value
        finally:
            entry.lock.release()

    def invalidate(self, match: Callable[[Hashable], bool] = lambda key: True) -> None:
        """Forget the snapshots whose key matches (all by default): the next call recomputes."""
        with self._lock:
            for key in [k for k in self._entries if match(k)]:
                del self._entries[key]
