"""Per-client rate limiting and the client's address: pure logic, no web framework and no
Dagster, so the web app and the decision API share it.

A bucket holds up to ``per_minute`` tokens and refills at ``per_minute / 60`` tokens a second;
each call takes one. A client may therefore burst up to ``per_minute`` calls, then keep up
``per_minute`` calls a minute.

Memory is bounded: never more than ``max_clients`` buckets. A new client at the cap first
pushes out least recently used buckets that have refilled (forgetting them changes nothing),
then, if every bucket is still draining, the least recently used one. An evicted client
starts again with a full bucket: an attacker cycling through more keys than ``max_clients``
wins back a burst for the clients it pushed out (its own keys included). That is the price of
bounded memory; size ``max_clients`` well above the number of real clients.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

V = TypeVar("V")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The address of a client whose address cannot be told.
UNKNOWN = "unknown"


def make_room(items: OrderedDict[str, V], limit: int, idle: Callable[[V], bool]) -> None:
    """Before a new key goes into ``items`` (oldest first): at ``limit`` entries, drop the
    least recently used idle ones, then least recently used ones until there is room.
    Amortised O(1): each entry is dropped at most once."""
    if len(items) < limit:
        return
    while items and idle(next(iter(items.values()))):
        items.popitem(last=False)
    while items and len(items) >= limit:
        items.popitem(last=False)


class RateLimiter:
    """Token buckets keyed by client (a user name or an IP address). ``per_minute <= 0``
    turns limiting off. At most ``max_clients`` buckets (see the module's docstring)."""

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
        self.max_clients = max(1, max_clients)
        # client -> (tokens, updated), least recently used first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take a token for ``client``: 0.0 when the call may go ahead, else the seconds to wait
        until one is available (nothing is taken then)."""
        if self.per_minute <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens = self._tokens(client, now)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            self._buckets.move_to_end(client)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, client: str, now: float) -> float:
        if client not in self._buckets:
            make_room(self._buckets, self.max_clients, lambda b: self._refilled(b, now))
            return self.capacity
        tokens, updated = self._buckets[client]
        return min(self.capacity, tokens + (now - updated) * self.rate)

    def _refilled(self, bucket: tuple[float, float], now: float) -> bool:
        tokens, updated = bucket
        return tokens + (now - updated) * self.rate >= self.capacity


def retry_message(wait_seconds: float) -> str:
    """What a limited caller is told."""
    return f"rate limited, try again in {max(1, math.ceil(wait_seconds))} s"


# --- the client's address ---------------------------------------------------------------------


def trusted_networks(spec: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """``"10.0.0.5, 10.1.0.0/16"`` (or a list of such items) as networks; a ValueError names a
    malformed item."""
    items = spec.split(",") if isinstance(spec, str) else spec
    networks = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


def parse_ip(text: str | None) -> IPAddress | None:
    """An address as found in a socket peer or an X-Forwarded-For entry (a port, brackets and
    an IPv4-mapped IPv6 form allowed), or None when it is not one."""
    text = (text or "").strip().strip('"')
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip


def _trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str:
    """Whom a request comes from: the socket peer, unless the peer is a trusted proxy. Then it
    is the right-most X-Forwarded-For entry that is not a trusted proxy: each proxy appends
    the address it was reached from, so entries further left are only what the client claims.
    When every entry is trusted, the left-most; without entries, the peer. An entry that is
    not an address where the client's should be gives ``unknown`` (one shared key)."""
    peer_ip = parse_ip(peer)
    own = str(peer_ip) if peer_ip else (peer or UNKNOWN)
    if not (peer_ip and forwarded_for and _trusted(peer_ip, trusted)):
        return own
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            return UNKNOWN
        if not _trusted(ip, trusted):
            return str(ip)
    return str(parse_ip(hops[0])) if hops else own


def is_loopback(host: str | None) -> bool:
    """Whether a bind address or host name is this machine only."""
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
