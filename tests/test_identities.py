"""Every Snowflake identity a notebook user has, logging in for real against the emulator.

The real snowflake-connector-python logs in to the emulator's login protocol (password, MFA, PAT,
key pair, OAuth); the gateway then sends the session token to Cortex and renews it when Cortex
answers 390112. OAuth tokens from files and the Snowpark Container Services token file are re-read
as they rotate.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.errors import GatewayError
from jupyter_cortex_claude.snowflake.connection import resolve_connection
from jupyter_cortex_claude.snowflake.cortex import MESSAGES_PATH, CortexClient, RetryPolicy
from jupyter_cortex_claude.snowflake.credential_factory import create_credential
from jupyter_cortex_claude.snowflake.oauth import OAuthCredential
from jupyter_cortex_claude.snowflake.session_credentials import ConnectorSessionCredential
from jupyter_cortex_claude.testing import CortexEmulator, KeyPair, Reply

from .clients import HelloFileTask
from .conftest import TEST_PAT, RunningGateway, emulator_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

PASSWORD = "correct horse battery staple"
PASSCODE = "424242"
OAUTH_TOKEN = "oauth-access-token-0123456789"
CONNECTOR_IDENTITIES = ["password", "password_mfa", "pat", "key_pair", "oauth"]


def identity_config(
    emulator: CortexEmulator, identity: str, keypair: KeyPair, tmp_path: Path
) -> dict[str, Any]:
    """Gateway settings that log in through the real connector with ``identity``."""
    config = emulator_config(emulator, token="")
    if identity == "password":
        emulator.add_password(PASSWORD)
        config.update(authenticator="snowflake", password=PASSWORD)
    elif identity == "password_mfa":
        emulator.add_password(PASSWORD, passcode=PASSCODE)
        config.update(authenticator="username_password_mfa", password=PASSWORD, passcode=PASSCODE)
    elif identity == "pat":
        config.update(token=TEST_PAT, connector_login=True)
    elif identity == "key_pair":
        emulator.register_public_key(keypair.public_key_pem)
        key_file = tmp_path / "rsa_key.p8"
        key_file.write_bytes(keypair.private_key_pem)
        config.update(private_key_file=str(key_file), connector_login=True)
    elif identity == "oauth":
        emulator.add_oauth_token(OAUTH_TOKEN)
        config.update(authenticator="oauth", token=OAUTH_TOKEN, connector_login=True)
    return config


@pytest.fixture(params=CONNECTOR_IDENTITIES)
def identity(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cortex_claude_config(
    cortex_emulator: CortexEmulator, identity: str, cortex_keypair: KeyPair, tmp_path: Path
) -> dict[str, Any]:
    return identity_config(cortex_emulator, identity, cortex_keypair, tmp_path)


@pytest.fixture
def gateway(running_gateway: RunningGateway) -> Iterator[RunningGateway]:
    """The running gateway, whose session logs out while the emulator still listens."""
    yield running_gateway
    credential = running_gateway.service.credential
    if isinstance(credential, ConnectorSessionCredential):
        credential.close()


async def stream_text(client: anthropic.AsyncAnthropic, prompt: str = "Say hello") -> str:
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=[{"role": "user", "content": prompt}],
    ) as stream:
        return "".join([text async for text in stream.text_stream])


def session_tokens_sent(emulator: CortexEmulator) -> list[str]:
    return [r.headers["authorization"] for r in emulator.inference_requests()]


# --- through Jupyter ------------------------------------------------------------------------------


async def test_each_identity_logs_in_with_the_real_connector_and_streams_through_jupyter(
    gateway: RunningGateway, identity: str
) -> None:
    emulator = gateway.emulator
    emulator.script(Reply.text("Hello through a connector session."))

    text = await stream_text(gateway.anthropic())

    assert text == "Hello through a connector session."
    assert len(emulator.login_requests()) == 1
    sent = emulator.inference_requests()[-1].headers
    assert sent["authorization"].startswith('Snowflake Token="session-')
    assert "x-snowflake-authorization-token-type" not in sent


@pytest.mark.parametrize("identity", ["password"], indirect=True)
async def test_a_burst_at_the_moment_of_expiry_renews_the_session_once(
    gateway: RunningGateway,
) -> None:
    emulator = gateway.emulator
    client = gateway.anthropic()
    assert await stream_text(client) == "Hello from claude-sonnet-4-6 on the Cortex emulator."
    emulator.login.expire_sessions()

    answers = await asyncio.gather(*(stream_text(client, f"question {n}") for n in range(50)))

    assert all(a == "Hello from claude-sonnet-4-6 on the Cortex emulator." for a in answers)
    assert len(emulator.token_requests()) == 1
    assert len(emulator.login_requests()) == 1
    tokens = session_tokens_sent(emulator)
    assert len(set(tokens[1:])) == 2  # the expired token (refused with 390112), then the renewed


@pytest.mark.parametrize("identity", ["password"], indirect=True)
async def test_health_shows_the_session_identity_and_no_secret(
    gateway: RunningGateway,
) -> None:
    await stream_text(gateway.anthropic())
    async with httpx.AsyncClient() as http:
        response = await http.get(
            gateway.url("cortex-claude/health"),
            headers={"Authorization": f"token {gateway.jupyter_token}"},
        )
    health = response.json()
    credential = health["credential"]
    assert credential["kind"] == "snowflake"
    assert credential["user"] == "testuser"
    assert credential["role"] == "PUBLIC"
    assert credential["expires_at"] is not None
    secrets = gateway.service.credential.secrets()
    assert PASSWORD in secrets and len(secrets) >= 3  # password, session and master token
    for secret in secrets:
        assert secret not in response.text


@pytest.mark.parametrize("identity", ["password"], indirect=True)
async def test_a_revoked_login_reaches_the_client_as_an_authentication_error_with_the_fix(
    gateway: RunningGateway,
) -> None:
    emulator = gateway.emulator
    client = gateway.anthropic()
    await stream_text(client)
    emulator.add_password("a new password")  # the old one no longer logs in
    emulator.login.refuse_renewals = True
    emulator.login.expire_sessions()

    with pytest.raises(anthropic.AuthenticationError) as caught:
        await stream_text(client)

    message = str(caught.value)
    assert "Incorrect username or password" in message
    assert "connections.toml" in message
    assert PASSWORD not in message


# --- the credential and the Cortex client, without Jupyter --------------------------------------


@pytest.fixture
def emulator(cortex_emulator: CortexEmulator) -> CortexEmulator:
    cortex_emulator.add_password(PASSWORD)
    return cortex_emulator


def password_credential(emulator: CortexEmulator, **kwargs: Any) -> ConnectorSessionCredential:
    config = CortexClaude(**{**emulator_config(emulator, token=""), "password": PASSWORD})
    connection = resolve_connection(config, {})
    assert connection is not None and connection.authenticator == "snowflake"
    credential = create_credential(connection)
    assert isinstance(credential, ConnectorSessionCredential)
    for name, value in kwargs.items():
        setattr(credential, name, value)
    return credential


def messages_request(stream: bool) -> tuple[bytes, dict[str, str]]:
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    return json.dumps(body).encode(), headers


async def ask(client: CortexClient, *, stream: bool = True) -> bytes:
    content, headers = messages_request(stream)
    response = await client.open(MESSAGES_PATH, content, headers=headers, model="claude-sonnet-4-6")
    assert response.is_event_stream == stream
    return await response.read()


def cortex_client(emulator: CortexEmulator, credential: httpx.Auth) -> CortexClient:
    return CortexClient(emulator.url, credential, retry=RetryPolicy(max_retries=0))


async def test_a_390112_on_a_streaming_request_is_renewed_and_replayed(
    emulator: CortexEmulator,
) -> None:
    credential = password_credential(emulator)
    client = cortex_client(emulator, credential)
    await ask(client)
    emulator.login.expire_sessions()

    answer = await ask(client, stream=True)

    assert b"message_stop" in answer
    assert credential.renewals == 1 and credential.logins == 1
    assert len(emulator.token_requests()) == 1
    assert len(emulator.inference_requests()) == 3  # ok, 390112 (HTTP 200), replayed ok
    await client.aclose()
    await credential.aclose()


async def test_a_390112_on_a_plain_request_is_renewed_and_replayed(
    emulator: CortexEmulator,
) -> None:
    credential = password_credential(emulator)
    client = cortex_client(emulator, credential)
    await ask(client, stream=False)
    emulator.login.expire_sessions()

    answer = json.loads(await ask(client, stream=False))

    assert answer["type"] == "message"
    assert len(emulator.token_requests()) == 1
    await client.aclose()
    await credential.aclose()


async def test_when_the_master_token_cannot_renew_the_session_a_fresh_login_does(
    emulator: CortexEmulator,
) -> None:
    credential = password_credential(emulator)
    client = cortex_client(emulator, credential)
    await ask(client)
    emulator.login.expire_master_tokens()
    emulator.login.expire_sessions()

    assert b"message_stop" in await ask(client)

    assert credential.logins == 2 and credential.renewals == 0
    assert len(emulator.login_requests()) == 2
    await client.aclose()
    await credential.aclose()


async def test_a_session_expiring_on_schedule_is_renewed_before_it_is_refused(
    cortex_emulator_factory: Any,
) -> None:
    emulator = cortex_emulator_factory(session_lifetime=1.0)
    emulator.add_password(PASSWORD)
    credential = password_credential(emulator, _renew_margin=0.0)
    client = cortex_client(emulator, credential)
    await ask(client)
    await asyncio.sleep(1.2)  # past the emulator's session lifetime

    assert b"message_stop" in await ask(client)

    assert len(emulator.token_requests()) == 1
    await client.aclose()
    await credential.aclose()


async def test_closing_the_gateway_logs_the_session_out(emulator: CortexEmulator) -> None:
    credential = password_credential(emulator)
    client = cortex_client(emulator, credential)
    await ask(client)
    token = credential._peek_token()

    await credential.aclose()

    assert any(r.path == "/session" and "delete=true" in r.query for r in emulator.requests)
    response = httpx.get(
        f"{emulator.url}/api/v2/cortex/models",
        headers={"Authorization": f'Snowflake Token="{token}"'},
    )
    assert response.status_code == 401
    await client.aclose()


async def test_a_session_token_refused_with_401_is_renewed(emulator: CortexEmulator) -> None:
    credential = password_credential(emulator)
    client = cortex_client(emulator, credential)
    await ask(client)
    token = credential._peek_token()
    assert token is not None
    emulator.credentials.revoke_session_token(token)

    assert b"message_stop" in await ask(client)
    assert credential._peek_token() != token
    await client.aclose()
    await credential.aclose()


# --- OAuth tokens and Snowflake Notebooks ----------------------------------------------------------


async def test_an_oauth_token_file_rotated_between_requests_is_picked_up(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    token_file = tmp_path / "oauth-token"
    token_file.write_text("oauth-first-token")
    cortex_emulator.add_oauth_token("oauth-first-token")
    environ = {
        "SNOWFLAKE_ACCOUNT": "testorg-testaccount",
        "SNOWFLAKE_HOST": cortex_emulator.url,
        "SNOWFLAKE_AUTHENTICATOR": "oauth",
        "SNOWFLAKE_TOKEN_FILE_PATH": str(token_file),
    }
    connection = resolve_connection(CortexClaude(), environ)
    assert connection is not None
    credential = create_credential(connection)
    assert isinstance(credential, OAuthCredential)
    client = cortex_client(cortex_emulator, credential)
    await ask(client)

    cortex_emulator.add_oauth_token("oauth-second-token-longer")
    cortex_emulator.revoke("oauth-first-token")
    token_file.write_text("oauth-second-token-longer")
    await ask(client)

    sent = [r.headers for r in cortex_emulator.inference_requests()]
    assert [h["authorization"] for h in sent] == [
        "Bearer oauth-first-token",
        "Bearer oauth-second-token-longer",
    ]
    assert all(h["x-snowflake-authorization-token-type"] == "OAUTH" for h in sent)
    assert credential.describe()["kind"] == "oauth"
    await client.aclose()


async def test_a_snowflake_notebook_container_token_is_used_with_no_configuration(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    token_file = tmp_path / "session-token"
    token_file.write_text("spcs-token-one")
    cortex_emulator.add_oauth_token("spcs-token-one")
    # What Snowpark Container Services sets; nothing of ours is configured.
    environ = {
        "SNOWFLAKE_HOST": cortex_emulator.url,
        "SNOWFLAKE_ACCOUNT": "testorg-testaccount",
        "CORTEX_CLAUDE_SPCS_TOKEN_PATH": str(token_file),
    }
    connection = resolve_connection(CortexClaude(), environ)
    assert connection is not None and connection.authenticator == "spcs_oauth"
    credential = create_credential(connection)
    client = cortex_client(cortex_emulator, credential)
    await ask(client)

    # Snowflake rewrites the file in place (same size, same second): it is read every time.
    cortex_emulator.add_oauth_token("spcs-token-two")
    token_file.write_text("spcs-token-two")
    await ask(client)

    assert [r.headers["authorization"] for r in cortex_emulator.inference_requests()] == [
        "Bearer spcs-token-one",
        "Bearer spcs-token-two",
    ]
    description = credential.describe()
    assert description["kind"] == "spcs_oauth" and "spcs-token" not in json.dumps(description)
    await client.aclose()


def test_without_the_container_token_file_nothing_is_configured(tmp_path: Path) -> None:
    environ = {"CORTEX_CLAUDE_SPCS_TOKEN_PATH": str(tmp_path / "missing")}
    assert resolve_connection(CortexClaude(), environ) is None


@pytest.fixture
def active_snowpark_session(emulator: CortexEmulator) -> Iterator[Any]:
    """A warehouse notebook's kernel: Snowpark imported, one session logged in (here, the real
    connector's connection behind a stand-in for Snowpark, which is not installed)."""
    import snowflake.connector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        connection = snowflake.connector.connect(
            account="testorg-testaccount",
            user="testuser",
            password=PASSWORD,
            host=emulator.host,
            port=emulator.port,
            protocol="http",
            client_session_keep_alive=False,
        )
    session = types.SimpleNamespace(connection=connection)
    context = types.ModuleType("snowflake.snowpark.context")
    context.get_active_session = lambda: session  # type: ignore[attr-defined]
    sys.modules["snowflake.snowpark.context"] = context
    try:
        yield session
    finally:
        del sys.modules["snowflake.snowpark.context"]
        connection.close()


