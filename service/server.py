"""Run the app under uvicorn, with a connection that must send its request headers in bounded time."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.app import create_app
from service.config import Settings


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection that has not sent a whole request head ``header_timeout_s`` after it opened or after
    its previous response: a client dribbling headers byte by byte (slowloris) cannot hold a connection open."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def run_server(settings: Settings) -> None:
    protocol = type("ShituHttpProtocol", (HeaderTimeoutProtocol,),
                    {"header_timeout_s": settings.limits.header_timeout_s})
    uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port,
                log_level=settings.server.log_level, http=protocol)
