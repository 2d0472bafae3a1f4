"""ASGI middleware that must see every request, before routing and whatever the outcome.

- ``BodyLimit``: the upload limit from ``Content-Length`` before anything is read, and while a body streams in.
- ``SameOriginWrites``: a browser page of another origin cannot change anything (CORS alone does not stop a
  "simple" multipart POST; it only hides the answer).
- ``RequestMetrics``: one count per response status, 5xx and unhandled errors included.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response
from service.errors import Forbidden, PayloadTooLarge

REQUESTS = Counter("shitu_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("shitu_request_seconds", "HTTP request latency", ["route"])
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        over = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise PayloadTooLarge(self._message(), limit_bytes=self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # the app's own answer to the aborted body (a 400 parse error) is replaced below
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except PayloadTooLarge:
            if not over:
                raise
        if over and not started:
            await self._refuse(scope, receive, send)

    def _message(self) -> str:
        return f"the request body is over the limit of {self.max_bytes} bytes (SHITU_LIMITS__MAX_UPLOAD_MB)"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, PayloadTooLarge.code, self._message(), {"limit_bytes": self.max_bytes})
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class SameOriginWrites:
    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str]) -> None:
        self.app = app
        self.allowed = {origin.rstrip("/") for origin in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        if origin is not None and scope["method"] not in _SAFE_METHODS and not self._allowed(scope, origin):
            message = f"requests from the origin {origin} may not change anything (SHITU_AUTH__CORS_ORIGINS)"
            await error_response(403, Forbidden.code, message, {"origin": origin})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope, origin: str) -> bool:
        """Listed, or the page's own host: compared without the scheme, which a TLS-terminating proxy changes."""
        origin = origin.rstrip("/")
        return origin in self.allowed or origin.partition("://")[2] == _header(scope, b"host")


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            LATENCY.labels(route).observe(time.perf_counter() - started)
            REQUESTS.labels(route, str(status)).inc()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
