"""The Cortex client: one pooled connection (:mod:`.cortex_http`), credentials, bounded retries,
error mapping.

A credential (:class:`.credentials.SnowflakeCredential`) gives the token to send; this module never
knows which kind of Snowflake identity is in use. When Snowflake refuses the token (a 401, or a
session token's 200 + 390112), the credential renews it once, however many requests saw the
refusal, and the request is replayed once with the new token (:meth:`CortexClient._send`).

Only what Cortex did not process is retried (issue 11, finding 4): a connection that could not be
opened (httpx's ``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``: raised before a byte of the
request is written, so Cortex never saw it), and Cortex's own "not now" answers (429, 503 and the
throttled 400). Everything after the request went out is reported, never re-sent: a read timeout
before the first byte (Cortex may still be working on it, and bills it), a connection reset or a
write that broke off (httpx's ``ReadError``, ``WriteError``, ``RemoteProtocolError``: what Cortex
received is unknown). One deadline (``c.CortexClaude.retry_deadline``) bounds the whole loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import GatewayError, answer_broke_off
from .cortex_http import CortexAnswer, CortexHttp, environment_proxy
from .cortex_limits import CortexLimits
from .credentials import SnowflakeCredential
from .errors import (
    SESSION_EXPIRED_CODE,
    ConfigurationError,
    ConnectorMissing,
    describe_connect_failure,
    error_from_cortex,
    is_error_body,
    is_throttled_400,
    parse_snowflake_error,
    retry_after_seconds,
)
from .upstream_status import (
    AUTH_FAILED,
    CONNECTOR_MISSING,
    CORTEX_ERROR,
    OK,
    UNREACHABLE,
    UpstreamStatus,
    state_for_status,
)

log = logging.getLogger("jupyter_cortex_claude.cortex")

MESSAGES_PATH = "/api/v2/cortex/v1/messages"
CHAT_COMPLETIONS_PATH = "/api/v2/cortex/v1/chat/completions"
# A preview since Oct 2026, OpenAI models only, stateless (Snowflake's release note of Oct 23, 2026).
RESPONSES_PATH = "/api/v2/cortex/v1/responses"
MODELS_PATH = "/api/v2/cortex/models"

_RETRYABLE_STATUS = frozenset({429, 503})
_MAX_ERROR_BODY = 64 * 1024
# Raised while a connection is being opened or waited for: nothing of the request was written yet.
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_SESSION_EXPIRED_BYTES = SESSION_EXPIRED_CODE.encode()
_MIN_ATTEMPT_CONNECT = 0.5  # seconds: the shortest connect timeout a last attempt gets


@dataclass(frozen=True)
class RetryPolicy:
    """Retries happen only before anything was sent to the client, and only for requests Cortex
    did not process.

    ``max_retries`` bounds the retries of Cortex's refusals (429, 503, throttled 400); connection
    failures, which never reached Cortex, are retried until ``deadline`` (seconds since the first
    attempt), which also bounds every wait: a wait that would end after it is not taken.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    deadline: float = 15.0

    def delay(self, attempt: int) -> float:
        # Full jitter between half and all of the exponential step spreads a team's retries out.
        step = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(step / 2, step)


