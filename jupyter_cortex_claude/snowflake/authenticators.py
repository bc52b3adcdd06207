"""Which authenticator a connection uses: the kinds we know, the spellings users write, and the
kind inferred from the credential given when none is named.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError

PAT = "programmatic_access_token"
KEYPAIR_JWT = "snowflake_jwt"

OAUTH = "oauth"
PASSWORD = "snowflake"
PASSWORD_MFA = "username_password_mfa"
EXTERNAL_BROWSER = "externalbrowser"
# Logins the connector implements and the gateway hands to it (snowflake/session_credentials.py).
WORKLOAD_IDENTITY = "workload_identity"
OAUTH_AUTHORIZATION_CODE = "oauth_authorization_code"
OAUTH_CLIENT_CREDENTIALS = "oauth_client_credentials"
OKTA = "okta"  # written as the Okta URL, `https://<org>.okta.com`
# Found without configuration (snowflake/notebook_detection.py), never written by users.
SPCS_OAUTH = "spcs_oauth"
SNOWPARK_SESSION = "snowpark_session"

IMPLEMENTED_AUTHENTICATORS = frozenset(
    {
        PAT,
        KEYPAIR_JWT,
        OAUTH,
        PASSWORD,
        PASSWORD_MFA,
        EXTERNAL_BROWSER,
        WORKLOAD_IDENTITY,
        OAUTH_AUTHORIZATION_CODE,
        OAUTH_CLIENT_CREDENTIALS,
        OKTA,
    }
)
# These log in through the connector and identify the user themselves (from the token, the
# identity provider or the OAuth client): no `user` needed.
USERLESS_CONNECTOR_LOGINS = frozenset(
    {WORKLOAD_IDENTITY, OAUTH_AUTHORIZATION_CODE, OAUTH_CLIENT_CREDENTIALS}
)

# Spellings users write (the connector takes them case-insensitively) → our normalized kind.
AUTHENTICATOR_ALIASES: dict[str, str] = {
    "programmatic_access_token": PAT,
    "pat": PAT,
    "snowflake_jwt": KEYPAIR_JWT,
    "jwt": KEYPAIR_JWT,
    "keypair_jwt": KEYPAIR_JWT,
    "oauth": "oauth",
    "externalbrowser": "externalbrowser",
    "snowflake": "snowflake",
    "username_password_mfa": "username_password_mfa",
    "oauth_authorization_code": "oauth_authorization_code",
    "oauth_client_credentials": "oauth_client_credentials",
    "workload_identity": "workload_identity",
    "okta": OKTA,
}


def choose_authenticator(merged: dict[str, Any], origin: dict[str, str]) -> str:
    """The kind for merged connection settings; ``origin`` says which source gave each setting.

    A named authenticator must be known and implemented, else :class:`ConfigurationError`. Without
    one, the credential given decides: a private key means a key-pair JWT, anything else a PAT.
    """
    raw = merged.get("authenticator")
    if raw:
        name = str(raw).strip().lower()
        if name.startswith("https://"):
            name = OKTA  # the connector's native Okta SSO: the URL is the authenticator
        kind = AUTHENTICATOR_ALIASES.get(name)
        if kind is None:
            known = ", ".join(sorted(set(AUTHENTICATOR_ALIASES.values())))
            raise ConfigurationError(
                f"Unknown authenticator {raw!r} (from {origin['authenticator']}). Known: {known}."
            )
        if kind not in IMPLEMENTED_AUTHENTICATORS:
            raise ConfigurationError(
                f"The {raw!r} authenticator (from {origin['authenticator']}) is not supported. "
                "Supported: " + ", ".join(sorted(IMPLEMENTED_AUTHENTICATORS)) + "."
            )
        assert kind is not None
        return kind

    has_key = bool(merged.get("private_key_file") or merged.get("private_key"))
    has_token = bool(merged.get("token") or merged.get("token_file_path"))
    if has_key and has_token:
        # The credential from the higher-precedence source wins, so SNOWFLAKE_TOKEN can override a
        # key pair from connections.toml; at the same level the key pair wins, because a JWT can be
        # renewed.
        order = ["traitlets", "environment"]
        key_rank = min(
            _rank(origin, order, n) for n in ("private_key_file", "private_key") if n in origin
        )
        token_rank = min(
            _rank(origin, order, n) for n in ("token", "token_file_path") if n in origin
        )
        return PAT if token_rank < key_rank else KEYPAIR_JWT
    if has_key:
        return KEYPAIR_JWT
    # Without any credential the PAT check in connection._build_connection reports what is missing.
    return PAT


def _rank(origin: dict[str, str], order: list[str], name: str) -> int:
    label = origin[name]
    return order.index(label) if label in order else len(order)
