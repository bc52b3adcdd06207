"""The Cortex client: one pooled ``httpx.AsyncClient``, timeouts, bounded retries, error mapping.

Credentials come in as an ``httpx.Auth`` (see :mod:`.credentials`), so this module never knows which
kind of Snowflake identity is in use; the auth flow renews and replays on a 401 by itself. The
requests go out through aiohttp (:mod:`.aiohttp_transport`): httpx's API, half its CPU per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import GatewayError, answer_broke_off
from .aiohttp_transport import AiohttpTransport
from .errors import (
    SESSION_EXPIRED_CODE,
    ConfigurationError,
    error_from_cortex,
    is_error_body,
    is_throttled_400,
    parse_snowflake_error,
)

log = logging.getLogger("jupyter_cortex_claude.cortex")

MESSAGES_PATH = "/api/v2/cortex/v1/messages"
CHAT_COMPLETIONS_PATH = "/api/v2/cortex/v1/chat/completions"
# A preview since Oct 2026, OpenAI models only, stateless (Snowflake's release note of Oct 23, 2026).
RESPONSES_PATH = "/api/v2/cortex/v1/responses"
MODELS_PATH = "/api/v2/cortex/models"

_RETRYABLE_STATUS = frozenset({429, 503})
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """Retries happen only before anything was sent to the client."""

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int) -> float:
        # Full jitter between half and all of the exponential step spreads a team's retries out.
        step = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(step / 2, step)


class CortexClient:
    """Sends requests to Cortex for the whole server (one connection pool, closed at shutdown)."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        *,
        identity: str = "the configured Snowflake user",
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self.retry = retry or RetryPolicy()
        self._auth = auth
        self._transport = AiohttpTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=100)
        )
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
            transport=self._transport,
            headers={"user-agent": "jupyter-cortex-claude"},
            follow_redirects=False,
        )

    def busy_connections(self) -> int:
        """Connections to Cortex now carrying a request."""
        return self._transport.busy_connections()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def open(
        self,
        path: str,
        content: bytes,
        *,
        headers: Mapping[str, str],
        model: str,
    ) -> CortexResponse:
        """POST ``content`` and return the 2xx response with its body not yet read.

        Raises :class:`GatewayError` for any failure, after bounded retries on 429, 503, Cortex's
        throttled 400 and connection errors. Nothing has reached the client yet, so retrying is safe.
        """
        attempts = self.retry.max_retries + 1
        retries = 0
        last_error: GatewayError | None = None
        for attempt in range(attempts):
            started = time.monotonic()
            request = self._client.build_request("POST", path, content=content, headers=headers)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                last_error = self._timeout_error(exc)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                last_error = self._transport_error(exc)
            except ConfigurationError as exc:
                # The credential cannot be used at all (e.g. its login needs a package that is not
                # installed): a 403 makes Claude Code stop at once and show the fix, where a 401
                # would be retried for minutes.
                raise GatewayError(
                    403, f"cortex-claude cannot authenticate to Snowflake: {exc}"
                ) from None
            else:
                if response.status_code < 400:
                    await self._raise_if_session_expired(response, model)
                    return CortexResponse(response, retries=retries, started=started)
                body = await _read_bounded(response)
                error = error_from_cortex(
                    response.status_code,
                    body,
                    response.headers,
                    model=model,
                    identity=self.identity,
                )
                if response.status_code == 401:
                    self._add_credential_advice(error)
                retryable = response.status_code in _RETRYABLE_STATUS or is_throttled_400(
                    response.status_code, body
                )
                log.debug(
                    "Cortex %s answered %s (request id %s), attempt %d/%d",
                    path,
                    response.status_code,
                    error.request_id,
                    attempt + 1,
                    attempts,
                )
                if not retryable:
                    raise error
                last_error = error
            if attempt + 1 < attempts:
                retries += 1
                await asyncio.sleep(self.retry.delay(attempt))
        assert last_error is not None
        if last_error.status == 429:
            last_error.retry_after = max(1.0, self.retry.delay(attempts))
        raise last_error

    async def get_json(self, path: str) -> Any:
        response = await self._client.get(path)
        body = await response.aread()
        if response.status_code >= 400:
            raise error_from_cortex(
                response.status_code, body, response.headers, model="", identity=self.identity
            )
        return response.json()

    async def _raise_if_session_expired(self, response: httpx.Response, model: str) -> None:
        """Session tokens expire with HTTP 200 + code 390112 (cortex-api.md), for streamed
        requests too (as JSON instead of an event stream). The credential's auth flow already
        renewed and replayed once; if the answer is still 390112, the session cannot be renewed."""
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return
        try:
            body = await response.aread()
        except httpx.HTTPError as exc:  # a JSON answer cut mid-way (tests/test_faults.py)
            await response.aclose()
            raise answer_broke_off(exc) from None
        payload = parse_snowflake_error(body)
        if str(payload.get("code")) != SESSION_EXPIRED_CODE or not is_error_body(payload):
            return
        await response.aclose()
        error = error_from_cortex(401, body, response.headers, model=model, identity=self.identity)
        error.message = error.message.replace("Cortex answered 401", "Cortex answered 200")
        self._add_credential_advice(error)
        raise error

    def _add_credential_advice(self, error: GatewayError) -> None:
        explain = getattr(self._auth, "explain_refusal", None)
        if explain is not None:
            error.message = f"{error.message} {explain()}"

    def _timeout_error(self, exc: httpx.TimeoutException) -> GatewayError:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return GatewayError(
                503,
                f"Could not connect to Snowflake at {self.base_url} in time ({type(exc).__name__}).",
            )
        return GatewayError(
            503, f"Cortex at {self.base_url} did not answer in time ({type(exc).__name__})."
        )

    def _transport_error(self, exc: Exception) -> GatewayError:
        reason = str(exc) or type(exc).__name__
        return GatewayError(
            503,
            f"Could not reach Snowflake at {self.base_url}: {reason}. Check the account host, "
            "the network (proxy, VPN, privatelink) and that the account identifier is right.",
        )


class CortexResponse:
    """A 2xx answer from Cortex whose body is read by the caller."""

    def __init__(self, response: httpx.Response, *, retries: int, started: float) -> None:
        self.http = response
        self.retries = retries
        self.started = started

    @property
    def status_code(self) -> int:
        return self.http.status_code

    @property
    def request_id(self) -> str | None:
        return self.http.headers.get("x-snowflake-request-id")

    @property
    def is_event_stream(self) -> bool:
        return self.http.headers.get("content-type", "").startswith("text/event-stream")

    async def read(self) -> bytes:
        try:
            return await self.http.aread()
        finally:
            await self.http.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    def error_for_body(self, body: bytes, *, model: str, identity: str) -> GatewayError | None:
        """Cortex can answer HTTP 200 with a Snowflake error object instead of a result."""
        try:
            payload = parse_snowflake_error(body)
        except ValueError:  # pragma: no cover - parse_snowflake_error never raises
            return None
        if not is_error_body(payload):
            return None
        error = error_from_cortex(502, body, self.http.headers, model=model, identity=identity)
        error.message = error.message.replace(
            "Cortex answered 502", "Cortex answered 200 with an error"
        )
        return error


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()
    return b"".join(chunks)
