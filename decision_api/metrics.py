"""The service's Prometheus metrics: one process's, or every worker's with ``--workers N``.

With several worker processes behind one port, a scrape reaches one of them, so each must
answer for all: ``python -m decision_api`` then sets ``PROMETHEUS_MULTIPROC_DIR`` and
prometheus-client keeps every worker's values in files there, summed (counters, histograms)
or taken at their worst (gauges: the least ready worker, the stalest champion check) when one
answers a scrape. That mode has no ``Info`` and no callback gauges, so the model served is a
gauge with its labels, and the figures read from elsewhere (the champion's state, the card
cache's totals) are brought up to date at each scrape and after each champion check.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from fraud_assets.lib.champion import LiveChampion

#: Round-trip goals sit at 3-10 ms: buckets from half a millisecond to a tenth of a second.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1)
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """Latency, decisions by outcome, errors by kind, the model served and its freshness."""

    def __init__(self, champion: LiveChampion, cache_stats: Callable[[], tuple[int, int]]) -> None:
        self.shared = os.environ.get(MULTIPROCESS)
        #: This process's own registry (an app per test is fine); unused when shared.
        self.registry = CollectorRegistry()
        r = None if self.shared else self.registry
        self.latency = Histogram(
            "fraud_decision_request_seconds",
            "Time in the service per request, from arrival to response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "fraud_decisions_total", "Decisions answered, by outcome.", ["decision"], registry=r
        )
        self.errors = Counter(
            "fraud_decision_errors_total",
            "Requests not answered with a decision, by kind.",
            ["kind"],
            registry=r,
        )
        self.batch_size = Histogram(
            "fraud_decision_batch_size",
            "Transactions scored together in one micro-batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.cache = Counter(
            "fraud_decision_card_cache_lookups", "Card-state cache lookups.", ["result"], registry=r
        )
        self.model = Gauge(
            "fraud_decision_model_info",
            "The champion served (1) by its name, version, feature set and feed.",
            ["model_name", "model_version", "feature_set_version", "feed_semantics"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.ready = Gauge(
            "fraud_decision_ready",
            "1 when a champion is served (by every worker).",
            multiprocess_mode="livemin",
            registry=r,
        )
        self.refused = Gauge(
            "fraud_decision_champion_refused",
            "1 while the registry's champion is refused (another feed or feature set, or "
            "unusable decision tags) and the previous one keeps serving.",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.checked = Gauge(
            "fraud_decision_champion_checked_seconds",
            "Seconds since the registry was last read successfully (-1 never), as of the last "
            "scrape or champion check (the stalest worker).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.load = Gauge(
            "fraud_decision_champion_load_seconds",
            "How long the latest change of champion took, from reading the registry to "
            "serving the new version or refusing it (the slowest worker).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self._champion, self._cache_stats = champion, cache_stats
        self._served: tuple[str, ...] | None = None
        self._cached = (0, 0)
        self._lock = threading.Lock()  # a scrape and the champion's follower may both refresh

    def refresh(self) -> None:
        """Bring the champion's and the card cache's figures up to date."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        status = self._champion.status()
        self.ready.set(1.0 if status.ready else 0.0)
        self.refused.set(1.0 if status.refused_version else 0.0)
        at = status.checked_at
        self.checked.set(-1.0 if at is None else time.time() - at)
        if status.load_seconds is not None:
            self.load.set(status.load_seconds)
        if status.ready:
            info = self._champion.current().info
            served = (info.name, info.version, info.feature_set_version, info.semantics)
            if served != self._served:
                if self._served is not None:
                    self.model.labels(*self._served).set(0.0)
                    if not self.shared:
                        self.model.remove(*self._served)
                self.model.labels(*served).set(1.0)
                self._served = served
        hits, misses = self._cache_stats()
        self.cache.labels("hit").inc(hits - self._cached[0])
        self.cache.labels("miss").inc(misses - self._cached[1])
        self._cached = (hits, misses)

    def exposition(self) -> bytes:
        """What ``/metrics`` answers: this process's figures, or every worker's."""
        self.refresh()
        if not self.shared:
            return generate_latest(self.registry)
        forget_dead_workers(Path(self.shared))
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.shared)
        return generate_latest(registry)


def forget_dead_workers(path: Path) -> None:
    """Drop the gauges of worker processes that are gone (a killed worker's last values would
    otherwise stand for ever); their counters stay, as what they counted happened."""
    for file in path.glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(path))
        except PermissionError:  # alive, another user's
            continue


def shared_directory(path: Path) -> None:
    """Ready ``path`` for the workers' shared metrics: created, and emptied of an earlier
    run's files (their values would be added to this run's)."""
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        file.unlink()
