"""No token, key or PAT in the server log (at debug level), in errors, or in /health."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from jupyter_cortex_claude.testing import CortexEmulator, KeyPair, Reply

LEAKY_PAT = "pat-SECRET-do-not-log-9f8e7d6c5b4a"
PASSPHRASE = "passphrase-SECRET-3141592653"


@pytest.fixture(params=["pat", "keypair"])
def auth_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def cortex_claude_config(
    auth_kind: str,
    cortex_emulator: CortexEmulator,
    cortex_keypair: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> dict[str, Any]:
    """The credentials come from connections.toml, as users keep them (not from Jupyter's config,
    which jupyter_server itself logs at debug level)."""
    home = tmp_path / "snowflake-home"
    home.mkdir()
    lines = [
        "[default]",
        'account = "testorg-testaccount"',
        'user = "testuser"',
        f'host = "{cortex_emulator.host}"',
        f"port = {cortex_emulator.port}",
        'protocol = "http"',
    ]
    if auth_kind == "pat":
        cortex_emulator.add_pat(LEAKY_PAT)
        lines.append(f'token = "{LEAKY_PAT}"')
    else:
        key_file = tmp_path / "rsa_key.p8"
        key_file.write_bytes(cortex_keypair.encrypted_private_key_pem(PASSPHRASE))
        cortex_emulator.register_public_key(cortex_keypair.public_key_pem)
        lines += [
            'authenticator = "snowflake_jwt"',
            f'private_key_file = "{key_file}"',
            f'private_key_file_pwd = "{PASSPHRASE}"',
        ]
    toml = home / "connections.toml"
    toml.write_text("\n".join(lines) + "\n")
    toml.chmod(0o600)
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    return {"max_retries": 0}


@pytest.fixture
def all_logs() -> Iterator[io.StringIO]:
    """Everything logged anywhere in the process, at debug level."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    for name in ("jupyter_cortex_claude", "httpx", "httpcore", "tornado"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_no_secret_reaches_logs_errors_or_health(
    running_gateway: Any,
    all_logs: io.StringIO,
    cortex_keypair: KeyPair,
    auth_kind: str,
) -> None:
    emulator = running_gateway.emulator
    emulator.script(Reply.text("streamed"), Reply.text("plain"))
    client = running_gateway.anthropic()
    async with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert await stream.get_final_text() == "streamed"
    reply = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content[0].text == "plain"

    async with httpx.AsyncClient() as http:
        health = await http.get(
            running_gateway.url("cortex-claude/health"),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
        )
    assert health.json()["auth_method"] == (
        "programmatic_access_token" if auth_kind == "pat" else "snowflake_jwt"
    )

    # Snowflake now refuses the credential: the error the user sees must not echo it.
    if auth_kind == "pat":
        emulator.revoke(LEAKY_PAT)
    else:
        emulator.credentials._keys.clear()  # the key was unregistered on the account
    with pytest.raises(anthropic.APIStatusError) as refused:
        await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 401

    used = emulator.inference_requests()
    bearer_tokens = {r.headers["authorization"].removeprefix("Bearer ") for r in used}
    secrets = {
        running_gateway.key,
        LEAKY_PAT,
        PASSPHRASE,
        *bearer_tokens,
        *running_gateway.service.secrets(),
    }
    key_body = cortex_keypair.private_key_pem.decode().splitlines()[1]
    secrets.add(key_body)
    everything = "\n".join(
        [all_logs.getvalue(), health.text, str(refused.value), repr(refused.value.body)]
    )
    # The debug log and the error are really captured (so the checks below can fail).
    assert "messages: model claude-sonnet-4-5" in all_logs.getvalue()
    assert "Cortex answered 401" in everything
    for secret in secrets:
        assert secret not in everything, f"a secret leaked: {secret[:6]}..."
