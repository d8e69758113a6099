"""Waiting for something another thread or process does, up to a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(check: Callable[[], bool], seconds: float = 60, every: float = 0.2) -> None:
    """Return once ``check()`` is true; fail the test if it is not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out after {seconds} s"
        time.sleep(every)
