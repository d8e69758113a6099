"""Describe the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version

DEFAULT_LIBS = ("dagster", "polars", "scikit-learn", "psycopg", "pandas")


def describe(libs: tuple[str, ...] = DEFAULT_LIBS) -> dict[str, object]:
    """Cores, CPU model, memory, Python, OS and the versions of ``libs``."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {p: version(p) for p in libs}
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        **versions,
    }


def print_machine() -> None:
    print("machine:", ", ".join(f"{k}={v}" for k, v in describe().items()))
