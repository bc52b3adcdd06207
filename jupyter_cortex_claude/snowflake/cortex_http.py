"""The HTTP connection to Cortex: one aiohttp session, and errors that say whether a request was sent.

Why aiohttp alone: the upstream client was most of what the gateway added per request. Measured on
one machine, alternating (docs/benchmarks.md, "The upstream client"): httpx's own transport spends
about three times aiohttp's CPU per small streamed request; httpx's API on an aiohttp transport still
added ~0.6 ms per request over aiohttp alone (building ``httpx.Request``/``URL``/``Headers`` objects,
its auth and redirect layers, cookie extraction). So the Cortex client calls aiohttp directly, and
the credentials' renew-and-replay lives in :class:`.cortex.CortexClient` (one small interface,
:class:`.credentials.SnowflakeCredential`).

httpx's exception classes are kept as the vocabulary the client retries by, because their names
say what was sent (httpx stays a dependency for the kernel's own calls). Each aiohttp failure
becomes the one that is true. PyPI ``httpx-aiohttp`` maps a server that closed the connection
after reading the request, and an unverifiable TLS certificate, to ``ConnectTimeout`` ("nothing
was sent, retry"), which would re-send a prompt Cortex may be working on
(``benchmarks/client_behaviour.py``):

======================================================  ==========================================
aiohttp                                                 raised as
======================================================  ==========================================
``ClientConnectorError`` (refused, DNS, TLS, proxy)     ``httpx.ConnectError`` (nothing sent)
connect / pool timeout (``ConnectionTimeoutError``)     ``httpx.ConnectTimeout`` (nothing sent)
read timeout (``SocketTimeoutError``)                   ``httpx.ReadTimeout``
``ServerDisconnectedError``, ``ClientPayloadError``     ``httpx.RemoteProtocolError`` (maybe processed)
other ``ClientError`` / ``OSError`` after connecting    ``httpx.ReadError`` (maybe processed)
======================================================  ==========================================

Kept from httpx's behaviour: TLS verified against certifi's store, or ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` when set (``httpx.create_ssl_context``); ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``ALL_PROXY`` / ``NO_PROXY`` from the environment, read once per host rather than per request as
aiohttp's ``trust_env`` does (+500 µs of CPU per request, measured); no redirects; no cookies.
aiohttp is imported when the first request is sent, so Jupyter's start-up does not pay for it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = "jupyter-cortex-claude"


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``NO_PROXY`` honoured), or None."""
    parts = urlsplit(url)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


class CortexHttp:
    """One pooled aiohttp session for every request of one server; closed at shutdown."""

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        keepalive_expiry: float = 5.0,
        read_timeout: float = 300.0,
        verify: ssl.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._read_timeout = read_timeout
        self._ssl = verify if verify is not None else httpx.create_ssl_context(trust_env=trust_env)
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=self._keepalive_expiry, ssl=self._ssl
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"user-agent": USER_AGENT},
            trust_env=False,  # proxies are resolved here, once per host (see the module doc)
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def _timeout(self, connect: float) -> aiohttp.ClientTimeout:
        # One object per distinct connect timeout: the client rounds them to half seconds.
        timeout = self._timeouts.get(connect)
        if timeout is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=connect, sock_read=self._read_timeout
            )
            self._timeouts[connect] = timeout
        return timeout

    def _proxy(self, url: str) -> str | None:
        if not self._trust_env:
            return None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._proxies:
            self._proxies[key] = environment_proxy(url)
        return self._proxies[key]

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        connect_timeout: float,
    ) -> CortexAnswer:
        """Send one request; the answer with its body not yet read. Raises the httpx error that
        says whether the request was sent (module doc)."""
        if self._session is None:
            self._session = self._open_session()
        with _SAYS_WHAT_WAS_SENT:
            response = await self._session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(connect_timeout),
                proxy=self._proxy(url),
            )
        return CortexAnswer(response)

    @property
    def tls(self) -> ssl.SSLContext:
        """The TLS context requests are verified with (also for the start-up probe)."""
        return self._ssl

    def busy_connections(self) -> int:
        """Connections now carrying a request (tests check none is left after a client leaves)."""
        if self._session is None:
            return 0
        return len(getattr(self._session.connector, "_acquired", ()))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class CortexAnswer:
    """An answer whose body is read once: whole (:meth:`read`) or as it arrives (:meth:`chunks`)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._body: bytes | None = None
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers  # case-insensitive

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    async def read(self) -> bytes:
        """The whole body (kept: a second call returns it again)."""
        if self._body is None:
            with _SAYS_WHAT_WAS_SENT:
                self._body = await self._response.read()
        return self._body

    async def read_bounded(self, limit: int) -> bytes:
        """At most about ``limit`` bytes of the body, then closed; a body that breaks off gives
        what arrived (for error answers, whose text is only reported)."""
        if self._body is not None:
            return self._body
        pieces: list[bytes] = []
        size = 0
        try:
            async for piece in self.chunks():
                pieces.append(piece)
                size += len(piece)
                if size > limit:
                    break
        except httpx.TransportError:
            pass
        finally:
            self.close()
        return b"".join(pieces)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Each piece of the body as soon as it arrives."""
        content = self._response.content
        while True:
            try:
                piece = await content.readany()
            except Exception as error:
                # aiohttp raises a broken connection's error before handing over what had arrived
                # with it (StreamReader.readany checks for the error first); the routes must relay
                # that data before their error event (a Cortex stream cut right after
                # message_start must still start the client's message).
                arrived = b"".join(getattr(content, "_buffer", ()))
                if arrived:
                    yield arrived
                mapped = _mapped(error)
                if mapped is None:
                    raise
                raise mapped from error
            if not piece:
                return
            yield piece

    def close(self) -> None:
        # A body not read to its end closes the connection instead of returning it to the pool:
        # closing a stream early (a client that left) ends the upstream request at once.
        self._response.release()


class _SaysWhatWasSent:
    """Raises aiohttp's errors as the httpx ones that say whether the request was sent."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> None:
        if isinstance(error, Exception):
            mapped = _mapped(error)
            if mapped is not None:
                raise mapped from error


_SAYS_WHAT_WAS_SENT = _SaysWhatWasSent()


def _mapped(error: Exception) -> httpx.TransportError | None:
    """The httpx error that says whether the request was sent; None for errors not aiohttp's."""
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