class CortexClient:
    """Sends requests to Cortex for the whole server (one connection pool, closed at shutdown)."""

    def __init__(
        self,
        base_url: str,
        auth: SnowflakeCredential,
        *,
        identity: str = "the configured Snowflake user",
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 1000,
        status: UpstreamStatus | None = None,
        limits: CortexLimits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        url = urlsplit(self.base_url)
        self.host = url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.identity = identity
        self.retry = retry or RetryPolicy()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.status = status or UpstreamStatus()
        self.limits = limits
        self._auth = auth
        self._http = CortexHttp(max_connections=max_connections, read_timeout=read_timeout)

    def busy_connections(self) -> int:
        """Connections to Cortex now carrying a request."""
        return self._http.busy_connections()

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def open(
        self,
        path: str,
        content: bytes,
        *,
        headers: Mapping[str, str],
        model: str,
    ) -> CortexResponse:
        """POST ``content`` and return the 2xx response with its body not yet read.

        Raises :class:`GatewayError` for any failure, after the retries the module docstring
        describes. Nothing has reached the client yet, so a retry is invisible to it.
        """
        first_started = time.monotonic()
        deadline = first_started + self.retry.deadline
        refusals = 0  # Cortex's 429/503/throttled answers so far
        attempt = 0
        repaired = False  # a 400 Cortex explained was fixed and re-sent (once, never more)
        if self.limits is not None:
            content, headers = self.limits.prepare(content, headers, model)
        url = self.base_url + path
        while True:
            started = time.monotonic()
            retry_after: float | None = None
            try:
                response = await self._send(
                    "POST", url, headers, content, self._connect_timeout(deadline)
                )
            except _NOTHING_SENT as exc:
                failure = describe_connect_failure(exc, connect_timeout=self.connect_timeout)
                error = self._unreachable_error(failure.what, failure.check)
                state, retryable = UNREACHABLE, failure.heals
            except httpx.ReadTimeout:
                raise self._failed(CORTEX_ERROR, self._stall_error()) from None
            except (httpx.TransportError, httpx.DecodingError) as exc:
                raise self._failed(CORTEX_ERROR, self._broken_error(exc)) from None
            except ConfigurationError as exc:
                # The credential cannot be used at all (e.g. its login needs a package that is not
                # installed): a 403 makes Claude Code stop at once and show the fix, where a 401
                # would be retried for minutes.
                state = CONNECTOR_MISSING if isinstance(exc, ConnectorMissing) else AUTH_FAILED
                error = GatewayError(403, f"cortex-claude cannot authenticate to Snowflake: {exc}")
                raise self._failed(state, error) from None
            except GatewayError as error:  # a connector login the auth flow ran, refused
                raise self._failed(state_for_status(error.status), error) from None
            else:
                if response.status < 400:
                    await self._raise_if_session_expired(response, model)
                    self.status.succeeded()
                    return CortexResponse(response, retries=attempt, started=started)
                body = await response.read_bounded(_MAX_ERROR_BODY)
                error = error_from_cortex(
                    response.status,
                    body,
                    response.headers,
                    model=model,
                    identity=self.identity,
                )
                if response.status == 401:
                    self._add_credential_advice(error)
                retryable = response.status in _RETRYABLE_STATUS or is_throttled_400(
                    response.status, body
                )
                state = state_for_status(error.status)
                log.debug(
                    "Cortex %s answered %s (request id %s), attempt %d",
                    path,
                    response.status,
                    error.request_id,
                    attempt + 1,
                )
                if not retryable:
                    if state != OK:
                        raise self._failed(state, error)
                    self.status.succeeded()  # a refusal of this request: Cortex itself is fine
                    repair = None
                    if self.limits is not None and not repaired:
                        cortex_said = str(parse_snowflake_error(body).get("message") or "")
                        repair = self.limits.repair(
                            response.status, cortex_said, content, headers, model
                        )
                    if repair is None:
                        raise error
                    # Refused, so not processed: sending the corrected request is safe.
                    content, headers, repaired = repair.content, repair.headers, True
                    attempt += 1
                    continue
                retry_after = retry_after_seconds(response.headers)
                refusals += 1
            wait = max(self.retry.delay(attempt), retry_after or 0.0)
            out_of_retries = (
                not retryable
                or (state != UNREACHABLE and refusals > self.retry.max_retries)
                or time.monotonic() + wait >= deadline
            )
            if out_of_retries:
                if state == UNREACHABLE:
                    tries = "once" if attempt == 0 else f"{attempt + 1} times"
                    error.message += f" (tried {tries} in {time.monotonic() - first_started:.1f} s)"
                if retry_after is not None:
                    error.retry_after = retry_after  # Cortex's own word, passed on
                elif error.status == 429:
                    error.retry_after = max(1.0, self.retry.delay(attempt + 1))
                raise self._failed(state, error)
            log.debug("Retrying %s in %.2f s (%s)", path, wait, state)
            await asyncio.sleep(wait)
            attempt += 1

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        connect_timeout: float,
    ) -> CortexAnswer:
        """One request with the credential's token; replayed once with a renewed token if
        Snowflake refused it (a refused request was not processed, so replaying is safe)."""
        credential = self._auth
        token = await credential.token()
        answer = await self._http.send(
            method,
            url,
            headers={**headers, **credential.authorization_headers(token)},
            body=body,
            connect_timeout=connect_timeout,
        )
        status, content_type = answer.status, answer.content_type
        seen = await answer.read() if credential.refusal_needs_body(status, content_type) else None
        if not credential.is_refusal(status, content_type, seen):
            return answer
        renewed = await credential.renewed_after_refusal(token)
        if renewed is None:
            return answer
        answer.close()
        return await self._http.send(
            method,
            url,
            headers={**headers, **credential.authorization_headers(renewed)},
            body=body,
            connect_timeout=connect_timeout,
        )

    async def get_json(self, path: str) -> Any:
        try:
            response = await self._send("GET", self.base_url + path, {}, None, self.connect_timeout)
            try:
                body = await response.read()
            finally:
                response.close()
        except _NOTHING_SENT as exc:
            failure = describe_connect_failure(exc, connect_timeout=self.connect_timeout)
            raise self._failed(
                UNREACHABLE, self._unreachable_error(failure.what, failure.check)
            ) from None
        except httpx.HTTPError as exc:
            raise self._failed(CORTEX_ERROR, self._broken_error(exc)) from None
        except ConfigurationError as exc:
            state = CONNECTOR_MISSING if isinstance(exc, ConnectorMissing) else AUTH_FAILED
            raise self._failed(state, GatewayError(403, str(exc))) from None
        if response.status >= 400:
            error = error_from_cortex(
                response.status, body, response.headers, model="", identity=self.identity
            )
            state = state_for_status(error.status)
            if state != OK:
                raise self._failed(state, error)
            raise error
        self.status.succeeded()
        return json.loads(body)

    async def probe(self) -> str:
        """Can a connection to the account host be opened (DNS, TCP, TLS)? The state, also kept
        in :attr:`status`. Sends no request, so no credential is used and no login starts (a
        browser SSO login must not pop up because the server started)."""
        host, port = self.host, self.port
        via = ""
        proxy = environment_proxy(self.base_url)
        use_tls = self.base_url.startswith("https://")
        if proxy is not None:
            parts = urlsplit(proxy)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            via, use_tls = f" (through the proxy {host}:{port})", parts.scheme == "https"
        context = self._http.tls if use_tls else None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host if context else None
                ),
                self.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            failure = describe_connect_failure(exc, connect_timeout=self.connect_timeout)
            reason = f"{self._unreachable_error(failure.what, failure.check).message}{via}"
            self.status.probed(UNREACHABLE, reason)
            return UNREACHABLE
        writer.close()
        with contextlib.suppress(OSError):  # a TLS close the peer did not answer
            await writer.wait_closed()
        self.status.probed(OK, f"a connection to {self.where}{via} opened")
        return OK

    def _connect_timeout(self, deadline: float) -> float:
        """This attempt's connect timeout: opening a connection must end by the deadline."""
        # Rounded up to half seconds: the connection keeps one timeout object per distinct value.
        remaining = math.ceil(max(_MIN_ATTEMPT_CONNECT, deadline - time.monotonic()) * 2) / 2
        return min(self.connect_timeout, remaining)

    def _failed(self, state: str, error: GatewayError) -> GatewayError:
        self.status.failed(state, error.message)
        return error

    async def _raise_if_session_expired(self, response: CortexAnswer, model: str) -> None:
        """Session tokens expire with HTTP 200 + code 390112 (cortex-api.md), for streamed
        requests too (as JSON instead of an event stream). The credential's auth flow already
        renewed and replayed once; if the answer is still 390112, the session cannot be renewed."""
        if response.status != 200 or not response.content_type.startswith("application/json"):
            return
        try:
            body = await response.read()
        except httpx.HTTPError as exc:  # a JSON answer cut mid-way (tests/test_faults.py)
            response.close()
            raise self._failed(CORTEX_ERROR, answer_broke_off(exc)) from None
        if _SESSION_EXPIRED_BYTES not in body:
            return  # the usual answer: not parsed here, Exchange.read_json parses it once
        payload = parse_snowflake_error(body)
        if str(payload.get("code")) != SESSION_EXPIRED_CODE or not is_error_body(payload):
            return
        response.close()
        error = error_from_cortex(401, body, response.headers, model=model, identity=self.identity)
        error.message = error.message.replace("Cortex answered 401", "Cortex answered 200")
        self._add_credential_advice(error)
        raise self._failed(AUTH_FAILED, error)

    def _add_credential_advice(self, error: GatewayError) -> None:
        # The credential flow already renewed and replayed once: this refusal will not heal by
        # itself. Without `x-should-retry: false` Claude Code retries a 401 for over two minutes
        # before it says "Not logged in" (shared/clients.md); with it, the pinned 2.1.330 sends one
        # request and shows our message (`python benchmarks/claude_code_reactions.py 401
        # authentication_error x-should-retry=false`: 1 request, 0.6 s).
        error.should_retry = False
        explain = getattr(self._auth, "explain_refusal", None)
        if explain is not None:
            error.message = f"{error.message} {explain()}"

    def _unreachable_error(self, what: str, check: str) -> GatewayError:
        # 502 with `x-should-retry: false`: the pinned Claude Code (2.1.330) and the Anthropic and
        # OpenAI SDKs then show the message at once; a 5xx without it, or a 529 overloaded_error
        # (which Claude Code retries whatever the header says), took 207 s (docs/reliability.md).
        return GatewayError(
            502,
            f"Could not reach Snowflake at {self.where}: {what}. Check {check}.",
            should_retry=False,
        )

    def _stall_error(self) -> GatewayError:
        return GatewayError(
            504,
            f"Cortex at {self.where} accepted the request but sent nothing for "
            f"{self.read_timeout:g} s (c.CortexClaude.read_timeout). It was not re-sent: Cortex "
            "may still be working on it. Without streaming, the whole answer arrives at once, so "
            "a long one needs streaming or a larger read_timeout.",
            should_retry=False,
        )

    def _broken_error(self, exc: Exception) -> GatewayError:
        reason = str(exc) or type(exc).__name__
        return GatewayError(
            502,
            f"The connection to Snowflake at {self.where} broke after the request was sent "
            f"({reason}). It was not re-sent, since Cortex may have received it; retry if you "
            "want it again.",
        )


