"""``python -m fraud_assets.bench`` (``make bench``): run every benchmark module in turn.

Each module listed here has its own ``main()`` and can also be run alone, e.g.
``python -m fraud_assets.bench_model --help``.
"""

from __future__ import annotations

import importlib

BENCHMARKS: tuple[str, ...] = ("fraud_assets.bench_model",)


def main() -> int:
    status = 0
    for name in BENCHMARKS:
        print(f"# {name}", flush=True)
        status |= importlib.import_module(name).main([])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
