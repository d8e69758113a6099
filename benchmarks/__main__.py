"""`python -m benchmarks [NAME ...]`: run benchmarks in turn (all by default)."""

import importlib
import sys

ALL = ["warehouse_write", "scoring_throughput", "live_latency", "sustained_load"]

if __name__ == "__main__":
    names = sys.argv[1:] or ALL
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {ALL}")
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main([])
