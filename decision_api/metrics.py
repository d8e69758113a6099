"""The service's Prometheus metrics, on a registry of its own (so an app per test is fine)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily

from fraud_assets.lib.champion import LiveChampion

#: Round-trip goals sit at 3-10 ms: buckets from half a millisecond to a tenth of a second.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1)


class Metrics:
    """Latency, decisions by outcome, errors by kind, the model served and its freshness."""

    def __init__(self, champion: LiveChampion, cache_stats: Callable[[], tuple[int, int]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
        self.model = Info("fraud_decision_model", "The champion served.", registry=r)
        self.ready = Gauge("fraud_decision_ready", "1 when a champion is served.", registry=r)
        self.refused = Gauge(
            "fraud_decision_champion_refused",
            "1 while the registry's champion is refused (another feed or feature set, or "
            "unusable decision tags) and the previous one keeps serving.",
            registry=r,
        )
        age = Gauge(
            "fraud_decision_champion_checked_seconds",
            "Seconds since the registry was last read successfully (-1 never).",
            registry=r,
        )
        r.register(_CacheCollector(cache_stats))

        def checked() -> float:
            at = champion.status().checked_at
            return -1.0 if at is None else time.time() - at

        age.set_function(checked)
        self._champion = champion
        self._served: str | None = None

    def refresh(self) -> None:
        """Bring the model and cache figures up to date (at each scrape)."""
        status = self._champion.status()
        self.ready.set(1.0 if status.ready else 0.0)
        self.refused.set(1.0 if status.refused_version else 0.0)
        if status.ready and status.version != self._served:
            info = self._champion.current().info
            self.model.info(
                {
                    "model_name": info.name,
                    "model_version": info.version,
                    "feature_set_version": info.feature_set_version,
                    "feed_semantics": info.semantics,
                }
            )
            self._served = status.version


class _CacheCollector:
    """The card-state cache's own running totals, read at each scrape."""

    def __init__(self, stats: Callable[[], tuple[int, int]]) -> None:
        self.stats = stats

    def collect(self):  # noqa: ANN201
        hits, misses = self.stats()
        family = CounterMetricFamily(
            "fraud_decision_card_cache_lookups", "Card-state cache lookups.", labels=["result"]
        )
        family.add_metric(["hit"], hits)
        family.add_metric(["miss"], misses)
        yield family
