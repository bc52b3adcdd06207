"""The upstream HTTP clients the gateway could use, behind one small interface for the benchmarks.

``CLIENTS`` maps a name to a factory of :class:`Upstream`: ``post`` sends one request and returns
an :class:`Answer` whose body is read as it arrives, then closed. Used by
``upstream_client.py`` (CPU per request), ``floor_relay.py`` (a bare relay per client, "the floor")
and ``client_behaviour.py`` (streaming, pooling, TLS, proxies, timeouts, cancellation).

The clients, each built the way the gateway would build it for Cortex (one pooled client per
server, connect and read timeouts, environment proxies honoured):

- ``httpx``: ``httpx.AsyncClient`` (httpcore on anyio, h11), what the gateway used before issue 14;
- ``httpx2``: the fork the anthropic and openai SDKs 2.x depend on (same API, ``httpx2``);
- ``httpx + aiohttp transport``: ``httpx_aiohttp.HttpxAiohttpClient`` (PyPI ``httpx-aiohttp``,
  the transport the anthropic SDK offers for speed): httpx's API, aiohttp underneath;
- ``aiohttp``: ``aiohttp.ClientSession`` itself (C HTTP parser, no httpx layer);
- ``our aiohttp connection``: ``jupyter_cortex_claude.snowflake.cortex_http.CortexHttp``, aiohttp
  as the gateway uses it (proxies read once, errors mapped), when this checkout has it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0


class Answer(Protocol):
    status: int
    content_type: str

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class Upstream(Protocol):
    name: str

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer: ...

    async def aclose(self) -> None: ...


class _HttpxAnswer:
    def __init__(self, response: Any) -> None:
        self._response = response
        self.status = response.status_code
        self.content_type = response.headers.get("content-type", "")

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.aiter_raw()  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self._response.aclose()


class HttpxLike:
    """httpx, httpx2 and httpx on the aiohttp transport share this API."""

    def __init__(self, name: str, module: Any, client_class: Any | None = None, **kwargs: Any):
        self.name = name
        client_class = client_class or module.AsyncClient
        self._client = client_class(
            timeout=module.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, pool=CONNECT_TIMEOUT),
            limits=module.Limits(max_connections=1000, max_keepalive_connections=100),
            follow_redirects=False,
            **kwargs,
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        request = self._client.build_request("POST", url, content=body, headers=headers)
        return _HttpxAnswer(await self._client.send(request, stream=True))

    async def aclose(self) -> None:
        await self._client.aclose()


class _AiohttpAnswer:
    def __init__(self, response: Any) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.headers.get("content-type", "")

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def close(self) -> None:
        self._response.release()


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTP(S)_PROXY, NO_PROXY), read once.

    aiohttp's own ``trust_env=True`` looks the proxy and ~/.netrc up again on every request, each
    in a worker thread: measured here, +500 µs of CPU per request (docs/benchmarks.md). The gateway
    talks to one host, so it resolves the proxy once when the client is made."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if parts.hostname is None or proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


class Aiohttp:
    def __init__(self, *, trust_env: bool = False, **connector: Any) -> None:
        import aiohttp

        self.name = "aiohttp"
        self._proxies: dict[str, str | None] = {}
        # aiohttp's default TLS context is made when aiohttp is imported; one made here honours
        # SSL_CERT_FILE / SSL_CERT_DIR set before the client (OpenSSL's default verify paths).
        connector.setdefault("ssl", ssl.create_default_context())
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, **connector),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
            ),
            trust_env=trust_env,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        if key not in self._proxies:
            self._proxies[key] = env_proxy(url)
        response = await self._session.post(
            url, data=body, headers=headers, allow_redirects=False, proxy=self._proxies[key]
        )
        return _AiohttpAnswer(response)

    async def aclose(self) -> None:
        await self._session.close()


def _httpx() -> Upstream:
    import httpx

    return HttpxLike("httpx", httpx)


def _httpx2() -> Upstream:
    import httpx2

    return HttpxLike("httpx2", httpx2)


def _httpx_aiohttp() -> Upstream:
    import httpx
    import httpx_aiohttp

    return HttpxLike("httpx + aiohttp transport", httpx, httpx_aiohttp.HttpxAiohttpClient)


class _CortexHttpAnswer:
    def __init__(self, answer: Any) -> None:
        self._answer = answer
        self.status = answer.status
        self.content_type = answer.content_type

    def chunks(self) -> AsyncIterator[bytes]:
        return self._answer.chunks()  # type: ignore[no-any-return]

    async def close(self) -> None:
        self._answer.close()


class OurConnection:
    """``jupyter_cortex_claude.snowflake.cortex_http.CortexHttp``: aiohttp as the gateway uses it."""

    def __init__(self) -> None:
        from jupyter_cortex_claude.snowflake.cortex_http import CortexHttp

        self.name = "our aiohttp connection"
        self._http = CortexHttp(max_connections=1000, read_timeout=READ_TIMEOUT)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        answer = await self._http.send(
            "POST", url, headers=headers, body=body, connect_timeout=CONNECT_TIMEOUT
        )
        return _CortexHttpAnswer(answer)

    async def aclose(self) -> None:
        await self._http.aclose()


CLIENTS: dict[str, Callable[[], Upstream]] = {"httpx": _httpx}
for _name, _module, _factory in (
    ("httpx2", "httpx2", _httpx2),
    ("httpx + aiohttp transport", "httpx_aiohttp", _httpx_aiohttp),
    ("aiohttp", "aiohttp", Aiohttp),
    ("our aiohttp connection", "jupyter_cortex_claude.snowflake.cortex_http", OurConnection),
):
    if importlib.util.find_spec(_module) is not None:
        CLIENTS[_name] = _factory

SLUGS = {"httpx": "httpx", "httpx2": "httpx2", "httpx + aiohttp transport": "httpx-aiohttp"}
SLUGS["aiohttp"] = "aiohttp"
SLUGS["our aiohttp connection"] = "cortex-http"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("httpx", "httpcore", "httpx2", "httpcore2", "httpx-aiohttp", "aiohttp"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{package} {version(package)}")
    return ", ".join(found)
