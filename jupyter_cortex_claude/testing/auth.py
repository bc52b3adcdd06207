"""Snowflake REST authentication as the emulator enforces it: PATs, key-pair JWTs, session tokens.

Rules from Snowflake's "Authenticating Snowflake REST APIs" page: only ``Authorization: Bearer``
(the Anthropic SDK's ``x-api-key`` is ignored), an optional ``X-Snowflake-Authorization-Token-Type``
that must match the token, and key-pair JWTs whose ``iss``/``sub`` name the account, user and key
fingerprint.
Error messages never contain the token itself.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .refusals import JWT_INVALID, CortexRefusal

TOKEN_TYPES = ("PROGRAMMATIC_ACCESS_TOKEN", "KEYPAIR_JWT", "OAUTH")
JWT_MAX_LIFETIME = 3600
EXPIRED_SESSION = "EXPIRED_SESSION"  # what authenticate() returns for the 200 + 390112 quirk
CLOCK_SKEW = 60


def public_key_fingerprint(public_key_pem: bytes | str) -> str:
    """``SHA256:<base64 of the SHA-256 of the public key's DER SubjectPublicKeyInfo>``."""
    data = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    key = serialization.load_pem_public_key(data)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def jwt_account(account: str) -> str:
    # The JWT names the account without region/cloud suffix: "xy12345.us-east-1" -> "XY12345".
    return account.split(".")[0].upper()


@dataclass(frozen=True)
class KeyPair:
    """An RSA key pair for key-pair JWT tests. Unencrypted PKCS#8 private key, PEM public key."""

    private_key_pem: bytes
    public_key_pem: bytes
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", public_key_fingerprint(self.public_key_pem))

    @classmethod
    def generate(cls, bits: int = 2048) -> KeyPair:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private, public)

    def encrypted_private_key_pem(self, passphrase: bytes | str) -> bytes:
        secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        )

    def jwt(self, account: str, user: str, *, lifetime: int = 3540, **overrides: Any) -> str:
        """A key-pair JWT as Snowflake documents it; ``overrides`` replace or add claims."""
        qualified = f"{jwt_account(account)}.{user.upper()}"
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"{qualified}.{self.fingerprint}",
            "sub": qualified,
            "iat": now,
            "exp": now + lifetime,
        }
        claims.update(overrides)
        return jwt.encode(claims, self.private_key_pem, algorithm="RS256")


@dataclass
class _RegisteredKey:
    public_key_pem: bytes
    user: str


