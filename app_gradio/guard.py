"""The app's request guard, an ASGI middleware around every Gradio route: it says who the
client is, and ends login sessions older than FRAUD_APP_SESSION_HOURS.

Who: the socket peer, or, when the peer is one of FRAUD_APP_TRUSTED_PROXIES, the address that
proxy saw (``fraud_assets.lib.ratelimit.client_address``). It replaces the request's client,
so ``request.client.host`` (hence ``views.client_key``) and the login throttle (through
``login_throttle.address_context``) count the same address. Uvicorn would otherwise rewrite
the client from X-Forwarded-For for any loopback peer before the app sees it: ``launch`` runs
inside ``uvicorn_trusts_no_proxy`` so that the setting alone decides.

Sessions: Gradio keeps a login's token (cookies ``access-token[-unsecure]-<cookie_id>``) in
``app.tokens`` until logout or restart. The guard records when each token is issued (the
``/login`` response's Set-Cookie) and drops a token from ``app.tokens`` once it is older than
the session; Gradio then treats its requests as logged out (401 for API calls, the login form
in a browser). A sweep, at most every ``sweep_seconds``, also drops expired tokens never
presented again and forgets logged-out ones; a token it finds unrecorded counts from then.

The hook: ``launch(app_kwargs={"middleware": [...]})``, which Gradio (6.x) passes to its
FastAPI app; the middleware then runs inside Gradio's own (CORS, compression), around every
route, and ``scope["app"]`` is Gradio's ``App`` with its ``tokens`` and ``cookie_id``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app_gradio.login_throttle import address_context
from fraud_assets.lib.ratelimit import IPNetwork, client_address, trusted_networks
from fraud_assets.settings import Settings

log = logging.getLogger(__name__)

COOKIE_PREFIXES = ("access-token-", "access-token-unsecure-")


class Sessions:
    """When each login token was issued; tokens older than ``max_age_seconds`` are dropped
    from Gradio's ``tokens`` (token -> user name). Used from the event loop only."""

    def __init__(
        self,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sweep_seconds: float = 60.0,
    ) -> None:
        self.max_age, self.clock = max_age_seconds, clock
        self.sweep_seconds = min(sweep_seconds, max_age_seconds / 4)
        self._issued: dict[str, float] = {}
        self._next_sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._issued)

    def started(self, token: str) -> None:
        self._issued[token] = self.clock()

    def enforce(self, tokens: dict[str, Any], presented: Iterable[str]) -> None:
        """Before a request: end the presented tokens that have expired (and sweep when due)."""
        now = self.clock()
        for token in presented:
            issued = self._issued.get(token)
            if issued is not None and now - issued >= self.max_age:
                self._end(tokens, token)
        if now >= self._next_sweep:
            self.sweep(tokens, now)

    def sweep(self, tokens: dict[str, Any], now: float) -> None:
        for token in list(tokens):  # Gradio's logout deletes from a worker thread
            if now - self._issued.setdefault(token, now) >= self.max_age:
                self._end(tokens, token)
        for token in [t for t in self._issued if t not in tokens]:
            del self._issued[token]
        self._next_sweep = now + self.sweep_seconds

    def _end(self, tokens: dict[str, Any], token: str) -> None:
        user = tokens.pop(token, None)
        self._issued.pop(token, None)
        if user is not None:
            log.info("a session of %r expired; the next request must log in again", user)


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]
    return ", ".join(values) if values else None


def presented_tokens(scope: Scope, cookie_id: str) -> set[str]:
    """The login tokens a request's cookies carry."""
    cookies = cookie_parser(_header(scope, b"cookie") or "")
    return {cookies[p + cookie_id] for p in COOKIE_PREFIXES if p + cookie_id in cookies}


def issued_tokens(message: Message, cookie_id: str) -> set[str]:
    """The login tokens a response's Set-Cookie headers issue."""
    found = set()
    for key, value in message.get("headers", ()):
        if key.lower() != b"set-cookie":
            continue
        cookie: SimpleCookie = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookie.load(value.decode("latin-1"))
        found |= {cookie[p + cookie_id].value for p in COOKIE_PREFIXES if p + cookie_id in cookie}
    return found


class RequestGuard:
    """The ASGI middleware (see the module's docstring)."""

    def __init__(
        self, app: ASGIApp, trusted: Sequence[IPNetwork] = (), sessions: Sessions | None = None
    ) -> None:
        self.app, self.trusted, self.sessions = app, tuple(trusted), sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = self.resolve(scope)
        gradio = scope.get("app")
        tokens = getattr(gradio, "tokens", None)
        if self.sessions is not None and isinstance(tokens, dict):
            cookie_id = str(getattr(gradio, "cookie_id", ""))
            self.sessions.enforce(tokens, presented_tokens(scope, cookie_id))
            if scope.get("method") == "POST" and scope["path"].rstrip("/").endswith("/login"):
                send = self._recording(send, cookie_id, self.sessions)
        with address_context(address):
            await self.app(scope, receive, send)

    def resolve(self, scope: Scope) -> str:
        """The client's address, also put in ``scope["client"]``."""
        peer, port = scope.get("client") or (None, 0)
        address = client_address(peer, _header(scope, b"x-forwarded-for"), self.trusted)
        if address != peer:  # the proxy's client, or the peer's canonical form
            scope["client"] = (address, port if address == client_address(peer, None, ()) else 0)
        return address

    @staticmethod
    def _recording(send: Send, cookie_id: str, sessions: Sessions) -> Send:
        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                for token in issued_tokens(message, cookie_id):
                    sessions.started(token)
            await send(message)

        return recording


def app_kwargs(settings: Settings, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """``launch``'s ``app_kwargs`` with the guard added, configured from the settings; a
    ValueError names a malformed FRAUD_APP_TRUSTED_PROXIES item."""
    try:
        trusted = trusted_networks(settings.app_trusted_proxies)
    except ValueError as exc:
        raise ValueError(f"FRAUD_APP_TRUSTED_PROXIES: {exc}") from None
    sessions = Sessions(settings.app_session_hours * 3600.0)
    guard = Middleware(RequestGuard, trusted=trusted, sessions=sessions)
    kwargs = dict(given or {})
    kwargs["middleware"] = [*kwargs.get("middleware", ()), guard]
    return kwargs


@contextlib.contextmanager
def uvicorn_trusts_no_proxy() -> Iterator[None]:
    """Within this block uvicorn trusts X-Forwarded-For from no peer (by default it trusts
    loopback's). Uvicorn reads FORWARDED_ALLOW_IPS when Gradio builds its server config,
    during ``launch``; Gradio itself reads X-Forwarded-Proto/Host from the headers."""
    before = os.environ.get("FORWARDED_ALLOW_IPS")
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FORWARDED_ALLOW_IPS", None)
        else:
            os.environ["FORWARDED_ALLOW_IPS"] = before
