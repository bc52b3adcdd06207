"""Every place a Snowflake user keeps a connection, and every login the connector implements,
through a real Jupyter server to the emulator (issue 15).

Sources, in the connector's order (snowflake/connections_toml.py): ``SNOWFLAKE_CONNECTIONS`` (a
TOML string), else ``connections.toml``, else ``[connections.<name>]`` in ``config.toml``; the
name from ``default_connection_name``; the Snowflake CLI's ``SNOWFLAKE_CONNECTIONS_<NAME>_<KEY>``
above the files and the generic ``SNOWFLAKE_*`` variables. Logins: ``workload_identity`` (OIDC)
and ``oauth_client_credentials`` log in through the real connector; ``okta`` and
``oauth_authorization_code`` (an identity provider's pages, not emulated) are checked to reach the
connector with the connection's parameters instead of being refused.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.snowflake.connection import resolve_connection
from jupyter_cortex_claude.snowflake.credential_factory import create_credential
from jupyter_cortex_claude.snowflake.errors import ConfigurationError
from jupyter_cortex_claude.snowflake.session_credentials import (
    ConnectorSessionCredential,
    connector_arguments,
)
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .conftest import TEST_PAT, RunningGateway

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

WRONG_PAT = "wrong-pat-not-registered"
OIDC_ISSUER = "https://oidc.workload.example"
OIDC_SUBJECT = "system:serviceaccount:analytics:notebook"
CLIENT_ID, CLIENT_SECRET = "cortex-claude-client", "client-secret-0123456789"


def entry(emulator: CortexEmulator, token: str = TEST_PAT, **extra: str) -> str:
    """A connection's TOML body: the emulator as host, a PAT."""
    fields = {
        "account": "testorg-testaccount",
        "user": "testuser",
        "host": f"http://{emulator.host}:{emulator.port}",
        **({"token": token} if token else {}),
        **extra,
    }
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in fields.items())