class Credentials:
    """The tokens an emulated account accepts. Thread-safe: tests revoke while requests run."""

    def __init__(self, account: str, user: str, pats: Iterable[str]) -> None:
        self.account = jwt_account(account)
        self.user = user.upper()
        self._lock = threading.Lock()
        self._pats = set(pats)
        self._revoked: set[str] = set()
        self._session_tokens: set[str] = set()
        self._expired_sessions: set[str] = set()
        # Session tokens issued by a login expire on schedule (time.time() after which 390112).
        self._session_expiry: dict[str, float] = {}
        self._revoked_sessions: set[str] = set()
        self._oauth_tokens: set[str] = set()
        self._keys: dict[str, _RegisteredKey] = {}

    def add_pat(self, token: str) -> None:
        with self._lock:
            self._pats.add(token)
            self._revoked.discard(token)

    def revoke(self, token: str) -> None:
        with self._lock:
            self._revoked.add(token)

    def add_session_token(self, token: str, expires_at: float | None = None) -> None:
        with self._lock:
            self._session_tokens.add(token)
            self._expired_sessions.discard(token)
            self._revoked_sessions.discard(token)
            if expires_at is None:
                self._session_expiry.pop(token, None)
            else:
                self._session_expiry[token] = expires_at

    def revoke_session_token(self, token: str) -> None:
        """A logged-out or killed session: its token gets a 401, not the 390112 quirk."""
        with self._lock:
            self._revoked_sessions.add(token)

    def add_oauth_token(self, token: str) -> None:
        with self._lock:
            self._oauth_tokens.add(token)
            self._revoked.discard(token)

    def is_oauth_token(self, token: str) -> bool:
        with self._lock:
            return token in self._oauth_tokens and token not in self._revoked

    def is_pat(self, token: str) -> bool:
        with self._lock:
            return token in self._pats and token not in self._revoked

    def check_jwt(self, token: str) -> None:
        """Raise :class:`CortexRefusal` (401, code 390144) unless the key-pair JWT is valid."""
        self._check_jwt(token)

    def expire_session_token(self, token: str) -> None:
        with self._lock:
            self._expired_sessions.add(token)

    def register_public_key(self, public_key_pem: bytes | str, user: str | None = None) -> None:
        data = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        with self._lock:
            self._keys[public_key_fingerprint(data)] = _RegisteredKey(
                data, (user or self.user).upper()
            )

    def authenticate(self, headers: Mapping[str, str]) -> str:
        """Check the credential; returns its kind, or ``EXPIRED_SESSION`` for the 200 quirk."""
        authorization = headers.get("Authorization", "").strip()
        declared = headers.get("X-Snowflake-Authorization-Token-Type")
        if not authorization:
            hint = (
                " (x-api-key is not accepted; use Authorization: Bearer)"
                if headers.get("x-api-key")
                else ""
            )
            raise CortexRefusal(401, f"Missing Authorization header{hint}.")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme == "Snowflake" and credential.startswith('Token="') and credential.endswith('"'):
            return self._check_session_token(credential[len('Token="') : -1])
        if scheme.lower() != "bearer" or not credential:
            raise CortexRefusal(401, "Authorization header must be 'Bearer <token>'.")
        if declared is not None and declared not in TOKEN_TYPES:
            raise CortexRefusal(
                401, f"Unsupported X-Snowflake-Authorization-Token-Type {declared!r}."
            )
        kind = "KEYPAIR_JWT" if credential.count(".") == 2 else "PROGRAMMATIC_ACCESS_TOKEN"
        with self._lock:
            if credential in self._oauth_tokens:
                kind = "OAUTH"
        if kind == "OAUTH" or declared == "OAUTH":
            return self._check_oauth(credential, declared)
        if declared is not None and declared != kind:
            raise CortexRefusal(
                401,
                f"X-Snowflake-Authorization-Token-Type is {declared} but the token is not of that "
                "kind.",
            )
        if kind == "KEYPAIR_JWT":
            self._check_jwt(credential)
            return kind
        with self._lock:
            known = credential in self._pats
            revoked = credential in self._revoked
        if revoked:
            raise CortexRefusal(401, "Programmatic access token is invalid or has been revoked.")
        if not known:
            raise CortexRefusal(401, "Invalid OAuth access token or programmatic access token.")
        return kind

    def _check_oauth(self, token: str, declared: str | None) -> str:
        with self._lock:
            known = token in self._oauth_tokens
            revoked = token in self._revoked
        if declared is not None and declared != "OAUTH":
            raise CortexRefusal(
                401, f"X-Snowflake-Authorization-Token-Type is {declared} but the token is OAuth."
            )
        if revoked:
            raise CortexRefusal(401, "OAuth access token is invalid or has been revoked.")
        if not known:
            with self._lock:
                other_kind = token in self._pats or token.count(".") == 2
            if other_kind:
                raise CortexRefusal(
                    401,
                    "X-Snowflake-Authorization-Token-Type is OAUTH but the token is not of that "
                    "kind.",
                )
            raise CortexRefusal(401, "Invalid OAuth access token.")
        return "OAUTH"

    def _check_session_token(self, token: str) -> str:
        with self._lock:
            known = token in self._session_tokens
            revoked = token in self._revoked_sessions
            expired = token in self._expired_sessions
            expires_at = self._session_expiry.get(token)
        if not known or revoked:
            raise CortexRefusal(401, "Session token is invalid.")
        if expired or (expires_at is not None and time.time() >= expires_at):
            return EXPIRED_SESSION
        return "SESSION"

    def _check_jwt(self, token: str) -> None:
        def invalid(reason: str) -> CortexRefusal:
            return CortexRefusal(401, f"JWT token is invalid: {reason}", JWT_INVALID)

        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise invalid(f"token is not a well-formed JWT ({type(error).__name__})") from None
        if header.get("alg") != "RS256":
            raise invalid(f"alg must be RS256, got {header.get('alg')!r}")
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise invalid("iss claim is missing")
        qualified, separator, fingerprint_b64 = issuer.rpartition(".SHA256:")
        account, dot, user = qualified.partition(".")
        if not separator or not dot or not user:
            raise invalid(f"iss {issuer!r} is not <ACCOUNT>.<USER>.SHA256:<public key fingerprint>")
        expected_account = self.account
        if account != expected_account:
            case = " (must be upper-case)" if account.upper() == expected_account else ""
            raise invalid(
                f"iss names account {account!r}, expected {expected_account!r}{case}; use the "
                "account identifier without region or cloud suffix"
            )
        if "." in user:
            raise invalid(
                f"iss {issuer!r} has more than <ACCOUNT>.<USER> before the fingerprint; give "
                "the account without region or cloud suffix"
            )
        if user != user.upper():
            raise invalid(f"iss names user {user!r}, which must be upper-case")
        fingerprint = "SHA256:" + fingerprint_b64
        with self._lock:
            registered = self._keys.get(fingerprint)
        if registered is None:
            raise invalid(
                f"iss names public key fingerprint {fingerprint}, which is not registered for "
                f"user {user}"
            )
        if registered.user != user:
            raise invalid(f"iss names user {user!r}, but the key is registered for another user")
        expected_subject = f"{account}.{user}"
        if claims.get("sub") != expected_subject:
            raise invalid(f"sub is {claims.get('sub')!r}, expected {expected_subject!r}")
        try:
            jwt.decode(
                token,
                registered.public_key_pem,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidSignatureError:
            raise invalid("signature does not verify against the public key in iss") from None
        except jwt.PyJWTError as error:
            raise invalid(f"could not verify the token ({type(error).__name__})") from None
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int) or isinstance(issued, bool):
            raise invalid("iat claim is missing or not an integer")
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise invalid("exp claim is missing or not an integer")
        if expires - issued > JWT_MAX_LIFETIME:
            raise invalid(f"exp is {expires - issued} s after iat; at most 3600 s is allowed")
        now = time.time()
        if expires < now - CLOCK_SKEW:
            raise invalid(f"exp has passed ({int(now - expires)} s ago)")
        if issued > now + CLOCK_SKEW:
            raise invalid(f"iat is {int(issued - now)} s in the future (check the clock)")
