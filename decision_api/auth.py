"""Named clients with bearer tokens, stored hashed and read from the environment.

An entry is ``name:sha256:<hex>``, the SHA-256 of the client's token, as
``python -m decision_api token NAME`` prints it. Tokens are 256 random bits, so a fast hash is
enough (no password stretching: that would cost milliseconds on every decision), and a stolen
list of entries gives no token. Entries come from FRAUD_DECISION_CLIENTS (comma-separated);
FRAUD_DECISION_DISABLED_CLIENTS names clients refused with 403. Off loopback the service
refuses to start without clients.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from fraud_assets.lib.ratelimit import is_loopback

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ANONYMOUS = "anonymous"


class ClientsError(ValueError):
    """A client entry is malformed; the message names the entry, never its hash."""


class InsecureStartup(RuntimeError):
    """The service would listen beyond loopback without named clients."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_client(name: str) -> tuple[str, str]:
    """A fresh token for ``name`` and its entry for FRAUD_DECISION_CLIENTS."""
    if not NAME.fullmatch(name):
        raise ClientsError(f"client name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    token = secrets.token_urlsafe(32)
    return token, f"{name}:sha256:{token_digest(token)}"


@dataclass(frozen=True)
class Clients:
    """Who may ask for decisions: token digest -> name, and the disabled names."""

    by_digest: dict[str, str]
    disabled: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: str | None, disabled: str = "") -> Clients:
        by_digest: dict[str, str] = {}
        for i, item in enumerate(filter(None, (e.strip() for e in (entries or "").split(","))), 1):
            name, _, rest = item.partition(":")
            algorithm, _, digest = rest.partition(":")
            if not NAME.fullmatch(name) or algorithm != "sha256":
                raise ClientsError(f"FRAUD_DECISION_CLIENTS entry {i}: expected name:sha256:<hex>")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ClientsError(f"FRAUD_DECISION_CLIENTS entry {i} ({name}): bad sha256 hex")
            if name in by_digest.values():
                raise ClientsError(f"FRAUD_DECISION_CLIENTS: client {name!r} is given twice")
            by_digest[digest] = name
        names = frozenset(n.strip() for n in disabled.split(",") if n.strip())
        return cls(by_digest, names)

    def __bool__(self) -> bool:
        return bool(self.by_digest)

    def who(self, token: str) -> str | None:
        """The client a token belongs to, or None."""
        return self.by_digest.get(token_digest(token))


def require_clients_off_loopback(clients: Clients, host: str) -> None:
    """Raise InsecureStartup when ``host`` is not loopback and no client is configured."""
    if not clients and not is_loopback(host):
        raise InsecureStartup(
            f"refusing to listen on {host} without named clients: set FRAUD_DECISION_CLIENTS "
            "(entries from `python -m decision_api token NAME`), or bind to 127.0.0.1"
        )


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
