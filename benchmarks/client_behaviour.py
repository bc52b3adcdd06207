"""What each upstream client does, beyond speed: the checks behind the choice in docs/benchmarks.md.

    python benchmarks/client_behaviour.py

For every client in :mod:`benchmarks.upstream_clients`, against small servers of its own on
127.0.0.1 (no emulator needed, nothing timed beyond generous bounds):

- **streams**: a chunk sent 0.6 s before the rest reaches the caller before the rest is sent;
- **pools**: five requests in a row use one connection (keep-alive);
- **TLS**: an HTTPS server with a certificate from an unknown CA is refused; the same server is
  accepted once its CA is in ``SSL_CERT_FILE`` (how corporate CAs are added);
- **proxy**: with ``HTTPS_PROXY`` set before the client is made, an https:// request goes through
  the proxy's CONNECT tunnel;
- **read timeout**: an answer that stops mid-body fails with the client's timeout error;
- **cancel**: cancelling the task that reads a stream closes the upstream connection at once
  (the server sees it go within 1 s);
- **disconnect is a read error**: a server that closes mid-body, or right after reading the
  request, gives an error a caller can tell from "could not connect" (the gateway retries connect
  failures; retrying these would re-send a request Cortex may have processed).

Prints one Markdown table row per client: ``yes`` / ``NO`` per check (and what was seen).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.upstream_clients import CLIENTS, Upstream, versions

HEAD_CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Origin:
    """A raw HTTP/1.1 server: /small, /stream, /stall (stops mid-body), /cut (closes mid-body)."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self, context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=context)
        return int(self.server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                path = head.split(b" ")[1]
                if path.endswith(b"/drop"):
                    writer.close()
                    return
                if path.endswith(b"/small"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    await writer.drain()
                    continue
                writer.write(HEAD_CHUNKED + chunk(b"data: first\n\n"))
                await writer.drain()
                if path.endswith(b"/stream"):
                    await asyncio.sleep(0.6)
                    writer.write(chunk(b"data: last\n\n") + b"0\r\n\r\n")
                    await writer.drain()
                    continue
                if path.endswith(b"/cut"):
                    writer.close()
                    return
                # /stall: say nothing more; notice when the client goes.
                await reader.read(1)
                self.closed.set()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()
        finally:
            writer.close()


class ConnectProxy:
    """An HTTP proxy that only tunnels (CONNECT), counting the tunnels it opened."""

    def __init__(self) -> None:
        self.tunnels = 0

    async def start(self) -> int:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return int(server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target = head.split(b" ")[:2]
        if method != b"CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        host, port = target.decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.tunnels += 1
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A CA-less self-signed certificate for 127.0.0.1 (cryptography is a dependency already)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def read_all(client: Upstream, url: str) -> bytes:
    answer = await client.post(url, b"{}", {"content-type": "application/json"})
    try:
        return b"".join([part async for part in answer.chunks()])
    finally:
        await answer.close()


async def check_streams(make: Any, base: str) -> str:
    client = make()
    try:
        started = time.monotonic()
        answer = await client.post(base + "/stream", b"{}", {})
        seen_first = None
        async for _part in answer.chunks():
            if seen_first is None:
                seen_first = time.monotonic() - started
        await answer.close()
        total = time.monotonic() - started
    finally:
        await client.aclose()
    assert seen_first is not None
    ok = seen_first < 0.4 and total >= 0.6
    return f"{'yes' if ok else 'NO'} (first chunk {seen_first * 1000:.0f} ms, end {total * 1000:.0f} ms)"


async def check_pools(make: Any, base: str, origin: Origin) -> str:
    client = make()
    before = origin.connections
    try:
        for _ in range(5):
            await read_all(client, base + "/small")
    finally:
        await client.aclose()
    used = origin.connections - before
    return f"{'yes' if used == 1 else 'NO'} ({used} connection{'s' * (used != 1)} for 5)"


async def check_tls(make: Any, tls_base: str, cert: Path) -> str:
    client = make()
    try:
        await read_all(client, tls_base + "/small")
        refused = "NO: an unknown CA was accepted"
    except Exception as exc:  # any verification failure is what we want
        refused = f"refused ({type(exc).__name__})"
    finally:
        await client.aclose()
    os.environ["SSL_CERT_FILE"] = str(cert)
    try:
        client = make()
        try:
            await read_all(client, tls_base + "/small")
            trusted = "yes"
        except Exception as exc:
            trusted = f"NO ({type(exc).__name__})"
        finally:
            await client.aclose()
    finally:
        del os.environ["SSL_CERT_FILE"]
    return f"{refused}; SSL_CERT_FILE honoured: {trusted}"


async def check_proxy(make: Any, tls_base: str, cert: Path, proxy: ConnectProxy, port: int) -> str:
    os.environ["SSL_CERT_FILE"] = str(cert)
    os.environ["HTTPS_PROXY"] = f"http://127.0.0.1:{port}"
    before = proxy.tunnels
    try:
        client = make()
        try:
            await read_all(client, tls_base + "/small")
            result = "yes" if proxy.tunnels > before else "NO (went direct)"
        except Exception as exc:
            result = f"NO ({type(exc).__name__}: {exc})"[:80]
        finally:
            await client.aclose()
    finally:
        del os.environ["SSL_CERT_FILE"], os.environ["HTTPS_PROXY"]
    return result


async def check_read_timeout(make: Any, base: str) -> str:
    from benchmarks import upstream_clients

    saved = upstream_clients.READ_TIMEOUT
    upstream_clients.READ_TIMEOUT = 0.5
    client = make()
    started = time.monotonic()
    try:
        await asyncio.wait_for(read_all(client, base + "/stall"), 10)
        result = "NO (no error)"
    except Exception as exc:  # aiohttp's timeouts are TimeoutErrors too
        waited = time.monotonic() - started
        ok = waited < 5
        result = f"{'yes' if ok else 'NO'} ({type(exc).__name__} after {waited:.1f} s)"
    finally:
        upstream_clients.READ_TIMEOUT = saved
        await client.aclose()
    return result


async def check_cancel(make: Any, base: str, origin: Origin) -> str:
    client = make()
    origin.closed.clear()
    first = asyncio.Event()

    async def reader() -> None:
        answer = await client.post(base + "/stall", b"{}", {})
        try:
            async for _ in answer.chunks():
                first.set()
        finally:
            await answer.close()

    task = asyncio.ensure_future(reader())
    try:
        await asyncio.wait_for(first.wait(), 5)
        cancelled_at = time.monotonic()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await asyncio.wait_for(origin.closed.wait(), 1.0)
            result = f"yes (closed after {(time.monotonic() - cancelled_at) * 1000:.0f} ms)"
        except asyncio.TimeoutError:
            result = "NO (upstream connection still open 1 s after cancelling)"
    finally:
        await client.aclose()
    return result


async def check_cut(make: Any, base: str, path: str = "/cut") -> str:
    client = make()
    try:
        await read_all(client, base + path)
        result = "NO (no error)"
    except Exception as exc:
        name = f"{type(exc).__module__.split('.')[0]}.{type(exc).__name__}"
        connect_like = "Connect" in type(exc).__name__
        result = f"{'NO' if connect_like else 'yes'} ({name})"
    finally:
        await client.aclose()
    return result


async def main() -> None:
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE"):
        os.environ.pop(variable, None)
        os.environ.pop(variable.lower(), None)
    with tempfile.TemporaryDirectory() as directory:
        cert, key = self_signed(Path(directory))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        origin, tls_origin, proxy = Origin(), Origin(), ConnectProxy()
        base = f"http://127.0.0.1:{await origin.start()}"
        tls_base = f"https://127.0.0.1:{await tls_origin.start(context)}"
        proxy_port = await proxy.start()
        print(versions())
        print()
        print(
            "| client | streams | pools | TLS: unknown CA | proxy from HTTPS_PROXY "
            "| read timeout | cancel closes upstream | cut mid-body is a read error "
            "| dropped after the request is not a connect error |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, make in CLIENTS.items():
            row = [
                await check_streams(make, base),
                await check_pools(make, base, origin),
                await check_tls(make, tls_base, cert),
                await check_proxy(make, tls_base, cert, proxy, proxy_port),
                await check_read_timeout(make, base),
                await check_cancel(make, base, origin),
                await check_cut(make, base),
                await check_cut(make, base, "/drop"),
            ]
            print(f"| {name} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