def snowflake_home() -> Path:
    folder = Path(os.environ["SNOWFLAKE_HOME"])  # conftest points it under tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def arrange_source(source: str, emulator: CortexEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """Put a working connection only where ``source`` says; decoys elsewhere. Returns the label
    health must name."""
    folder = snowflake_home()
    if source == "config.toml":
        write_private(
            folder / "config.toml",
            f'default_connection_name = "dev"\n\n[connections.dev]\n{entry(emulator)}',
        )
        return "config.toml [connections] [dev]"
    if source == "SNOWFLAKE_CONNECTIONS":
        # A connections.toml with a wrong token is there too: the variable wins, as in the connector.
        write_private(folder / "connections.toml", f"[default]\n{entry(emulator, WRONG_PAT)}")
        monkeypatch.setenv("SNOWFLAKE_CONNECTIONS", f"[default]\n{entry(emulator)}")
        return "SNOWFLAKE_CONNECTIONS [default]"
    if source == "per-key override":
        # The CLI's SNOWFLAKE_CONNECTIONS_<NAME>_<KEY> beats the file and the generic variable.
        write_private(folder / "connections.toml", f"[prod]\n{entry(emulator, WRONG_PAT)}")
        monkeypatch.setenv("SNOWFLAKE_DEFAULT_CONNECTION_NAME", "prod")
        monkeypatch.setenv("SNOWFLAKE_TOKEN", WRONG_PAT)
        monkeypatch.setenv("SNOWFLAKE_CONNECTIONS_PROD_TOKEN", TEST_PAT)
        return "SNOWFLAKE_CONNECTIONS_PROD_* environment"
    if source == "connections.toml over config.toml":
        # connections.toml replaces config.toml's [connections] wholesale (the connector's rule).
        write_private(
            folder / "config.toml", f"[connections.default]\n{entry(emulator, WRONG_PAT)}"
        )
        write_private(folder / "connections.toml", f"[default]\n{entry(emulator)}")
        return "connections.toml [default]"
    raise AssertionError(source)


SOURCES = [
    "config.toml",
    "SNOWFLAKE_CONNECTIONS",
    "per-key override",
    "connections.toml over config.toml",
]


@pytest.fixture(params=SOURCES)
def source(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def expected_label(
    cortex_emulator: CortexEmulator, source: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    return arrange_source(source, cortex_emulator, monkeypatch)


@pytest.fixture
def cortex_claude_config(expected_label: str) -> dict[str, Any]:
    return {"max_retries": 0}  # nothing about the connection: it must come from the source


async def test_each_connection_source_serves_a_request_through_jupyter(
    running_gateway: RunningGateway, source: str, expected_label: str
) -> None:
    running_gateway.emulator.script(Reply.text("Found through " + source))
    answer = await running_gateway.anthropic().messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.content[0].text == "Found through " + source
    sent = running_gateway.emulator.inference_requests()[-1].headers["authorization"]
    assert sent == f"Bearer {TEST_PAT}"  # the decoys' wrong token was never used
    health = running_gateway.service.health()
    assert expected_label in health["config_source"]
    assert TEST_PAT not in json.dumps(health)


# --- precedence details, resolved without a server ------------------------------------------------


def test_a_named_connection_asked_for_that_exists_nowhere_names_every_place_looked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snowflake_home()
    monkeypatch.setenv("SNOWFLAKE_DEFAULT_CONNECTION_NAME", "prod")
    with pytest.raises(ConfigurationError) as caught:
        resolve_connection(CortexClaude(), os.environ)
    message = str(caught.value)
    assert "'prod'" in message and "SNOWFLAKE_CONNECTIONS" in message and "config.toml" in message


def test_default_connection_name_in_config_toml_chooses_among_config_toml_connections(
    cortex_emulator: CortexEmulator,
) -> None:
    write_private(
        snowflake_home() / "config.toml",
        'default_connection_name = "b"\n\n'
        f"[connections.a]\n{entry(cortex_emulator, 'pat-a')}\n"
        f"[connections.b]\n{entry(cortex_emulator, 'pat-b')}",
    )
    connection = resolve_connection(CortexClaude(), os.environ)
    assert connection is not None and connection.token == "pat-b"


def test_an_invalid_snowflake_connections_variable_is_reported_without_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SNOWFLAKE_CONNECTIONS", '[default]\ntoken = "secret-pat-in-broken-toml')
    with pytest.raises(
        ConfigurationError, match="SNOWFLAKE_CONNECTIONS is not valid TOML"
    ) as caught:
        resolve_connection(CortexClaude(), os.environ)
    assert "secret-pat-in-broken-toml" not in str(caught.value)


# --- the connector's other logins ------------------------------------------------------------------


def oidc_token(subject: str = OIDC_SUBJECT) -> str:
    """A workload's OIDC token (the emulator reads iss/sub; Snowflake also checks the signature)."""
    claims = {"iss": OIDC_ISSUER, "sub": subject, "aud": "snowflakecomputing.com"}
    claims["exp"] = int(time.time()) + 3600
    return jwt.encode(claims, "workload-signing-key-of-at-least-32-bytes!", algorithm="HS256")


@pytest.fixture
def login_gateway(running_gateway: RunningGateway) -> Iterator[RunningGateway]:
    yield running_gateway
    credential = running_gateway.service.credential
    if isinstance(credential, ConnectorSessionCredential):
        credential.close()  # log out while the emulator still listens