async def test_a_warehouse_notebook_uses_its_active_snowpark_session(
    emulator: CortexEmulator, active_snowpark_session: Any
) -> None:
    connection = resolve_connection(CortexClaude(), {})
    assert connection is not None and connection.authenticator == "snowpark_session"
    credential = create_credential(connection)
    client = CortexClient(
        f"http://{emulator.host}:{emulator.port}", credential, retry=RetryPolicy(max_retries=0)
    )
    await ask(client)
    emulator.login.expire_sessions()
    await ask(client)

    sent = [r.headers["authorization"] for r in emulator.inference_requests()]
    assert sent[0] == f'Snowflake Token="{active_snowpark_session.connection.rest.token}"'
    assert len(emulator.token_requests()) == 1
    assert emulator.login_requests() and len(emulator.login_requests()) == 1  # never logs in
    await client.aclose()
    await credential.aclose()
    assert not active_snowpark_session.connection.is_closed()


async def test_a_session_that_cannot_be_renewed_gives_an_authentication_error(
    emulator: CortexEmulator,
) -> None:
    credential = password_credential(emulator)
    client = cortex_client(emulator, credential)
    await ask(client)
    emulator.add_password("changed")
    emulator.login.refuse_renewals = True
    emulator.login.expire_sessions()

    with pytest.raises(GatewayError) as caught:
        await ask(client)

    assert caught.value.status == 401
    assert "Log in again" in caught.value.message
    await client.aclose()


