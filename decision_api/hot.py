"""The hot routes (``POST /v1/decisions``, ``/v1/decisions/batch``, ``/v1/noop``) as plain ASGI.

FastAPI's request handling (its middleware, resolving dependencies, parsing the body into a
dict and then the model, re-validating and encoding the response) cost more CPU a request
than the decision itself (``docs/benchmarks.md``). These routes skip it: ``HotPaths`` hands
them their requests before FastAPI sees them, and each says who asks, reads the body under the
size limit, parses it straight from JSON into the request models (pydantic's parser and the
models' own checks), and writes the response model's JSON, or the error FastAPI would have
written. FastAPI still documents them, from the operations ``app._declare`` declares with the
same models, and serves everything else.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, HTTPException
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

#: What FastAPI accepts for a boolean query parameter.
_BOOL = TypeAdapter(bool)
M = TypeVar("M", bound=BaseModel)


class Invalid(Exception):
    """A 422: each bad field's ``loc``, ``msg`` and ``type``, as FastAPI lists them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class HotPaths:
    """The service's ASGI app: POSTs to ``routes`` go straight to their handler, everything
    else (and the lifespan) to the FastAPI app, whose ``state`` this one shares."""

    def __init__(self, app: FastAPI, routes: Mapping[str, ASGIApp]) -> None:
        self.app, self.routes, self.state = app, dict(routes), app.state
        for route in app.routes:  # FastAPI's own routing reaches the same handlers
            if isinstance(route, APIRoute) and route.path in self.routes:
                route.app = self.routes[route.path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self.routes.get(scope["path"])
            if route is not None:
                await route(scope, receive, send)
                return
        await self.app(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the last, if repeated), as latin-1 text."""
    found = None
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return None if found is None else found.decode("latin-1")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; a 413 as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "the client went away before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large(limit: int) -> HTTPException:
    """A 413; the connection is closed, with the rest of the body unread."""
    return HTTPException(
        413, f"the request body is larger than {limit} bytes", headers={"Connection": "close"}
    )


def parse(model: type[M], body: bytes) -> M:
    """``body`` as ``model``; ``Invalid`` (422) names each bad field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise Invalid(
            [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False, include_context=False)
            ]
        ) from None


def query_flag(scope: Scope, name: str) -> bool:
    """A boolean query parameter (false when absent), read as FastAPI reads one."""
    values = [v for k, v in parse_qsl(scope["query_string"].decode("latin-1")) if k == name]
    if not values:
        return False
    try:
        return _BOOL.validate_python(values[-1])
    except ValidationError:
        raise Invalid(
            [{"loc": ["query", name], "msg": "Input should be a valid boolean", "type": "bool"}]
        ) from None


async def respond(
    send: Send, body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> None:
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


Handler = Callable[[Scope, bytes, str, float], Awaitable[bytes]]


def route(
    who_asks: Callable[[str | None], str],
    handle: Handler,
    max_body: int,
    on_invalid: Callable[[], None],
) -> ASGIApp:
    """A plain ASGI app: who asks (from the Authorization header), the body, then
    ``handle(scope, body, client, started)``'s JSON as a 200; an ``HTTPException`` or
    ``Invalid`` as FastAPI answers them (``on_invalid`` counts each 422)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            declared = header(scope, b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > max_body):
                raise too_large(max_body)
            who = who_asks(header(scope, b"authorization"))
            answer = await handle(scope, await read_body(receive, max_body), who, started)
        except Invalid as exc:
            on_invalid()
            await respond(send, orjson.dumps({"detail": exc.errors}), 422)
        except HTTPException as exc:
            body = orjson.dumps({"detail": exc.detail})
            await respond(send, body, exc.status_code, exc.headers)
        else:
            await respond(send, answer)

    return app
