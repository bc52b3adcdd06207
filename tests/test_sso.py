"""Browser SSO (``authenticator = externalbrowser``) with the real connector, the test as browser.

The connector (5.x, its Rust core) asks the emulator's ``/session/authenticator-request`` for an
SSO URL and a proof key, listens on a local port, and opens the URL with the system browser: the
``webbrowser`` crate, which honours ``$BROWSER``. Here ``$BROWSER`` is a small script that
behaves as a browser: it loads the identity provider's page and follows its redirect to the
connector's port, which carries the token the connector then logs in with.

The core refuses an SSO URL that is not https, as a real identity provider's always is, so the
identity provider here is a TLS server of its own (a self-signed certificate the "browser"
trusts) whose page sends the browser back with the emulator's token for that proof key.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import ssl
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anthropic
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jupyter_cortex_claude.snowflake.session_credentials import ConnectorSessionCredential
from jupyter_cortex_claude.testing import CortexEmulator, Reply
from jupyter_cortex_claude.testing.login import SSO_PATH
from jupyter_cortex_claude.testing.refusals import CortexRefusal

from .conftest import RunningGateway, emulator_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

# The "browser": loads the page it is given, follows redirects as a browser does (trusting the
# identity provider's certificate), and notes each page it landed on for the test to read.
BROWSER_SCRIPT = """\
#!{python}
import json, ssl, sys
import httpx

trust = ssl.create_default_context(cafile={ca_file!r})
visits = []
with httpx.Client(verify=trust, follow_redirects=True, timeout=30) as browser:
    page = browser.get(sys.argv[-1])
    for hop in [*page.history, page]:
        visits.append({{"url": str(hop.url), "status": hop.status_code}})
    visits[-1]["text"] = page.text
with open({log_file!r}, "a") as log:
    log.write(json.dumps(visits) + "\\n")
"""


@dataclass
class IdentityProvider:
    url: str
    ca_file: Path


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sso.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "sso-cert.pem", directory / "sso-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def identity_provider(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> Iterator[IdentityProvider]:
    """An https SSO page: the user "signs in" and is sent back to the connector's local port
    with the emulator's token for the proof key."""
    emulator = cortex_emulator

    class SsoPage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            address = urlsplit(self.path)
            query = parse_qs(address.query)
            try:
                if address.path != SSO_PATH:
                    raise CortexRefusal(404, "no such page")
                location = emulator.login.sso_redirect(query["port"][0], query["proof"][0])
            except (CortexRefusal, KeyError, ValueError):
                self.send_error(400, "not a sign-in this identity provider started")
                return
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the page's URL carries the proof key; keep it out of the test output

    cert_file, key_file = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SsoPage)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="sso-idp", daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    emulator.login.identity_provider_url = url
    try:
        yield IdentityProvider(url=url, ca_file=cert_file)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def browser_log(
    identity_provider: IdentityProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Makes the test's browser script the system browser; returns the file of its visits."""
    log_file = tmp_path / "browser-visits.jsonl"
    script = tmp_path / "browser"
    script.write_text(
        BROWSER_SCRIPT.format(
            python=sys.executable, ca_file=str(identity_provider.ca_file), log_file=str(log_file)
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    # The connector's core opens the browser with the webbrowser crate, which tries $BROWSER
    # first (a ':'-separated list, hence a plain path). It reads the process environment.
    assert ":" not in str(script)
    monkeypatch.setenv("BROWSER", str(script))
    assert os.environ["BROWSER"] == str(script)
    return log_file


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator, browser_log: Path) -> dict[str, Any]:
    return emulator_config(cortex_emulator, token="", authenticator="externalbrowser")


@pytest.fixture
def gateway(running_gateway: RunningGateway) -> Iterator[RunningGateway]:
    """The running gateway, whose session logs out while the emulator still listens."""
    yield running_gateway
    credential = running_gateway.service.credential
    if isinstance(credential, ConnectorSessionCredential):
        credential.close()


def browser_visits(log_file: Path) -> list[list[dict[str, Any]]]:
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text().splitlines() if line]


async def test_a_browser_sso_login_streams_through_jupyter_and_health_shows_no_secret(
    gateway: RunningGateway, identity_provider: IdentityProvider, browser_log: Path
) -> None:
    emulator = gateway.emulator
    emulator.script(Reply.text("Hello after signing in with SSO."))
    client = gateway.anthropic()

    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Say hello"}],
    ) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])

    assert text == "Hello after signing in with SSO."
    # The browser went to the identity provider, then back to the connector's port with a token.
    (visit,) = browser_visits(browser_log)
    sso_page, callback = visit
    assert sso_page["url"].startswith(f"{identity_provider.url}{SSO_PATH}?")
    assert sso_page["status"] == 302
    callback_url = urlsplit(callback["url"])
    assert callback_url.hostname == "localhost" and callback["status"] == 200
    assert "Your identity was confirmed" in callback["text"]
    sso_token = parse_qs(callback_url.query)["token"][0]
    assert emulator.login.logins == ["EXTERNALBROWSER"]
    (login,) = emulator.login_requests()
    login_data = login.body["data"]
    assert login_data["TOKEN"] == sso_token and login_data["PROOF_KEY"]
    sent = emulator.inference_requests()[-1].headers
    assert sent["authorization"].startswith('Snowflake Token="session-')

    async with httpx.AsyncClient() as http:
        response = await http.get(
            gateway.url("cortex-claude/health"),
            headers={"Authorization": f"token {gateway.jupyter_token}"},
        )
    credential = response.json()["credential"]
    assert credential["kind"] == "externalbrowser"
    assert credential["user"] == "testuser"
    secrets = gateway.service.credential.secrets()
    assert len(secrets) >= 2  # the session and master tokens
    for secret in [*secrets, sso_token, login_data["PROOF_KEY"]]:
        assert secret not in response.text


async def test_a_second_request_reuses_the_sso_session_without_another_browser_window(
    gateway: RunningGateway, browser_log: Path
) -> None:
    client = gateway.anthropic()
    for _ in range(2):
        answer = await client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=256,
            messages=[{"role": "user", "content": "hi"}],
        )
        assert isinstance(answer, anthropic.types.Message)

    assert len(browser_visits(browser_log)) == 1
    assert gateway.emulator.login.logins == ["EXTERNALBROWSER"]
