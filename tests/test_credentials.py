"""Snowflake credentials: PATs and key-pair JWTs, behind one interface; renewed and replayed once by
the Cortex client when Snowflake refuses them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.errors import GatewayError
from jupyter_cortex_claude.snowflake.connection import resolve_connection
from jupyter_cortex_claude.snowflake.cortex import MESSAGES_PATH, CortexClient, RetryPolicy
from jupyter_cortex_claude.snowflake.credential_factory import create_credential
from jupyter_cortex_claude.snowflake.credentials import (
    CredentialError,
    PatCredential,
    SnowflakeCredential,
)
from jupyter_cortex_claude.snowflake.keypair import (
    JWT_LIFETIME_SECONDS,
    JWT_RENEW_MARGIN_SECONDS,
    KeyPairJwtCredential,
    jwt_account_name,
)

START = 1_800_000_000.0


class FakeClock:
    """Time that moves only when the test says so (or by ``tick`` on every reading)."""

    def __init__(self, now: float = START, tick: float = 0.0) -> None:
        self.now = now
        self.tick = tick

    def __call__(self) -> float:
        value = self.now
        self.now += self.tick
        return value


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "rsa_key.p8"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture
def encrypted_key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "rsa_key_encrypted.p8"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse battery"),
        )
    )
    return path


def expected_fingerprint(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


# --- a real HTTP server standing in for Snowflake -------------------------------------------------


@dataclass
class Seen:
    authorization: str
    token_type: str | None
    body: bytes


@dataclass
class FakeSnowflake:
    """Records what arrives; ``refuse`` decides, per Authorization header, whether to answer 401."""

    url: str
    refuse: Callable[[str], bool] = lambda authorization: False
    on_refusal: Callable[[], None] = lambda: None
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
def snowflake() -> Iterator[FakeSnowflake]:
    state = FakeSnowflake(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            authorization = self.headers.get("Authorization", "")
            with lock:
                state.seen.append(
                    Seen(
                        authorization,
                        self.headers.get("X-Snowflake-Authorization-Token-Type"),
                        body,
                    )
                )
                refused = state.refuse(authorization)
                if refused:
                    state.on_refusal()
            status, reply = (401, b'{"code": "390303"}') if refused else (200, b'{"ok": true}')
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default backlog of 5 drops concurrent connections
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


async def post_all(
    credential: SnowflakeCredential, snowflake: FakeSnowflake, *bodies: bytes
) -> list[int]:
    """The status each body's request ends with, sent together through one Cortex client."""
    client = CortexClient(snowflake.url, credential, retry=RetryPolicy(max_retries=0))

    async def post(body: bytes) -> int:
        try:
            response = await client.open(
                MESSAGES_PATH,
                body,
                headers={"content-type": "application/json"},
                model="claude-sonnet-4-6",
            )
        except GatewayError as error:
            return error.status
        await response.read()
        return response.status_code

    try:
        return list(await asyncio.gather(*(post(body) for body in bodies)))
    finally:
        await client.aclose()


# --- programmatic access tokens -------------------------------------------------------------------


async def test_a_pat_is_sent_as_a_bearer_token_with_its_type() -> None:
    credential = PatCredential("pat-secret-value", user="ALICE")

    headers = await credential.headers()

    assert headers == {
        "Authorization": "Bearer pat-secret-value",
        "X-Snowflake-Authorization-Token-Type": "PROGRAMMATIC_ACCESS_TOKEN",
    }
    assert credential.secrets() == ["pat-secret-value"]
    assert "pat-secret-value" not in repr(credential.describe())
    assert credential.describe()["kind"] == "programmatic_access_token"


async def test_a_rotated_pat_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    token_file = tmp_path / "pat"
    token_file.write_text("first-pat\n")
    credential = PatCredential(token_file_path=token_file)
    assert bearer(await credential.headers()) == "first-pat"

    token_file.write_text("second-pat-longer\n")
    os.utime(token_file, ns=(1_000_000_000, 1_000_000_000))

    assert bearer(await credential.headers()) == "second-pat-longer"
    assert credential.secrets() == ["second-pat-longer"]


def test_a_missing_pat_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="does not exist"):
        PatCredential(token_file_path=tmp_path / "absent")


def test_an_empty_pat_file_says_what_to_put_in_it(tmp_path: Path) -> None:
    (tmp_path / "pat").write_text("\n")
    with pytest.raises(CredentialError, match="empty"):
        PatCredential(token_file_path=tmp_path / "pat")


async def test_a_refused_pat_is_not_sent_again_and_the_user_is_told_how_to_fix_it(
    snowflake: FakeSnowflake,
) -> None:
    snowflake.refuse = lambda authorization: True
    credential = PatCredential("revoked-pat", user="ALICE")

    assert await post_all(credential, snowflake, b'{"model": "claude-sonnet-4-6"}') == [401]
    assert len(snowflake.seen) == 1
    message = credential.explain_refusal()
    assert "ALICE" in message and "programmatic access token" in message
    assert "revoked-pat" not in message