def test_the_server_does_not_import_the_connector_for_a_pat(tmp_path: Path) -> None:
    script = """
import asyncio, sys
from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.service import GatewayService
import jupyter_cortex_claude.server.app

async def main():
    service = GatewayService(CortexClaude(), environ={
        "SNOWFLAKE_ACCOUNT": "myorg-myaccount", "SNOWFLAKE_TOKEN": "a-pat-value",
        "HOME": sys.argv[1],
    })
    await service.start()
    await service.get_gateway()
    print(service.credential.kind, "snowflake.connector" in sys.modules)
    await service.stop()

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.split() == ["programmatic_access_token", "False"]


@pytest.mark.parametrize("identity", ["password"], indirect=True)
async def test_a_claude_code_run_spanning_the_session_expiry_never_sees_it(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    emulator = gateway.emulator
    task = HelloFileTask(tmp_path)
    write_call, final_answer = task.replies()
    answers: list[str] = []

    def answer_then_expire(body: dict[str, Any]) -> Reply:
        answers.append(body["model"])
        if len(answers) == 1:
            # The session expires while Claude Code runs the tool: its next turn meets a 390112.
            emulator.login.expire_sessions()
            return write_call
        return final_answer

    emulator.responder = answer_then_expire

    await task.run(gateway.anthropic_url, gateway.key)

    assert len(emulator.token_requests()) == 1
    assert len(emulator.login_requests()) == 1
