"""Request bodies read as they arrive, so a refused request is never held in memory.

Tornado reads a whole body (up to Jupyter's ``max_body_size``, 512 MiB) before ``prepare()`` runs,
so a plain handler could only refuse an unauthenticated or oversized request after buffering it.
Endpoints that take a body stream it instead: ``prepare()`` (auth, the Content-Length check) runs
on the headers alone, and at most ``max_request_bytes`` are kept.

A refusal made on the headers is answered only after the rest of the body was read and dropped:
Claude Code and the SDKs send the whole body before they read the answer, and a server that
answers and closes while they are still sending makes them see a connection reset (which they retry)
instead of the 401 or 413 (which they report). Bodies announced above twice the limit are not
worth draining: those are refused at once and the connection closed (tests/test_hostile_input.py).

Each request sets its own connection's limits, so the three modes (Jupyter, standalone, in-kernel)
behave alike whatever their HTTP server was configured with: the body size tornado itself enforces
(above it tornado answers a bare 400 of its own) is raised to the drain limit, so the refusal is
our 413; and the body must arrive within ``c.CortexClaude.request_body_timeout``, after which the
connection is closed: a request that announces a body and never sends it holds nothing for long.
That deadline is one timer per request, not tornado's own body timeout, which wraps the reading of
every body in ``gen.with_timeout`` and so makes a task per request, even for a body that came
whole with the headers (docs/benchmarks.md, "The server side's own work").
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING

from tornado import web

from ..errors import GatewayError

if TYPE_CHECKING:
    from ..service import GatewayService

log = logging.getLogger("jupyter_cortex_claude.request_body")

_DRAIN_FACTOR = 2
_HEADROOM = 1024 * 1024  # above the drain limit: a body announced there is refused by us, at once


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"The request is larger than Cortex's limit of {limit // (1024 * 1024)} MiB."
    )


@web.stream_request_body
class StreamedBody(web.RequestHandler):
    """Put first among an endpoint's bases; the endpoint reads :attr:`request_body`."""

    service: GatewayService
    _chunks: list[bytes] | None = None
    _received = 0
    _refusal: Exception | None = None
    _body_deadline: asyncio.TimerHandle | None = None

    async def prepare(self) -> None:
        connection = self.request.connection
        limit = self.service.config.max_request_bytes
        if hasattr(connection, "set_body_timeout"):  # HTTP/1 (tornado's only server protocol)
            connection.set_max_body_size(_DRAIN_FACTOR * limit + _HEADROOM)
            timeout = self.service.config.request_body_timeout
            # The future tornado's stream_request_body mode resolves once the body is all in.
            if hasattr(self.request, "_body_future"):
                connection.set_body_timeout(None)  # type: ignore[arg-type] - ours instead
                self._body_deadline = asyncio.get_running_loop().call_later(
                    timeout, self._body_too_slow
                )
            else:  # a tornado without it: its own timeout, slower but the same protection
                connection.set_body_timeout(timeout)
        try:
            result = super().prepare()
            if inspect.isawaitable(result):
                await result
        except Exception as refusal:
            if self._finished or not self._worth_draining():
                raise
            self._refusal = refusal

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        if not self.request._body_future.done():
            log.info("Timeout reading the request body from %s", self.request.remote_ip)
            self.request.connection.close()  # type: ignore[attr-defined] - HTTP1Connection

    def _end_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def on_finish(self) -> None:
        self._end_body_deadline()
        super().on_finish()

    def on_connection_close(self) -> None:
        self._end_body_deadline()
        super().on_connection_close()

    def _worth_draining(self) -> bool:
        if self.request.method != "POST" or type(self).post is web.RequestHandler.post:
            # Only a POST endpoint reads request_body, where a deferred refusal is raised;
            # elsewhere tornado's 405 would answer in the refusal's place.
            return False
        headers = self.request.headers
        length = headers.get("Content-Length")
        if length is None:
            return "chunked" in headers.get("Transfer-Encoding", "").lower()
        limit = self.service.config.max_request_bytes
        return length.isdigit() and 0 < int(length) <= _DRAIN_FACTOR * limit

    def data_received(self, chunk: bytes) -> None:
        if self._refusal is not None:
            return
        self._received += len(chunk)
        limit = self.service.config.max_request_bytes
        if self._received > limit:  # a chunked upload without Content-Length
            self._refusal, self._chunks = too_large(limit), None
            return
        if self._chunks is None:
            self._chunks = []
        self._chunks.append(chunk)

    @property
    def request_body(self) -> bytes:
        """The whole body; raises the refusal deferred by :meth:`prepare`, if any."""
        if self._refusal is not None:
            raise self._refusal
        return b"".join(self._chunks or ())
