"""Analysts' logins: password entries, their verification, and whether the app may start.

An entry is ``name:pbkdf2_sha256$iterations$salt_b64$hash_b64`` (PBKDF2-HMAC-SHA256, standard
padded base64), as ``python -m app_gradio.users hash NAME`` prints it. Entries come from
FRAUD_APP_USERS (comma-separated) and FRAUD_APP_USERS_FILE (one a line, ``#`` comments). The
app refuses to serve beyond loopback without them, unless FRAUD_APP_ALLOW_ANONYMOUS=true says
so on purpose. Nothing here ever logs, shows or formats a hash or a password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from app_gradio.login_throttle import LoginThrottle, current_address
from fraud_assets.lib.ratelimit import RateLimiter, is_loopback
from fraud_assets.settings import Settings

log = logging.getLogger(__name__)

ALGORITHM = "pbkdf2_sha256"
#: OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
DEFAULT_ITERATIONS = 600_000
#: Below this, an entry still works but the app warns that it is cheap to brute-force.
WEAK_ITERATIONS = 100_000
NAME = re.compile(r"^[^\s:,#$]+$")
#: Unknown names hashed against the decoy per minute, all clients together (0: no cap).
DECOY_HASHES_PER_MINUTE = 30


class UsersError(ValueError):
    """A login entry is malformed; the message names the entry, never its hash."""


class InsecureStartup(RuntimeError):
    """The app would serve beyond loopback without a login."""


@dataclass(frozen=True)
class PasswordHash:
    """A PBKDF2-HMAC-SHA256 hash; its repr shows the iteration count only."""

    iterations: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Read ``pbkdf2_sha256$iterations$salt_b64$hash_b64``; UsersError says what is wrong."""
        parts = text.split("$")
        if len(parts) != 4 or parts[0] != ALGORITHM:
            raise UsersError(f"the hash must look like {ALGORITHM}$iterations$salt_b64$hash_b64")
        if not parts[1].isdigit() or int(parts[1]) < 1:
            raise UsersError("the iteration count must be a positive whole number")
        try:
            salt = base64.b64decode(parts[2], validate=True)
            digest = base64.b64decode(parts[3], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UsersError("salt and hash must be standard (padded) base64") from exc
        if len(salt) < 8 or len(digest) < 16:
            raise UsersError("the salt must be at least 8 bytes and the hash at least 16")
        return cls(int(parts[1]), salt, digest)

    def encode(self) -> str:
        salt, digest = (base64.b64encode(b).decode("ascii") for b in (self.salt, self.digest))
        return f"{ALGORITHM}${self.iterations}${salt}${digest}"

    def verify(self, password: str) -> bool:
        candidate = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), self.salt, self.iterations, len(self.digest)
        )
        return hmac.compare_digest(candidate, self.digest)