class TestConnectorLogins:
    @pytest.fixture(params=["workload_identity", "oauth_client_credentials"])
    def login(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def cortex_claude_config(
        self, cortex_emulator: CortexEmulator, login: str, monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        if login == "workload_identity":
            cortex_emulator.add_workload_identity(OIDC_ISSUER, OIDC_SUBJECT)
            token_file = snowflake_home() / "oidc-token"
            write_private(token_file, oidc_token())
            extra = {
                "authenticator": "WORKLOAD_IDENTITY",
                "workload_identity_provider": "oidc",
                "token_file_path": str(token_file),
            }
            # The connector sends an attestation only to Snowflake hosts unless told otherwise.
            monkeypatch.setenv("SNOWFLAKE_WIF_ALLOWED_HOST_SUFFIXES", cortex_emulator.host)
        else:
            cortex_emulator.add_oauth_client(CLIENT_ID, CLIENT_SECRET)
            extra = {
                "authenticator": "oauth_client_credentials",
                "oauth_client_id": CLIENT_ID,
                "oauth_token_request_url": f"{cortex_emulator.url}/oauth/token-request",
            }
            # The secret from the environment, as the CLI's override, not from the file.
            monkeypatch.setenv("SNOWFLAKE_CONNECTIONS_DEFAULT_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        body = entry(cortex_emulator, token="", **extra).replace('user = "testuser"\n', "")
        write_private(snowflake_home() / "connections.toml", f"[default]\n{body}")
        return {"max_retries": 0}

    async def test_the_login_goes_through_the_connector_and_streams_through_jupyter(
        self, login_gateway: RunningGateway, login: str
    ) -> None:
        emulator = login_gateway.emulator
        emulator.script(Reply.text(f"Hello via {login}"))
        answer = await login_gateway.anthropic().messages.create(
            model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.content[0].text == f"Hello via {login}"
        (login_request,) = emulator.login_requests()
        data = login_request.body["data"]
        if login == "workload_identity":
            assert data["AUTHENTICATOR"] == "WORKLOAD_IDENTITY" and data["PROVIDER"] == "OIDC"
        else:
            assert data["AUTHENTICATOR"] == "OAUTH"  # with the access token the grant gave
        sent = emulator.inference_requests()[-1].headers["authorization"]
        assert sent.startswith('Snowflake Token="session-')
        health = login_gateway.service.health()
        assert health["auth_method"] == login
        assert CLIENT_SECRET not in json.dumps(health)
        if login == "oauth_client_credentials":  # redacted wherever the gateway redacts secrets
            assert CLIENT_SECRET in login_gateway.service.secrets()


@pytest.mark.parametrize(
    ("authenticator", "extra", "connector_authenticator"),
    [
        ("https://acme.okta.com", {"password": "okta-password"}, "https://acme.okta.com"),
        ("OAUTH_AUTHORIZATION_CODE", {"oauth_client_id": "id"}, "oauth_authorization_code"),
    ],
)
def test_identity_provider_logins_are_handed_to_the_connector_not_refused(
    cortex_emulator: CortexEmulator,
    authenticator: str,
    extra: dict[str, str],
    connector_authenticator: str,
) -> None:
    """Okta and OAuth authorization-code logins need the identity provider's pages, which the
    emulator does not have: what is checked is that the connection resolves, the credential is a
    connector login, and the connector gets the connection's own parameters."""
    body = entry(cortex_emulator, token="", authenticator=authenticator, **extra)
    write_private(snowflake_home() / "connections.toml", f"[default]\n{body}")
    connection = resolve_connection(CortexClaude(), os.environ)
    assert connection is not None
    credential = create_credential(connection)
    assert isinstance(credential, ConnectorSessionCredential)
    arguments = connector_arguments(connection)
    assert arguments["authenticator"] == connector_authenticator
    for key, value in extra.items():
        assert arguments[key] == value
    assert "okta-password" not in repr(connection)


def test_a_client_credentials_login_without_its_secret_says_what_to_set(
    cortex_emulator: CortexEmulator,
) -> None:
    body = entry(cortex_emulator, token="", authenticator="oauth_client_credentials")
    write_private(snowflake_home() / "connections.toml", f"[default]\n{body}")
    with pytest.raises(ConfigurationError, match="oauth_client_id and oauth_client_secret"):
        resolve_connection(CortexClaude(), os.environ)


def test_a_workload_identity_without_a_provider_lists_the_providers(
    cortex_emulator: CortexEmulator,
) -> None:
    body = entry(cortex_emulator, token="", authenticator="workload_identity")
    write_private(snowflake_home() / "connections.toml", f"[default]\n{body}")
    with pytest.raises(ConfigurationError, match="AWS, AZURE, GCP, OIDC"):
        resolve_connection(CortexClaude(), os.environ)
