"""One exchange with Cortex, written once for every route: open, read or relay, close, record usage.

The router shapes each request and begins an :class:`Exchange` for it (:meth:`Upstream.begin`);
the route (``route_*.py``) then uses it:

- :meth:`Exchange.open` POSTs it through :meth:`.CortexClient.open` (which retries what is safe to
  retry) and returns the 2xx response, its body not yet read;
- :meth:`Exchange.read_json` reads a whole JSON answer and checks it is the kind expected;
- :meth:`Exchange.relay` relays a streamed answer through the route's :class:`StreamConverter`
  (``feed(bytes) -> bytes`` while Cortex sends, ``finish(failure) -> bytes`` at the end), closing
  the upstream response however the stream ends, the client hanging up included;
- every outcome, success, failure or a client that left, goes on the usage ledger exactly once.

The failures of an answer that breaks after Cortex accepted the request are named once, in
:mod:`jupyter_cortex_claude.errors` (``answer_broke_off``, ``not_json``, ``stalled_mid_answer``,
``stream_broke_off``, ``malformed_stream``, ``incomplete_answer``), so every route, and the Cortex
client itself, reports them alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ..errors import (
    GatewayError,
    answer_broke_off,
    not_json,
    request_id_header,
    stalled_mid_answer,
    stream_broke_off,
)
from ..snowflake.cortex import CortexClient, CortexResponse
from .json_bodies import encode_body, loads_finite, off_loop
from .usage import UsageRecord, UsageRecorder

log = logging.getLogger(__name__)


# -- what a route plugs in -------------------------------------------------------------------------


class StreamConverter(Protocol):
    """Turns Cortex's streamed answer into the client's, as it arrives (one per response)."""

    failed: bool
    """True once the converter ended the client's stream with an error: nothing more is read."""

    def feed(self, chunk: bytes) -> bytes:
        """Bytes for the client from the next bytes Cortex sent (often none)."""
        ...

    def finish(self, failure: GatewayError | None) -> bytes:
        """The closing bytes once Cortex's stream ended: the answer's end or, when the stream is
        incomplete or ``failure`` broke it, one error event (never a clean end after a partial
        answer)."""
        ...


@dataclass(frozen=True)
class ExpectedAnswer:
    """What a whole JSON answer from one Cortex API must look like, and where its usage is."""

    fits: Callable[[Any], bool]
    """True for an answer of the expected kind (always a dict)."""
    missing: str
    """The error message when the answer does not fit."""
    add_usage: Callable[[UsageRecord, dict[str, Any]], None]


# -- the exchange ----------------------------------------------------------------------------------


class ShapedRequest(Protocol):
    """What every route's shaped request tells the ledger."""

    client_model: str
    cortex_model: str
    stream: bool
    large: bool  # a large client body: encoding what goes to Cortex belongs off the event loop


class Upstream:
    """Cortex as every route reaches it: the Cortex client and the usage ledger. One per gateway."""

    def __init__(
        self, cortex: CortexClient, on_usage: Callable[[UsageRecord], None] | None = None
    ) -> None:
        self.cortex = cortex
        self.usage = UsageRecorder(on_usage)

    def begin(self, endpoint: str, headers: Mapping[str, str], shaped: ShapedRequest) -> Exchange:
        """A new exchange for one client request; ``endpoint`` is "anthropic" or "openai"."""
        record = UsageRecord(
            endpoint=endpoint,
            client=headers.get("user-agent", "")[:80],
            client_model=shaped.client_model,
            cortex_model=shaped.cortex_model,
            stream=shaped.stream,
        )
        return Exchange(self.cortex, self.usage, record, large=shaped.large)


class Exchange:
    """One client request's exchange with Cortex, and its line on the usage ledger."""

    def __init__(
        self,
        cortex: CortexClient,
        usage: UsageRecorder,
        record: UsageRecord,
        *,
        large: bool = False,
    ) -> None:
        self._cortex = cortex
        self._usage = usage
        self.record = record
        self.large = large

    def answered_here(self, request_id: str | None = None) -> None:
        """The route answered without an answer from Cortex (a prefill, "conversation complete")."""
        self.record.request_id = request_id
        self._usage.record(self.record)

    async def open(
        self,
        path: str,
        payload: Mapping[str, Any],
        *,
        stream: bool,
        headers: Mapping[str, str] | None = None,
        not_a_failure: Callable[[GatewayError], bool] | None = None,
    ) -> CortexResponse:
        """POST ``payload`` as JSON to ``path``; the 2xx response, its body not yet read.

        Raises :class:`GatewayError`, put on the ledger as a failure unless ``not_a_failure``
        says it is none: the route answers that one itself (a fallback, an empty stop).
        """
        content = await off_loop(self.large, encode_body, payload)
        request_headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            **(headers or {}),
        }
        try:
            response = await self._cortex.open(
                path, content, headers=request_headers, model=self.record.cortex_model
            )
        except GatewayError as error:
            if not_a_failure is None or not not_a_failure(error):
                self._usage.failed(self.record, error)
            raise
        self.record.retries = response.retries
        self.record.request_id = response.request_id
        return response

    async def read_json(self, response: CortexResponse, expected: ExpectedAnswer) -> dict[str, Any]:
        """The whole answer, parsed, with its usage on the ledger; or the GatewayError saying why not."""
        error: GatewayError | None = None
        answer: Any = None
        try:
            body = await response.read()
        except httpx.HTTPError as exc:
            error = answer_broke_off(exc)
        else:
            error = response.error_for_body(
                body, model=self.record.cortex_model, identity=self._cortex.identity
            )
            if error is None:
                try:
                    answer = loads_finite(body)
                except ValueError:
                    error = not_json()
                else:
                    if not expected.fits(answer):
                        error = GatewayError(502, expected.missing)
        if error is not None:
            self._usage.failed(self.record, error)
            raise error
        expected.add_usage(self.record, answer)
        self._usage.finished(self.record, response.started)
        return answer  # type: ignore[no-any-return]

    async def relay(
        self, response: CortexResponse, converter: StreamConverter
    ) -> AsyncIterator[bytes]:
        """The client's stream, converted from Cortex's as it arrives.

        Closing this iterator (or cancelling the task that iterates it) closes the upstream
        response; the ledger gets the record in every case, a client that hangs up included.
        """
        record = self.record
        failure: GatewayError | None = None
        try:
            async for chunk in response.chunks():
                if record.first_token_ms is None:
                    record.first_token_ms = (time.monotonic() - response.started) * 1000
                out = converter.feed(chunk)
                if out:
                    yield out
                if converter.failed:
                    break
        except httpx.ReadTimeout:
            failure = stalled_mid_answer()
        except httpx.HTTPError as exc:
            failure = stream_broke_off(exc)
        except (asyncio.CancelledError, GeneratorExit):
            self._usage.client_left(record, response.started)
            raise
        finally:
            await response.aclose()
        tail = converter.finish(failure)
        if converter.failed:
            log.debug("the stream from Cortex ended in an error (%s)", record.cortex_model)
            record.status = failure.status if failure else 502
            record.error = "incomplete stream"
        self._usage.finished(record, response.started)
        if tail:
            yield tail


def reply_headers(response: CortexResponse) -> dict[str, str]:
    """The headers a reply carries from Cortex's answer: its Snowflake request id."""
    return request_id_header(response.request_id)
