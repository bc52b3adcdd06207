"""An ``httpx`` transport that sends with aiohttp: httpx's API for the Cortex client, aiohttp's cost.

Why: the upstream client was most of what the gateway adds per request. Measured on one machine,
alternating (docs/benchmarks.md, "The upstream client"): httpx's own transport (httpcore on anyio,
h11) spends about twice the CPU per small streamed request of httpx on an aiohttp transport, and
the bare relay on it adds about 1 ms more latency. Keeping httpx's API keeps everything built on it:
the credentials' ``httpx.Auth`` flows (renew and replay on a refusal), httpx's exceptions that
:class:`.cortex.CortexClient` maps and retries by, ``httpx.Response`` for the routes.

Why not PyPI ``httpx-aiohttp`` (the transport the anthropic SDK offers): it reports a server that
closed the connection after reading the request, and a TLS certificate it could not verify, as
``httpx.ConnectTimeout``, which reads as "nothing was sent, retry" and as "no answer in time"
(``benchmarks/client_behaviour.py``); it builds a timeout object per request and reads in 16 KiB
pieces. Here each aiohttp failure becomes the httpx exception that says what was sent:

======================================================  ==========================================
aiohttp                                                 httpx
======================================================  ==========================================
``ClientConnectorError`` (refused, DNS, TLS, proxy)     ``ConnectError`` (nothing sent)
connect / pool timeout (``ConnectionTimeoutError``)     ``ConnectTimeout`` (nothing sent)
read timeout (``SocketTimeoutError``)                   ``ReadTimeout``
``ServerDisconnectedError``, ``ClientPayloadError``     ``RemoteProtocolError`` (maybe processed)
other ``ClientError`` / ``OSError`` after connecting    ``ReadError`` (maybe processed)
======================================================  ==========================================

Behaviour kept from httpx's own transport: TLS verified against certifi's store, or
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (``httpx.create_ssl_context``); ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` from the environment (httpx itself ignores them once a
transport is given), read once per host rather than per request as aiohttp's ``trust_env`` does
(+500 µs of CPU per request, measured); bodies left encoded for httpx to decode; no redirects, no
cookies kept by aiohttp (httpx keeps them). aiohttp is imported when the first request is sent, so
Jupyter's start-up does not pay for it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.request import getproxies, proxy_bypass

import httpx

if TYPE_CHECKING:
    import aiohttp


def environment_proxy(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url`` (``NO_PROXY`` honoured), or None."""
    host = url.host
    if not host or proxy_bypass(host):
        return None
    proxies = getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


class _AiohttpBody(httpx.AsyncByteStream):
    """The body as aiohttp reads it: each piece as soon as it arrives, undecoded."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            try:
                piece = await content.readany()
            except Exception as error:
                # aiohttp raises a broken connection's error before handing over what had arrived
                # with it (StreamReader.readany checks for the error first); httpx hands the data
                # over first, and the routes relay it before their error event (a Cortex stream
                # cut right after message_start must still start the client's message).
                arrived = b"".join(getattr(content, "_buffer", ()))
                if arrived:
                    yield arrived
                mapped = _httpx_error(error)
                if mapped is None:
                    raise
                raise mapped from error
            if not piece:
                return
            yield piece

    async def aclose(self) -> None:
        # A body not read to its end closes the connection instead of returning it to the pool:
        # closing a stream early (a client that left) ends the upstream request at once.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp connection pool for one ``httpx.AsyncClient``; closed with the client."""

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        verify: ssl.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        self._limits = limits
        self._ssl = verify if verify is not None else httpx.create_ssl_context(trust_env=trust_env)
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str, int | None], str | None] = {}
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry or 0,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,  # proxies are resolved here, once per host (see the module doc)
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def _timeout(self, timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeouts.get("connect"), timeouts.get("read"), timeouts.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            import aiohttp

            connect, read, pool = key
            timeout = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = timeout
        return timeout

    def _proxy(self, url: httpx.URL) -> str | None:
        if not self._trust_env:
            return None
        key = (url.scheme, url.host, url.port)
        if key not in self._proxies:
            self._proxies[key] = environment_proxy(url)
        return self._proxies[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open_session()
        try:
            body: bytes = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        with _MappedErrors():
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
                proxy=self._proxy(request.url),
            )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def busy_connections(self) -> int:
        """Connections now carrying a request (tests check none is left after a client leaves)."""
        if self._session is None:
            return 0
        return len(getattr(self._session.connector, "_acquired", ()))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _MappedErrors:
    """Turns aiohttp's exceptions into the httpx ones that say whether the request was sent."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> bool:
        if error is None or not isinstance(error, Exception):
            return False
        mapped = _httpx_error(error)
        if mapped is None:
            return False
        raise mapped from error


def _httpx_error(error: Exception) -> httpx.TransportError | None:
    import aiohttp

    message = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(error, aiohttp.ServerTimeoutError):  # SocketTimeoutError and older names
        return httpx.ReadTimeout(message)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message)
    if isinstance(error, aiohttp.ClientError | OSError):
        return httpx.ReadError(message)
    return None