async def test_a_pat_rotated_on_disk_while_a_request_was_refused_is_replayed_once(
    tmp_path: Path, snowflake: FakeSnowflake
) -> None:
    token_file = tmp_path / "pat"
    token_file.write_text("old-pat")
    credential = PatCredential(token_file_path=token_file)
    snowflake.refuse = lambda authorization: authorization == "Bearer old-pat"
    snowflake.on_refusal = lambda: token_file.write_text("new-pat")

    assert await post_all(credential, snowflake, b'{"n":1}') == [200]
    assert [seen.authorization for seen in snowflake.seen] == ["Bearer old-pat", "Bearer new-pat"]
    assert snowflake.seen[0].body == snowflake.seen[1].body == b'{"n":1}'


# --- key-pair JWTs --------------------------------------------------------------------------------


async def test_the_jwt_claims_are_what_snowflake_checks(
    key_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = FakeClock()
    credential = KeyPairJwtCredential(
        account="myorg-myacct", user="alice", private_key_file=key_file, clock=clock
    )

    headers = await credential.headers()

    assert headers["X-Snowflake-Authorization-Token-Type"] == "KEYPAIR_JWT"
    claims = jwt.decode(
        bearer(headers),
        rsa_key.public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    fingerprint = expected_fingerprint(rsa_key)
    assert claims == {
        "iss": f"MYORG-MYACCT.ALICE.{fingerprint}",
        "sub": "MYORG-MYACCT.ALICE",
        "iat": int(START),
        "exp": int(START) + 59 * 60,
    }
    assert jwt.get_unverified_header(bearer(headers))["alg"] == "RS256"
    assert credential.describe()["public_key_fingerprint"] == fingerprint
    assert credential.describe()["expires_at"].startswith("2027-01-15T08:")


@pytest.mark.parametrize(
    ("account", "in_claims"),
    [
        ("myorg-myacct", "MYORG-MYACCT"),
        ("myorg-my_acct", "MYORG-MY_ACCT"),
        ("xy12345.us-east-1", "XY12345"),
        ("xy12345.east-us-2.azure", "XY12345"),
        ("xy12345.us-east-1.privatelink", "XY12345"),
        ("xy12345-abcd.global", "XY12345"),
    ],
)
def test_the_account_in_jwt_claims_has_no_region_or_cloud(account: str, in_claims: str) -> None:
    assert jwt_account_name(account) == in_claims


async def test_an_encrypted_key_is_opened_with_its_passphrase(
    encrypted_key_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    credential = KeyPairJwtCredential(
        account="a",
        user="u",
        private_key_file=encrypted_key_file,
        passphrase="correct horse battery",
    )

    token = bearer(await credential.headers())

    jwt.decode(token, rsa_key.public_key(), algorithms=["RS256"], options={"verify_exp": False})
    assert "correct horse battery" in credential.secrets()
    assert token in credential.secrets()


def test_a_wrong_passphrase_is_reported_without_the_passphrase(encrypted_key_file: Path) -> None:
    with pytest.raises(CredentialError) as caught:
        KeyPairJwtCredential(
            account="a", user="u", private_key_file=encrypted_key_file, passphrase="wrong-guess"
        )

    assert "passphrase" in str(caught.value)
    assert "wrong-guess" not in str(caught.value)


def test_a_missing_passphrase_says_which_setting_to_fill(encrypted_key_file: Path) -> None:
    with pytest.raises(CredentialError, match="private_key_file_pwd"):
        KeyPairJwtCredential(account="a", user="u", private_key_file=encrypted_key_file)


def test_a_missing_key_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match=r"absent\.p8 does not exist"):
        KeyPairJwtCredential(account="a", user="u", private_key_file=tmp_path / "absent.p8")


def test_a_file_that_is_not_a_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n")
    with pytest.raises(CredentialError, match="not a PEM private key"):
        KeyPairJwtCredential(account="a", user="u", private_key_file=tmp_path / "notes.txt")


async def test_a_key_given_as_pem_text_works(key_file: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    credential = KeyPairJwtCredential(account="a", user="u", private_key=key_file.read_text())

    token = bearer(await credential.headers())

    jwt.decode(token, rsa_key.public_key(), algorithms=["RS256"], options={"verify_exp": False})
    assert key_file.read_text() in credential.secrets()
    assert "PRIVATE KEY" not in repr(credential.describe())


async def test_a_jwt_is_reused_until_five_minutes_before_expiry(key_file: Path) -> None:
    clock = FakeClock()
    credential = KeyPairJwtCredential(account="a", user="u", private_key_file=key_file, clock=clock)
    first = bearer(await credential.headers())

    clock.now = START + JWT_LIFETIME_SECONDS - JWT_RENEW_MARGIN_SECONDS - 1
    assert bearer(await credential.headers()) == first
    assert credential.tokens_issued == 1

    clock.now = START + JWT_LIFETIME_SECONDS - JWT_RENEW_MARGIN_SECONDS
    second = bearer(await credential.headers())

    assert second != first
    assert credential.tokens_issued == 2
    assert jwt.decode(second, options={"verify_signature": False})["iat"] == int(clock.now)


async def test_fifty_requests_at_expiry_mint_exactly_one_new_jwt(key_file: Path) -> None:
    clock = FakeClock()
    credential = KeyPairJwtCredential(account="a", user="u", private_key_file=key_file, clock=clock)
    old = bearer(await credential.headers())
    clock.now = START + JWT_LIFETIME_SECONDS

    results = await asyncio.gather(*(credential.headers() for _ in range(50)))

    tokens = {bearer(headers) for headers in results}
    assert credential.tokens_issued == 2
    assert len(tokens) == 1 and old not in tokens


async def test_many_callers_renewing_after_the_same_refusal_renew_once(key_file: Path) -> None:
    clock = FakeClock(tick=1.0)
    credential = KeyPairJwtCredential(account="a", user="u", private_key_file=key_file, clock=clock)
    refused = bearer(await credential.headers())

    await asyncio.gather(*(credential.renew(refused) for _ in range(10)))

    assert credential.tokens_issued == 2
    assert bearer(await credential.headers()) != refused


async def test_a_refused_jwt_is_renewed_once_and_the_request_replayed_once(
    key_file: Path, snowflake: FakeSnowflake
) -> None:
    credential = KeyPairJwtCredential(
        account="a", user="u", private_key_file=key_file, clock=FakeClock(tick=1.0)
    )
    first = bearer(await credential.headers())
    snowflake.refuse = lambda authorization: authorization == f"Bearer {first}"

    assert await post_all(credential, snowflake, b'{"stream": true}') == [200]
    assert len(snowflake.seen) == 2
    assert snowflake.seen[0].authorization == f"Bearer {first}"
    assert snowflake.seen[1].authorization != f"Bearer {first}"
    assert {seen.token_type for seen in snowflake.seen} == {"KEYPAIR_JWT"}
    assert snowflake.seen[1].body == b'{"stream": true}'
    assert credential.tokens_issued == 2


async def test_concurrent_requests_refused_together_share_one_renewal(
    key_file: Path, snowflake: FakeSnowflake
) -> None:
    credential = KeyPairJwtCredential(
        account="a", user="u", private_key_file=key_file, clock=FakeClock(tick=1.0)
    )
    first = bearer(await credential.headers())
    snowflake.refuse = lambda authorization: authorization == f"Bearer {first}"

    bodies = [json.dumps({"i": i}).encode() for i in range(20)]
    assert await post_all(credential, snowflake, *bodies) == [200] * 20
    assert credential.tokens_issued == 2
    assert len(snowflake.seen) == 40
    assert len({seen.authorization for seen in snowflake.seen}) == 2


def test_the_refusal_message_for_a_jwt_names_the_fingerprint_to_check(
    key_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    credential = KeyPairJwtCredential(
        account="xy12345.us-east-1", user="bob", private_key_file=key_file
    )

    message = credential.explain_refusal()

    assert expected_fingerprint(rsa_key) in message
    assert "XY12345.BOB" in message and "DESCRIBE USER bob" in message


# --- from configuration to credential -------------------------------------------------------------


async def test_a_key_pair_from_connections_toml_becomes_a_working_credential(
    tmp_path: Path, encrypted_key_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    home = tmp_path / "home"
    snowflake_home = home / ".snowflake"
    snowflake_home.mkdir(parents=True)
    (snowflake_home / "connections.toml").write_text(
        "[default]\n"
        'account = "myorg-myacct"\n'
        'user = "carol"\n'
        f'private_key_file = "{encrypted_key_file}"\n'
        'private_key_file_pwd = "correct horse battery"\n'
    )
    (snowflake_home / "connections.toml").chmod(0o600)
    connection = resolve_connection(CortexClaude(), {"HOME": str(home)})
    assert connection is not None

    credential = create_credential(connection, clock=FakeClock())
    claims = jwt.decode(
        bearer(await credential.headers()),
        rsa_key.public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )

    assert isinstance(credential, KeyPairJwtCredential)
    assert claims["sub"] == "MYORG-MYACCT.CAROL"


async def test_a_pat_file_from_the_environment_becomes_a_working_credential(tmp_path: Path) -> None:
    (tmp_path / "pat").write_text("pat-in-file")
    environ = {
        "HOME": str(tmp_path),
        "SNOWFLAKE_ACCOUNT": "myorg-myacct",
        "SNOWFLAKE_TOKEN_FILE_PATH": str(tmp_path / "pat"),
    }
    connection = resolve_connection(CortexClaude(), environ)
    assert connection is not None

    credential = create_credential(connection)

    assert isinstance(credential, PatCredential)
    assert bearer(await credential.headers()) == "pat-in-file"
    assert json.dumps(credential.describe())  # plain data, safe to log
