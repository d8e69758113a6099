"""Login throttling: a growing delay before a login attempt is checked, never a lock.

Failures are counted per client address (an IPv6 client by its /64, what one machine
usually holds), per (name, address) and per name. Beyond a few free failures, each one doubles
the delay before that key's next attempt is checked (1 s, 2 s, 4 s ... up to 60 s); one failure
is forgiven every ``forgive_seconds``, and a success clears its (name, address).

A key's checks are spaced by its delay: attempts arriving together queue behind each other,
and one that would wait longer than the cap is refused unchecked, so parallel requests cannot
multiply a key's checks. Each address and (name, address) is still checked at least once per
cap: never a lock. The per-name key counts failures from every address, but only delays (a
few seconds at most) and never refuses: an analyst signing in from her own address is not
locked out by wrong passwords for her name sent from elsewhere. The flip side: someone
sharing her address (one office NAT) shares its delay.

Memory is bounded (``max_keys`` per kind, least recently used forgotten first; a forgotten
key starts afresh). No Gradio here: the client's address comes from a context variable that
the app's middleware sets for each request (``address_context``).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from fraud_assets.lib.ratelimit import UNKNOWN, make_room

#: Longer names are keyed by their digest.
MAX_NAME_KEY = 64
_ADDRESS: ContextVar[str] = ContextVar("login_client_address", default=UNKNOWN)


def current_address() -> str:
    """The address of the client whose request is being handled (``unknown`` outside one)."""
    return _ADDRESS.get()


@contextlib.contextmanager
def address_context(address: str) -> Iterator[None]:
    """Within this block, ``current_address()`` is ``address``."""
    token = _ADDRESS.set(address)
    try:
        yield
    finally:
        _ADDRESS.reset(token)


def address_key(address: str) -> str:
    """The throttling key of an address: an IPv6 address counts as its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class _Strikes:
    failures: float
    updated: float
    next_check: float


class Backoff:
    """Failures per key and the delay they earn: none for the first ``free`` ones, then
    ``base`` doubling with each failure up to ``cap``. One failure is forgiven every
    ``forgive_seconds``. Not locked: ``LoginThrottle`` holds the lock."""

    def __init__(
        self, free: int, base: float, cap: float, forgive_seconds: float, max_keys: int
    ) -> None:
        self.free, self.base, self.cap = free, base, cap
        self.forgive_seconds, self.max_keys = forgive_seconds, max(1, max_keys)
        self._keys: OrderedDict[str, _Strikes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def delay(self, failures: float) -> float:
        excess = math.ceil(failures - 1e-9) - self.free
        return 0.0 if excess <= 0 else min(self.cap, self.base * 2.0 ** (excess - 1))

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key``'s next attempt may be checked."""
        strikes = self._keys.get(key)
        return max(0.0, strikes.next_check - now) if strikes else 0.0

    def take(self, key: str, at: float, now: float, horizon: float | None = None) -> None:
        """An attempt is checked at ``at``: the one after it waits this key's delay (the next
        check is never put beyond ``now + horizon``)."""
        strikes = self._keys.get(key)
        gap = self.delay(self._decayed(strikes, now).failures) if strikes else 0.0
        if strikes is None or gap == 0.0:
            return  # within the free failures: nothing to space
        self._keys.move_to_end(key)
        strikes.next_check = max(at, strikes.next_check) + gap
        if horizon is not None:
            strikes.next_check = min(strikes.next_check, now + horizon)

    def fail(self, key: str, now: float) -> None:
        strikes = self._keys.get(key)
        if strikes is None:
            make_room(self._keys, self.max_keys, lambda s: self._idle(s, now))
            strikes = self._keys[key] = _Strikes(0.0, now, now)
        self._keys.move_to_end(key)
        strikes = self._decayed(strikes, now)
        strikes.failures += 1.0
        strikes.next_check = max(strikes.next_check, now + self.delay(strikes.failures))

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)

    def _decayed(self, strikes: _Strikes, now: float) -> _Strikes:
        forgiven = max(0.0, now - strikes.updated) / self.forgive_seconds
        strikes.failures, strikes.updated = max(0.0, strikes.failures - forgiven), now
        return strikes

    def _idle(self, strikes: _Strikes, now: float) -> bool:
        return self._decayed(strikes, now).failures == 0.0 and strikes.next_check <= now


class LoginThrottle:
    """When a login attempt may be checked, from the failures of its address, its
    (name, address) and its name (see the module's docstring)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
        cap: float = 60.0,
        name_cap: float = 4.0,
        forgive_seconds: float = 120.0,
    ) -> None:
        self.clock, self.cap, self.name_cap = clock, cap, name_cap
        self.pair = Backoff(3, 1.0, cap, forgive_seconds, max_keys)
        self.address = Backoff(10, 1.0, cap, forgive_seconds, max_keys)
        self.name = Backoff(20, 0.5, name_cap, forgive_seconds, max_keys)
        self._lock = threading.Lock()

    def reserve(self, name: str, address: str) -> float | None:
        """Seconds to wait before checking this attempt (its turn is taken), or None: refuse
        it unchecked, another attempt of its address already holds the turns up to the cap."""
        user, pair, addr = self._keys(name, address)
        with self._lock:
            now = self.clock()
            strict = max(self.pair.wait(pair, now), self.address.wait(addr, now))
            if strict > self.cap + 1e-6:
                return None
            shared = min(self.name.wait(user, now), self.name_cap)
            wait = max(strict, shared)
            self.pair.take(pair, now + wait, now)
            self.address.take(addr, now + wait, now)
            # The name's turns are its own: an address held up does not hold up the name.
            self.name.take(user, now + shared, now, horizon=self.name_cap)
            return wait

    def failed(self, name: str, address: str) -> None:
        user, pair, addr = self._keys(name, address)
        with self._lock:
            now = self.clock()
            self.pair.fail(pair, now)
            self.address.fail(addr, now)
            self.name.fail(user, now)

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self.pair.clear(self._keys(name, address)[1])

    @staticmethod
    def _keys(name: str, address: str) -> tuple[str, str, str]:
        """The name's, the (name, address)'s and the address's keys; a long name (anyone may
        type one) is kept as its digest, so a key's size is bounded."""
        if len(name) > MAX_NAME_KEY:
            name = "#" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()
        addr = address_key(address)
        return name, f"{name}\n{addr}", addr
