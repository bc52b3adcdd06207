"""Where to connect to Snowflake, and as whom.

Each setting is taken from the first of these that has it, **field by field**:

1. a traitlet set explicitly (``c.CortexClaude.account = ...`` or ``--CortexClaude.account=...``);
2. ``SNOWFLAKE_CONNECTIONS_<NAME>_<KEY>`` for the chosen connection (the Snowflake CLI's override);
3. a ``SNOWFLAKE_*`` environment variable (``SNOWFLAKE_ACCOUNT``, ``SNOWFLAKE_USER``,
   ``SNOWFLAKE_ROLE``, ``SNOWFLAKE_HOST``, ``SNOWFLAKE_PORT``, ``SNOWFLAKE_PROTOCOL``,
   ``SNOWFLAKE_AUTHENTICATOR``, ``SNOWFLAKE_TOKEN`` or ``SNOWFLAKE_PAT``,
   ``SNOWFLAKE_TOKEN_FILE_PATH``, ``SNOWFLAKE_PRIVATE_KEY_FILE`` or ``SNOWFLAKE_PRIVATE_KEY_PATH``,
   ``SNOWFLAKE_PRIVATE_KEY_FILE_PWD`` or ``SNOWFLAKE_PRIVATE_KEY_PASSPHRASE``,
   ``SNOWFLAKE_PRIVATE_KEY_RAW``);
4. the chosen named connection: ``SNOWFLAKE_CONNECTIONS``, else ``connections.toml``, else
   ``[connections.<name>]`` in ``config.toml``, as the Snowflake connector reads them (found and
   read by :mod:`.connections_toml`);
5. defaults: host ``<account>.snowflakecomputing.com``, protocol ``https``, the authenticator
   inferred from the credential given (a private key → key-pair JWT, a token → programmatic access
   token).

With no account and no host anywhere, :func:`resolve_connection` returns ``None`` and the product
serves the offline demo.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..config import CortexClaude
from .authenticators import (
    KEYPAIR_JWT,
    OAUTH,
    OAUTH_CLIENT_CREDENTIALS,
    OKTA,
    PASSWORD,
    PASSWORD_MFA,
    PAT,
    SNOWPARK_SESSION,
    SPCS_OAUTH,
    WORKLOAD_IDENTITY,
    choose_authenticator,
)
from .connections_toml import CONNECTOR_OPTIONS, expand_user, read_named_connection
from .errors import ConfigurationError
from .notebook_detection import active_snowpark_session, container_token_file

CONNECTION_FIELDS: tuple[str, ...] = (
    "account",
    "user",
    "role",
    "host",
    "port",
    "protocol",
    "authenticator",
    "token",
    "token_file_path",
    "private_key_file",
    "private_key_file_pwd",
    "private_key",
    "password",
    "passcode",
)

ENVIRONMENT_VARIABLES: dict[str, tuple[str, ...]] = {
    "account": ("SNOWFLAKE_ACCOUNT",),
    "user": ("SNOWFLAKE_USER",),
    "role": ("SNOWFLAKE_ROLE",),
    "host": ("SNOWFLAKE_HOST",),
    "port": ("SNOWFLAKE_PORT",),
    "protocol": ("SNOWFLAKE_PROTOCOL",),
    "authenticator": ("SNOWFLAKE_AUTHENTICATOR",),
    "token": ("SNOWFLAKE_TOKEN", "SNOWFLAKE_PAT"),
    "token_file_path": ("SNOWFLAKE_TOKEN_FILE_PATH",),
    "private_key_file": ("SNOWFLAKE_PRIVATE_KEY_FILE", "SNOWFLAKE_PRIVATE_KEY_PATH"),
    "private_key_file_pwd": ("SNOWFLAKE_PRIVATE_KEY_FILE_PWD", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
    "private_key": ("SNOWFLAKE_PRIVATE_KEY_RAW",),
    "password": ("SNOWFLAKE_PASSWORD",),
    "passcode": ("SNOWFLAKE_PASSCODE",),
    # The connector's own options (OAuth flows, workload identity): SNOWFLAKE_<NAME>.
    **{option: (f"SNOWFLAKE_{option.upper()}",) for option in CONNECTOR_OPTIONS},
}
WORKLOAD_IDENTITY_PROVIDERS = ("AWS", "AZURE", "GCP", "OIDC")

SNOWFLAKE_DOMAIN = ".snowflakecomputing.com"


@dataclass(frozen=True, kw_only=True)
class SnowflakeConnection:
    """A resolved Snowflake endpoint and identity. Secrets are left out of ``repr`` and
    ``describe``."""

    account: str | None
    user: str | None
    role: str | None
    host: str
    port: int | None
    protocol: str
    authenticator: str
    token: str | None = field(default=None, repr=False)
    token_file_path: str | None = None
    private_key_file: str | None = None
    private_key_file_pwd: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    source: str = "defaults"
    password: str | None = field(default=None, repr=False)
    passcode: str | None = field(default=None, repr=False)
    # Log in through the Snowflake connector and send its session token, even for PAT/JWT/OAuth.
    connector_login: bool = False
    # Handed to the connector's login as they are (connections_toml.CONNECTOR_OPTIONS; the Okta
    # URL as "authenticator"); may hold a client secret, so never shown.
    connector_options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{self.protocol}://{host}{port}"

    def describe(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "user": self.user,
            "role": self.role,
            "host": self.host,
            "base_url": self.base_url,
            "authenticator": self.authenticator,
            "token_file_path": self.token_file_path,
            "private_key_file": self.private_key_file,
            "source": self.source,
        }


def resolve_connection(
    config: CortexClaude, environ: Mapping[str, str] = os.environ
) -> SnowflakeConnection | None:
    """Merge traitlets, environment and connections.toml into one connection (see the module
    docstring).

    Returns None when no account or host is configured anywhere. Raises :class:`ConfigurationError`
    when one is, but the settings cannot work (no credential, an unknown authenticator, a missing
    entry).
    """
    named = read_named_connection(config, environ)
    overrides = [layer for layer in named if layer[0].startswith("SNOWFLAKE_CONNECTIONS_")]
    entries = [layer for layer in named if layer not in overrides]
    layers: list[tuple[str, dict[str, Any]]] = [
        ("traitlets", _explicit_traitlets(config)),
        *overrides,
        ("environment", _environment_settings(environ)),
        *entries,
    ]

    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in (*CONNECTION_FIELDS, *CONNECTOR_OPTIONS):
        for label, settings in layers:
            if settings.get(name) not in (None, ""):
                merged[name] = settings[name]
                origin[name] = label
                break

    if not merged.get("account") and not merged.get("host"):
        if any(merged.get(name) for name in ("token", "token_file_path", "private_key_file")):
            credential_source = next(
                origin[name]
                for name in ("token", "token_file_path", "private_key_file")
                if name in origin
            )
            raise ConfigurationError(
                f"A Snowflake credential is configured (from {credential_source}) but no account: "
                "set SNOWFLAKE_ACCOUNT, `account` in connections.toml, or c.CortexClaude.account "
                "(e.g. myorg-myaccount)."
            )
        # A warehouse-runtime Snowflake Notebook: the kernel's own Snowpark session.
        session = active_snowpark_session()
        if session is not None:
            return _snowpark_connection(session)
        return None

    used_sources = [label for label, _ in layers if label in origin.values()]
    return _build_connection(
        merged,
        origin,
        source=", ".join(used_sources) or "defaults",
        environ=environ,
        container_token=container_token_file(environ, config.spcs_token_path),
        connector_login=config.connector_login,
    )


def _snowpark_connection(session: Any) -> SnowflakeConnection:
    connection = session.connection
    return SnowflakeConnection(
        account=getattr(connection, "account", None),
        user=getattr(connection, "user", None),
        role=getattr(connection, "role", None),
        host=str(getattr(connection, "host", "") or ""),
        port=getattr(connection, "port", None),
        protocol=str(getattr(connection, "protocol", None) or "https"),
        authenticator=SNOWPARK_SESSION,
        source="the notebook's active Snowpark session",
    )


def _build_connection(
    merged: dict[str, Any],
    origin: dict[str, str],
    *,
    source: str,
    environ: Mapping[str, str],
    container_token: str | None = None,
    connector_login: bool = False,
) -> SnowflakeConnection:
    account = _normalize_account(merged.get("account"))
    protocol = str(merged.get("protocol") or "https").lower()
    port = _parse_port(merged.get("port"), origin.get("port"))
    host = str(merged["host"]).strip() if merged.get("host") else None
    if host and "://" in host:
        # A full URL in `host` (handy for an emulator) also carries protocol and port.
        parts = urlsplit(host)
        host = parts.hostname or ""
        protocol = parts.scheme.lower()
        port = parts.port or port
    if not host:
        assert account is not None  # resolve_connection returned None when both were missing
        host = account_host(account)
    if protocol not in ("https", "http"):
        raise ConfigurationError(
            f"protocol {protocol!r} (from {origin.get('protocol')}) is not supported: use https "
            "(or http for a local emulator)."
        )

    token = merged.get("token") or None
    token_file_path = _expand_path(merged.get("token_file_path"), environ)
    private_key_file = _expand_path(merged.get("private_key_file"), environ)
    private_key = merged.get("private_key") or None
    authenticator = choose_authenticator(merged, origin)

    user = merged.get("user") or None
    connector_options = {name: merged[name] for name in CONNECTOR_OPTIONS if name in merged}
    _check_connector_login(authenticator, merged, origin, user, connector_options)
    if authenticator == PAT and not (token or token_file_path) and merged.get("password"):
        authenticator = PASSWORD
    if (
        authenticator == PAT
        and not (token or token_file_path)
        and container_token
        and "authenticator" not in origin
    ):
        # Inside Snowpark Container Services with nothing configured: the container's own token.
        authenticator = SPCS_OAUTH
        token_file_path = container_token
        source = f"{source}; Snowpark Container Services token file"
    if authenticator == OAUTH and not (token or token_file_path):
        raise ConfigurationError(
            "OAuth authentication needs an access token: set SNOWFLAKE_TOKEN, `token` or "
            "`token_file_path` in connections.toml, or c.CortexClaude.token_file_path."
        )
    if authenticator in (PASSWORD, PASSWORD_MFA) and not (merged.get("password") and user):
        raise ConfigurationError(
            f"The {authenticator} login needs the user and a password: set SNOWFLAKE_USER and "
            "SNOWFLAKE_PASSWORD, or `user` and `password` in connections.toml."
        )
    if authenticator == PAT and not (token or token_file_path):
        raise ConfigurationError(
            f"Snowflake account {account or host!r} is configured without a credential. Add a "
            "programmatic access token (SNOWFLAKE_TOKEN, `token` or `token_file_path` in "
            "connections.toml, or c.CortexClaude.token_file_path), or a key pair "
            "(SNOWFLAKE_PRIVATE_KEY_FILE and SNOWFLAKE_USER), a password (SNOWFLAKE_PASSWORD), "
            "or authenticator = externalbrowser for SSO."
        )
    if authenticator == KEYPAIR_JWT:
        if not (private_key_file or private_key):
            raise ConfigurationError(
                "Key-pair authentication (snowflake_jwt) needs a private key: set "
                "SNOWFLAKE_PRIVATE_KEY_FILE, `private_key_file` in connections.toml, or "
                "c.CortexClaude.private_key_file."
            )
        if not user:
            raise ConfigurationError(
                "Key-pair authentication (snowflake_jwt) needs the Snowflake user the public key "
                "belongs to: set SNOWFLAKE_USER, `user` in connections.toml, or "
                "c.CortexClaude.user."
            )
        if not account:
            raise ConfigurationError(
                "Key-pair authentication (snowflake_jwt) needs the account identifier, which goes "
                "into the JWT: set SNOWFLAKE_ACCOUNT, `account` in connections.toml, or "
                "c.CortexClaude.account."
            )

    return SnowflakeConnection(
        account=account,
        user=user,
        role=merged.get("role") or None,
        host=host,
        port=port,
        protocol=protocol,
        authenticator=authenticator,
        token=token,
        token_file_path=token_file_path,
        private_key_file=private_key_file,
        private_key_file_pwd=merged.get("private_key_file_pwd") or None,
        private_key=private_key,
        source=source,
        password=merged.get("password") or None,
        passcode=str(merged["passcode"]) if merged.get("passcode") else None,
        connector_login=connector_login,
        connector_options=connector_options,
    )


def _check_connector_login(
    authenticator: str,
    merged: dict[str, Any],
    origin: dict[str, str],
    user: str | None,
    options: dict[str, Any],
) -> None:
    """What the connector's other logins need, said before the first request instead of after."""
    if authenticator == OKTA:
        options["authenticator"] = str(merged["authenticator"]).strip()  # the Okta URL
        if not (user and merged.get("password")):
            raise ConfigurationError(
                "Okta login (authenticator = an https://<org>.okta.com URL) needs the user and "
                "the Okta password: set `user` and `password` in the connection (or "
                "SNOWFLAKE_USER and SNOWFLAKE_PASSWORD)."
            )
    elif authenticator == OAUTH_CLIENT_CREDENTIALS:
        missing = [k for k in ("oauth_client_id", "oauth_client_secret") if not options.get(k)]
        if missing:
            raise ConfigurationError(
                "The oauth_client_credentials login needs "
                + " and ".join(missing)
                + " (and oauth_token_request_url for an identity provider other than Snowflake) "
                "in the connection, or SNOWFLAKE_"
                + "/SNOWFLAKE_".join(m.upper() for m in missing)
                + "."
            )
    elif authenticator == WORKLOAD_IDENTITY:
        provider = str(options.get("workload_identity_provider") or "").upper()
        if provider not in WORKLOAD_IDENTITY_PROVIDERS:
            raise ConfigurationError(
                f"The workload_identity login needs workload_identity_provider = one of "
                f"{', '.join(WORKLOAD_IDENTITY_PROVIDERS)} (from "
                f"{origin.get('workload_identity_provider', 'nowhere')}: "
                f"{options.get('workload_identity_provider')!r})."
            )
        options["workload_identity_provider"] = provider