class CortexResponse:
    """A 2xx answer from Cortex whose body is read by the caller."""

    def __init__(self, answer: CortexAnswer, *, retries: int, started: float) -> None:
        self.answer = answer
        self.retries = retries
        self.started = started

    @property
    def status_code(self) -> int:
        return self.answer.status

    @property
    def request_id(self) -> str | None:
        return self.answer.headers.get("x-snowflake-request-id")

    @property
    def is_event_stream(self) -> bool:
        return self.answer.content_type.startswith("text/event-stream")

    async def read(self) -> bytes:
        try:
            return await self.answer.read()
        finally:
            self.answer.close()

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (each piece as soon as it is there)."""
        return self.answer.chunks()

    async def aclose(self) -> None:
        self.answer.close()

    def error_for_body(self, body: bytes, *, model: str, identity: str) -> GatewayError | None:
        """Cortex can answer HTTP 200 with a Snowflake error object instead of a result."""
        try:
            payload = parse_snowflake_error(body)
        except ValueError:  # pragma: no cover - parse_snowflake_error never raises
            return None
        if not is_error_body(payload):
            return None
        error = error_from_cortex(502, body, self.answer.headers, model=model, identity=identity)
        error.message = error.message.replace(
            "Cortex answered 502", "Cortex answered 200 with an error"
        )
        return error
