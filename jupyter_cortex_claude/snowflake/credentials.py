"""Snowflake credentials: one ``httpx.Auth`` per kind, behind one interface.

The Cortex client attaches a credential to its ``httpx.AsyncClient`` and never learns which kind it
is. Every credential answers two questions: "which headers, now?"
(:meth:`SnowflakeCredential.headers`, renewing first when the token is about to expire) and "this
token was refused, renew" (:meth:`SnowflakeCredential.renew`). The httpx auth flow ties them
together: attach the headers, and on a 401 renew once and replay the request once.

Kinds here: programmatic access tokens (:class:`PatCredential`) and key-pair JWTs
(:class:`KeyPairJwtCredential`). The others live beside them and override
:meth:`SnowflakeCredential._authorization_headers`, :meth:`SnowflakeCredential._needs_body` and
:meth:`SnowflakeCredential._is_refusal`: connector session tokens (``session_credentials.py``, sent
as ``Authorization: Snowflake Token="..."`` and expiring with HTTP 200 + code 390112), OAuth tokens
and the Snowflake Notebooks token file (``oauth.py``, ``notebook_identity.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

if TYPE_CHECKING:  # PyJWT and cryptography cost ~70 ms to import; only key-pair auth needs them
    from cryptography.hazmat.primitives.asymmetric import rsa

from .connection import KEYPAIR_JWT, PAT, ConfigurationError, SnowflakeConnection

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Snowflake accepts key-pair JWTs valid for at most one hour ("Authenticating Snowflake REST APIs").
JWT_LIFETIME_SECONDS = 59 * 60
# Mint a new JWT this long before the old one expires: a long request never starts on a dying one.
JWT_RENEW_MARGIN_SECONDS = 5 * 60


class CredentialError(ConfigurationError):
    """A credential cannot be loaded (a missing file, a wrong passphrase); never holds a secret."""


class SnowflakeCredential(httpx.Auth, ABC):
    """Headers for Snowflake REST calls, renewed when they expire or are refused."""

    kind: ClassVar[str]
    # Value of X-Snowflake-Authorization-Token-Type; Snowflake guesses the type when it is absent.
    token_type: ClassVar[str | None] = None

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        # The token a renewal was last started for: callers that saw the same refusal skip renewing
        # again, even when the renewal produced an identical token (a JWT minted in the same
        # second).
        self._last_refused: str | None = None

    # --- what callers use -------------------------------------------------------------------------

    async def headers(self) -> dict[str, str]:
        """Authorization headers to send now, renewing first if the token is near expiry."""
        return self._authorization_headers(await self._current_token())

    async def renew(self, failed_token: str | None = None) -> None:
        """Renew after Snowflake refused ``failed_token``. However many callers saw the same
        refusal, the renewal runs once: the others find the token already renewed and return."""
        async with self._lock:
            if failed_token is not None and (
                failed_token == self._last_refused or failed_token != self._peek_token()
            ):
                return
            self._last_refused = failed_token
            await self._renew_locked()

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What a person needs to debug authentication (kind, user, account, expiry): no secret."""

    @abstractmethod
    def secrets(self) -> list[str]:
        """Every secret string in use now, for log redaction and leak tests."""

    @abstractmethod
    def explain_refusal(self) -> str:
        """What to tell the user when Snowflake still refuses this credential after a renewal."""

    # --- httpx.Auth -------------------------------------------------------------------------------

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._current_token()
        request.headers.update(self._authorization_headers(token))
        response = yield request
        if self._needs_body(response):
            await response.aread()
        if not self._is_refusal(response):
            return
        await self.renew(token)
        renewed = await self._current_token()
        # A request whose body was streamed cannot be sent again; and re-sending the very token that
        # was just refused (a PAT with nothing to re-read) would only double the 401.
        if renewed == token or not isinstance(request.stream, httpx.ByteStream):
            return
        request.headers.update(self._authorization_headers(renewed))
        yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError(
            f"{type(self).__name__} renews tokens asynchronously: use it with httpx.AsyncClient."
        )

    # --- for subclasses ---------------------------------------------------------------------------

    def _authorization_headers(self, token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if self.token_type:
            headers["X-Snowflake-Authorization-Token-Type"] = self.token_type
        return headers

    def _needs_body(self, response: httpx.Response) -> bool:
        """Whether :meth:`_is_refusal` must see the body (session tokens' 200 + 390112)."""
        return self.requires_response_body

    def _is_refusal(self, response: httpx.Response) -> bool:
        return response.status_code == 401

    @abstractmethod
    async def _current_token(self) -> str:
        """The token to use now, refreshed first if it is stale."""

    @abstractmethod
    def _peek_token(self) -> str | None:
        """The token in use, without refreshing anything."""

    @abstractmethod
    async def _renew_locked(self) -> None:
        """Obtain a new token; called with the lock held."""


class PatCredential(SnowflakeCredential):
    """A programmatic access token, given directly or in a file.

    A PAT cannot be renewed by us. When it comes from a file, the file is re-read whenever its
    modification time changes and after every refusal, so a token rotated on disk is picked up
    without a restart. A token given directly wins over a file.
    """

    kind: ClassVar[str] = PAT
    token_type: ClassVar[str | None] = "PROGRAMMATIC_ACCESS_TOKEN"

    def __init__(
        self,
        token: str | None = None,
        token_file_path: str | os.PathLike[str] | None = None,
        *,
        user: str | None = None,
        account: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.user = user
        self.account = account
        self._token_file = (
            Path(token_file_path).expanduser() if token_file_path and not token else None
        )
        self._file_stamp: tuple[int, int] | None = None
        if token:
            self._token = token.strip()
        elif self._token_file is not None:
            self._token = self._read_token_file()
        else:
            raise CredentialError(
                "A programmatic access token is needed: give a token or a token file."
            )

    def _read_token_file(self) -> str:
        path = self._token_file
        assert path is not None
        try:
            info = path.stat()
            token = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise CredentialError(
                f"Token file {path} does not exist: create it with your programmatic access token, "
                "or fix token_file_path."
            ) from None
        except OSError as error:
            raise CredentialError(f"Cannot read token file {path}: {error.strerror}.") from None
        if not token:
            raise CredentialError(
                f"Token file {path} is empty: put your programmatic access token in it."
            )
        self._file_stamp = (info.st_mtime_ns, info.st_size)
        return token

    def _reload_if_changed(self, *, force: bool = False) -> None:
        if self._token_file is None:
            return
        try:
            info = self._token_file.stat()
        except OSError:
            log.warning("Token file %s has gone; keeping the token read before.", self._token_file)
            return
        if force or (info.st_mtime_ns, info.st_size) != self._file_stamp:
            try:
                self._token = self._read_token_file()
            except CredentialError as error:
                log.warning("%s Keeping the token read before.", error)
            else:
                log.debug("Re-read the programmatic access token from %s", self._token_file)

    async def _current_token(self) -> str:
        self._reload_if_changed()
        return self._token

    def _peek_token(self) -> str | None:
        return self._token

    async def _renew_locked(self) -> None:
        self._reload_if_changed(force=True)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "user": self.user,
            "account": self.account,
            "token_file_path": str(self._token_file) if self._token_file else None,
            "expires_at": None,
        }

    def secrets(self) -> list[str]:
        return [self._token]

    def explain_refusal(self) -> str:
        where = f"in {self._token_file}" if self._token_file else "configured"
        who = f" for user {self.user}" if self.user else ""
        return (
            f"Snowflake refused the programmatic access token{who} ({where}). It may have expired, "
            "been revoked, or be refused by a network or authentication policy. Create a new one "
            "in Snowsight (Settings → Authentication) or with "
            "ALTER USER ... ADD PROGRAMMATIC ACCESS TOKEN, and update "
            + (
                f"{self._token_file}."
                if self._token_file
                else "SNOWFLAKE_TOKEN or connections.toml."
            )
        )


def jwt_account_name(account: str) -> str:
    """The account as key-pair JWT claims want it: upper-case, without region, cloud or domain.

    ``myorg-myacct`` → ``MYORG-MYACCT``; the locator ``xy12345.us-east-1`` → ``XY12345``. For
    ``.global`` (replication) accounts, the part before the first ``-``, as the Snowflake connector
    does.
    """
    name = account.strip()
    if "://" in name:
        name = name.split("://", 1)[1]
    # Same rule as the connector's key-pair auth: drop region/cloud, or a .global account's suffix.
    name = name.partition("-")[0] if ".global" in name.lower() else name.partition(".")[0]
    return name.upper()


def public_key_fingerprint(private_key: rsa.RSAPrivateKey) -> str:
    """``SHA256:<base64>`` of the public key's DER SubjectPublicKeyInfo: Snowflake's
    RSA_PUBLIC_KEY_FP."""
    from cryptography.hazmat.primitives import serialization

    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def load_private_key(
    *,
    private_key_file: str | os.PathLike[str] | None = None,
    private_key: str | bytes | None = None,
    passphrase: str | None = None,
) -> rsa.RSAPrivateKey:
    """An RSA private key from a PEM file or PEM text (PKCS#8 or PKCS#1, encrypted or not).

    Errors say which setting to fix and never include the key or the passphrase.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if private_key:
        data = private_key.encode("utf-8") if isinstance(private_key, str) else private_key
        where = "the private key text"
    elif private_key_file:
        path = Path(private_key_file).expanduser()
        where = f"private key file {path}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CredentialError(
                f"Private key file {path} does not exist: fix private_key_file (or "
                "SNOWFLAKE_PRIVATE_KEY_FILE)."
            ) from None
        except OSError as error:
            raise CredentialError(
                f"Cannot read private key file {path}: {error.strerror}."
            ) from None
    else:
        raise CredentialError(
            "Key-pair authentication needs a private key file or the key's PEM text."
        )

    password = passphrase.encode("utf-8") if passphrase else None
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=password)
        else:
            # The Snowflake connector also takes the key as base64 DER text.
            key = serialization.load_der_private_key(base64.b64decode(data), password=password)
    except TypeError:
        # cryptography raises TypeError for a missing or superfluous password.
        if password is None:
            raise CredentialError(
                f"{where.capitalize()} is encrypted: set its passphrase in private_key_file_pwd "
                "(or SNOWFLAKE_PRIVATE_KEY_FILE_PWD)."
            ) from None
        raise CredentialError(
            f"{where.capitalize()} is not encrypted but a passphrase was given: remove "
            "private_key_file_pwd."
        ) from None
    except ValueError:
        if password is not None:
            raise CredentialError(
                f"Could not decrypt {where}: the passphrase (private_key_file_pwd) is wrong, or "
                "the file is not a PEM private key."
            ) from None
        raise CredentialError(
            f"{where.capitalize()} is not a PEM private key (expected -----BEGIN PRIVATE KEY-----)."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialError(
            f"{where.capitalize()} is not an RSA key; Snowflake key-pair auth uses RSA."
        )
    return key


class KeyPairJwtCredential(SnowflakeCredential):
    """A JWT signed with the user's RSA private key (RS256), minted here and renewed before it
    expires."""

    kind: ClassVar[str] = KEYPAIR_JWT
    token_type: ClassVar[str | None] = "KEYPAIR_JWT"

    def __init__(
        self,
        *,
        account: str,
        user: str,
        private_key_file: str | os.PathLike[str] | None = None,
        private_key: str | bytes | None = None,
        passphrase: str | None = None,
        clock: Clock = time.time,
        lifetime: float = JWT_LIFETIME_SECONDS,
        renew_margin: float = JWT_RENEW_MARGIN_SECONDS,
    ) -> None:
        super().__init__(clock=clock)
        self.account = account
        self.user = user
        self.private_key_file = (
            str(private_key_file) if private_key_file and not private_key else None
        )
        self._private_key_text = private_key if isinstance(private_key, str) else None
        self._passphrase = passphrase
        self._key = load_private_key(
            private_key_file=private_key_file, private_key=private_key, passphrase=passphrase
        )
        self.fingerprint = public_key_fingerprint(self._key)
        self.qualified_user = f"{jwt_account_name(account)}.{user.upper()}"
        self._lifetime = lifetime
        self._renew_margin = renew_margin
        self._jwt: str | None = None
        self._expires_at = 0.0
        self.tokens_issued = 0

    def _is_fresh(self) -> bool:
        return self._jwt is not None and self._clock() < self._expires_at - self._renew_margin

    async def _current_token(self) -> str:
        if not self._is_fresh():
            async with self._lock:
                if not self._is_fresh():
                    await self._renew_locked()
        assert self._jwt is not None
        return self._jwt

    def _peek_token(self) -> str | None:
        return self._jwt

    async def _renew_locked(self) -> None:
        issued_at = int(self._clock())
        # Signing takes about a millisecond: off the event loop, so streams keep flowing meanwhile.
        self._jwt = await asyncio.to_thread(self._sign, issued_at)
        self._expires_at = issued_at + self._lifetime
        self.tokens_issued += 1
        log.debug(
            "Minted a key-pair JWT for %s, valid until %s", self.qualified_user, self._expiry_iso()
        )

    def _sign(self, issued_at: int) -> str:
        claims = {
            "iss": f"{self.qualified_user}.{self.fingerprint}",
            "sub": self.qualified_user,
            "iat": issued_at,
            "exp": int(issued_at + self._lifetime),
        }
        import jwt

        return jwt.encode(claims, self._key, algorithm="RS256")

    def _expiry_iso(self) -> str | None:
        if self._jwt is None:
            return None
        return datetime.fromtimestamp(self._expires_at, tz=timezone.utc).isoformat()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "user": self.user,
            "account": self.account,
            "jwt_subject": self.qualified_user,
            "public_key_fingerprint": self.fingerprint,
            "private_key_file": self.private_key_file,
            "expires_at": self._expiry_iso(),
        }

    def secrets(self) -> list[str]:
        found = [self._jwt, self._passphrase, self._private_key_text]
        return [secret for secret in found if secret]

    def explain_refusal(self) -> str:
        return (
            f"Snowflake refused the key-pair JWT for {self.qualified_user} (error 390144 means an "
            f"invalid JWT). Check that DESCRIBE USER {self.user} shows RSA_PUBLIC_KEY_FP = "
            f"{self.fingerprint} (else ALTER USER ... SET RSA_PUBLIC_KEY to this key's public "
            f"half), that the account {jwt_account_name(self.account)} is your org-account name or "
            "locator without region, and that this machine's clock is right."
        )


def create_credential(
    connection: SnowflakeConnection, *, clock: Clock = time.time
) -> SnowflakeCredential:
    """The credential for a resolved connection; :class:`CredentialError` if it cannot load."""
    if connection.connector_login or connection.authenticator not in (PAT, KEYPAIR_JWT):
        # OAuth, connector sessions and Snowflake Notebooks live in their own modules.
        from .identities import create_identity_credential

        return create_identity_credential(connection, clock=clock)
    if connection.authenticator == PAT:
        return PatCredential(
            connection.token,
            connection.token_file_path,
            user=connection.user,
            account=connection.account,
            clock=clock,
        )
    if connection.authenticator == KEYPAIR_JWT:
        if not connection.account or not connection.user:
            raise CredentialError("Key-pair authentication needs both the account and the user.")
        return KeyPairJwtCredential(
            account=connection.account,
            user=connection.user,
            private_key_file=connection.private_key_file,
            private_key=connection.private_key,
            passphrase=connection.private_key_file_pwd,
            clock=clock,
        )
    raise CredentialError(f"Unknown authenticator {connection.authenticator!r}.")
