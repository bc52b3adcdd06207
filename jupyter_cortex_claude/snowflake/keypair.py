"""Key-pair authentication: a JWT signed with the user's RSA private key, minted and renewed here.

Snowflake checks the JWT against the public key set on the user (``RSA_PUBLIC_KEY``) by its
fingerprint (``RSA_PUBLIC_KEY_FP``), which goes into the ``iss`` claim ("Authenticating Snowflake
REST APIs"). PyJWT and cryptography are imported only when a key is loaded or a JWT signed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # PyJWT and cryptography cost ~70 ms to import; only key-pair auth needs them
    from cryptography.hazmat.primitives.asymmetric import rsa

from .authenticators import KEYPAIR_JWT
from .credentials import Clock, CredentialError, SnowflakeCredential

log = logging.getLogger(__name__)

# Snowflake accepts key-pair JWTs valid for at most one hour ("Authenticating Snowflake REST APIs").
JWT_LIFETIME_SECONDS = 59 * 60
# Mint a new JWT this long before the old one expires: a long request never starts on a dying one.
JWT_RENEW_MARGIN_SECONDS = 5 * 60


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