def hash_password(
    password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> PasswordHash:
    if not password:
        raise ValueError("the password is empty")
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return PasswordHash(iterations, salt, digest)


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise UsersError(
            f"user name {name!r} must be non-empty, without spaces, ':', ',', '#' or '$'"
        )
    return name


def entry(name: str, password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """One ``name:hash`` entry for FRAUD_APP_USERS or the users file."""
    return f"{check_name(name)}:{hash_password(password, iterations).encode()}"


def parse_entries(items: list[tuple[str, str]]) -> dict[str, PasswordHash]:
    """``(where, text)`` pairs -> hash by name; UsersError names the entry (and its user) on
    any mistake, including a name given twice."""
    users: dict[str, PasswordHash] = {}
    for where, text in items:
        name, sep, hashed = text.partition(":")
        name = name.strip()
        try:
            if not sep:
                raise UsersError("expected name:pbkdf2_sha256$iterations$salt_b64$hash_b64")
            check_name(name)
            if name in users:
                raise UsersError(f"user {name!r} is given twice")
            users[name] = PasswordHash.parse(hashed.strip())
        except UsersError as exc:
            who = f" (user {name!r})" if sep and NAME.match(name) else ""
            raise UsersError(f"{where}{who}: {exc}") from None
    return users


def entries_from_env(value: str) -> list[tuple[str, str]]:
    return [
        (f"FRAUD_APP_USERS entry {i}", item.strip())
        for i, item in enumerate(value.split(","), start=1)
        if item.strip()
    ]


def entries_from_file(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsersError(f"FRAUD_APP_USERS_FILE {path}: cannot read it ({exc.strerror})") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()  # '#' never occurs in a name or in base64
        if content:
            out.append((f"FRAUD_APP_USERS_FILE {path} line {number}", content))
    return out


class Users:
    """The configured logins. ``verify`` takes about as long for an unknown name as for a
    known one, so response times do not tell which names exist."""

    def __init__(self, hashes: dict[str, PasswordHash]) -> None:
        self._hashes = dict(hashes)
        strongest = max((h.iterations for h in hashes.values()), default=DEFAULT_ITERATIONS)
        # Random bytes, not a real hash: checking against it costs the same and never matches.
        self._decoy = PasswordHash(strongest, os.urandom(16), os.urandom(32))
        for name, h in hashes.items():
            if h.iterations < WEAK_ITERATIONS:
                log.warning(
                    "login %r uses %d PBKDF2 iterations; rehash it with "
                    "`python -m app_gradio.users hash` (%d)",
                    name,
                    h.iterations,
                    DEFAULT_ITERATIONS,
                )

    @property
    def names(self) -> list[str]:
        return sorted(self._hashes)

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def __contains__(self, name: object) -> bool:
        return name in self._hashes

    def __repr__(self) -> str:
        return f"Users({self.names})"

    def verify(self, name: str, password: str) -> bool:
        known = self._hashes.get(name)
        ok = (known or self._decoy).verify(password or "")
        return bool(known) and bool(password) and ok


def load_users(settings: Settings) -> Users:
    """Every login from FRAUD_APP_USERS and FRAUD_APP_USERS_FILE (none when both are unset)."""
    items = entries_from_env(settings.app_users or "")
    if settings.app_users_file:
        items += entries_from_file(Path(settings.app_users_file).expanduser())
    return Users(parse_entries(items))


def login_policy(settings: Settings, host: str | None = None) -> Users | None:
    """The logins to require when serving on ``host`` (default GRADIO_SERVER_NAME), or None for
    no login: allowed on loopback, or beyond it only with FRAUD_APP_ALLOW_ANONYMOUS=true.

    Raises InsecureStartup (and UsersError for a malformed entry): the app must not start."""
    host = settings.app_server_name if host is None else host
    users = load_users(settings)
    if users:
        return users
    if is_loopback(host):
        return None
    if settings.app_allow_anonymous:
        log.warning("serving on %s WITHOUT a login, as FRAUD_APP_ALLOW_ANONYMOUS=true asks", host)
        return None
    raise InsecureStartup(
        f"refusing to serve on GRADIO_SERVER_NAME={host} without a login. Set FRAUD_APP_USERS "
        "(comma-separated name:pbkdf2_sha256$... entries from `python -m app_gradio.users hash "
        "NAME`) or FRAUD_APP_USERS_FILE (one entry a line); or bind to 127.0.0.1; or set "
        "FRAUD_APP_ALLOW_ANONYMOUS=true to serve without a login on purpose."
    )


class HashTime:
    """A running estimate of how long a check against the decoy takes (None before the
    first; until then unknown names are hashed whatever the budget)."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def observe(self, seconds: float) -> None:
        self.seconds = seconds if self.seconds is None else 0.8 * self.seconds + 0.2 * seconds


async def checked(
    users: Users,
    name: str,
    password: str,
    decoys: RateLimiter,
    timing: HashTime,
    sleep: Callable[[float], Awaitable[object]],
) -> bool:
    """``users.verify`` in a worker thread, except for an unknown name once the decoy budget is
    spent: refused after a sleep as long as a check usually takes, without hashing.

    The trade-off: within the budget, an unknown name costs the same hashing as a known one,
    so timing hides which names exist. Beyond it, a flood of unknown names costs no CPU, but
    a refusal then takes the usual time rather than what hashing would take on a machine that
    is busy at that moment, which a patient observer could tell apart from a known name."""
    unknown = name not in users
    if unknown and decoys.acquire("decoy") > 0 and timing.seconds is not None:
        log.debug("decoy budget spent: an unknown name refused without hashing")
        await sleep(timing.seconds)
        return False
    started = time.perf_counter()
    ok = await asyncio.to_thread(users.verify, name, password)
    if unknown:  # what a refusal imitates: a check against the decoy
        timing.observe(time.perf_counter() - started)
    return ok


def gradio_auth(
    users: Users,
    throttle: LoginThrottle | None = None,
    decoys: RateLimiter | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Callable[[str, str], Awaitable[bool]]:
    """The ``auth`` callable for ``launch``. Gradio awaits it on its event loop, so waits are
    ``sleep`` and the hashing (a fraction of a second by design) runs in a worker thread,
    never stalling other sessions. The client's address comes from the app's middleware
    (``login_throttle.current_address``); ``throttle`` says how long an attempt waits before
    it is checked, ``decoys`` caps the hashing unknown names cost."""
    throttle = LoginThrottle() if throttle is None else throttle
    decoys = RateLimiter(DECOY_HASHES_PER_MINUTE) if decoys is None else decoys
    timing = HashTime()

    async def check(username: str, password: str) -> bool:
        address = current_address()
        who = f"{username!r}" if username in users else "an unknown name"
        wait = throttle.reserve(username, address)
        if wait is None:
            log.warning("login for %s from %s refused unchecked: too many at once", who, address)
            return False
        if wait > 0:
            log.warning("login for %s from %s waits %.1f s: repeated failures", who, address, wait)
            await sleep(wait)
        ok = await checked(users, username, password, decoys, timing, sleep)
        if ok:
            throttle.succeeded(username, address)
        else:
            throttle.failed(username, address)
            log.warning("failed login for %s from %s", who, address)
        return ok

    return check
