"""A local HTTP file server for the pull tests: Range requests, and a mode that cuts a response short."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-")


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    """path -> bytes of body sent before the connection is dropped (once)."""
    honour_ranges: bool = True
    range_headers: list[str | None] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StatefulServer

    def do_GET(self) -> None:
        state = self.server.state
        body = state.files.get(self.path)
        range_header = self.headers.get("Range")
        state.range_headers.append(range_header)
        if body is None:
            self._answer(404, b"not found", {})
            return
        match = _RANGE.fullmatch(range_header or "")
        if match is None or not state.honour_ranges:
            self._answer(200, body, {}, cut=state.cut_after.pop(self.path, None))
            return
        start = int(match.group(1))
        if start >= len(body):
            self._answer(416, b"", {"Content-Range": f"bytes */{len(body)}"})
            return
        content_range = f"bytes {start}-{len(body) - 1}/{len(body)}"
        self._answer(206, body[start:], {"Content-Range": content_range}, cut=state.cut_after.pop(self.path, None))

    def _answer(self, status: int, payload: bytes, headers: dict[str, str], cut: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if cut is None:
            self.wfile.write(payload)
            return
        self.wfile.write(payload[:cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:
        return


class _StatefulServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FileServer:
    """Serves ``state.files`` on 127.0.0.1 at an ephemeral port until :meth:`close`."""

    def __init__(self) -> None:
        self.state = ServerState()
        self._server = _StatefulServer(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def serve(self, name: str, body: bytes) -> str:
        self.state.files[f"/{name}"] = body
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def cut_next_response(self, name: str, after_bytes: int) -> None:
        self.state.cut_after[f"/{name}"] = after_bytes

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
