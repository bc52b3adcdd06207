"""A loopback HTTP server that answers every POST with fixed bytes: for showing that the real SDKs
read what one of the gateway's translators produced, without the rest of the gateway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class CannedServer(ThreadingHTTPServer):
    payload: bytes = b""
    content_type: str = "application/json"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _CannedHandler(BaseHTTPRequestHandler):
    server: CannedServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", self.server.content_type)
        self.send_header("content-length", str(len(self.server.payload)))
        self.end_headers()
        self.wfile.write(self.server.payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def canned_server() -> Iterator[CannedServer]:
    server = CannedServer(("127.0.0.1", 0), _CannedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