def account_host(account: str) -> str:
    """``<account>.snowflakecomputing.com``, lower-case, with ``_`` written as ``-``.

    Snowflake's account-identifier rules ask for LDH host names (RFC 952) and accept the hyphen form
    for account names with underscores; underscores in a host name trip TLS wildcard matching in
    some clients.
    """
    return account.lower().replace("_", "-") + SNOWFLAKE_DOMAIN


def _normalize_account(account: Any) -> str | None:
    if not account:
        return None
    value = str(account).strip()
    if "://" in value:
        value = urlsplit(value).hostname or value
    if value.lower().endswith(SNOWFLAKE_DOMAIN):
        value = value[: -len(SNOWFLAKE_DOMAIN)]
    return value or None


def _parse_port(value: Any, source: str | None) -> int | None:
    if value in (None, "", 0):
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"port {value!r} (from {source}) is not a number.") from None
    if not 0 < port < 65536:
        raise ConfigurationError(f"port {port} (from {source}) is out of range.")
    return port


def _expand_path(value: Any, environ: Mapping[str, str]) -> str | None:
    if not value:
        return None
    return str(expand_user(str(value), environ))


def _explicit_traitlets(config: CortexClaude) -> dict[str, Any]:
    """Connection traitlets the user set, told apart from defaults.

    A traitlet counts as set when a config file or the command line names it, or when its value
    differs from the default (set in code). Empty strings and port 0 mean "not set" whatever their
    origin.
    """
    configured: set[str] = set()
    for cls in type(config).mro():
        section_name = getattr(cls, "__name__", "")
        if section_name in config.config:
            configured.update(config.config[section_name].keys())
    settings: dict[str, Any] = {}
    for name in CONNECTION_FIELDS:
        value = getattr(config, name)
        if value in ("", 0, None):
            continue
        default = config.trait_defaults(name)
        if name in configured or value != default:
            settings[name] = value
    return settings


def _environment_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name, variables in ENVIRONMENT_VARIABLES.items():
        for variable in variables:
            value = environ.get(variable, "").strip()
            if value:
                settings[name] = value
                break
    return settings
