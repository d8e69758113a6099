"""`python -m benchmarks [NAME ...]` (`make bench`): run benchmarks in turn (all by default).

Each is also a module with its own ``--help``, e.g. ``python -m benchmarks.model_quality``.
"""

import importlib
import sys

BENCHMARKS = {
    "warehouse_write": "benchmarks.warehouse_write",
    "scoring_throughput": "benchmarks.scoring_throughput",
    "live_latency": "benchmarks.live_latency",
    "sustained_load": "benchmarks.sustained_load",
    "model_quality": "benchmarks.model_quality",
    "recovery": "benchmarks.recovery",
    "scoring_scale": "benchmarks.scoring_scale",
    "rescore": "benchmarks.rescore",
    "app": "benchmarks.app",
    "dashboard": "benchmarks.dashboard",
    "inference": "benchmarks.inference",
    "decision_latency": "benchmarks.decision_latency",
    "push_latency": "benchmarks.push_latency",
    "stream_throughput": "benchmarks.stream_throughput",
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(BENCHMARKS[name]).main([])
