"""Where to connect to Snowflake, and as whom.

Each setting is taken from the first of these that has it, **field by field**:

1. a traitlet set explicitly (``c.CortexClaude.account = ...`` or ``--CortexClaude.account=...``);
2. a ``SNOWFLAKE_*`` environment variable (``SNOWFLAKE_ACCOUNT``, ``SNOWFLAKE_USER``,
   ``SNOWFLAKE_ROLE``, ``SNOWFLAKE_HOST``, ``SNOWFLAKE_PORT``, ``SNOWFLAKE_PROTOCOL``,
   ``SNOWFLAKE_AUTHENTICATOR``, ``SNOWFLAKE_TOKEN`` or ``SNOWFLAKE_PAT``,
   ``SNOWFLAKE_TOKEN_FILE_PATH``, ``SNOWFLAKE_PRIVATE_KEY_FILE`` or ``SNOWFLAKE_PRIVATE_KEY_PATH``,
   ``SNOWFLAKE_PRIVATE_KEY_FILE_PWD`` or ``SNOWFLAKE_PRIVATE_KEY_PASSPHRASE``,
   ``SNOWFLAKE_PRIVATE_KEY_RAW``);
3. the chosen entry of ``connections.toml``, the file the Snowflake CLI and Python connector share;
4. defaults: host ``<account>.snowflakecomputing.com``, protocol ``https``, the authenticator
   inferred from the credential given (a private key → key-pair JWT, a token → programmatic access
   token).

``connections.toml`` is found as the Snowflake Python connector finds it
(``sf_dirs._resolve_platform_dirs``): the directory ``$SNOWFLAKE_HOME`` (default ``~/.snowflake``)
if it exists, else the platform's config directory (``$XDG_CONFIG_HOME/snowflake`` or
``~/.config/snowflake`` on Linux). Its entry is chosen by ``c.CortexClaude.connection_name``, else
``SNOWFLAKE_DEFAULT_CONNECTION_NAME``, else a top-level ``default_connection_name`` (in
connections.toml, or in config.toml beside it as the connector reads it), else ``default``.

With no account and no host anywhere, :func:`resolve_connection` returns ``None`` and the product
serves the offline demo.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import CortexClaude

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

PAT = "programmatic_access_token"
KEYPAIR_JWT = "snowflake_jwt"

OAUTH = "oauth"
PASSWORD = "snowflake"
PASSWORD_MFA = "username_password_mfa"
EXTERNAL_BROWSER = "externalbrowser"
# Found without configuration (snowflake/notebook_identity.py), never written by users.
SPCS_OAUTH = "spcs_oauth"
SNOWPARK_SESSION = "snowpark_session"

IMPLEMENTED_AUTHENTICATORS = frozenset(
    {PAT, KEYPAIR_JWT, OAUTH, PASSWORD, PASSWORD_MFA, EXTERNAL_BROWSER}
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
}

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
}

# Keys as the connector and the Snowflake CLI name them in connections.toml; the first spelling
# wins.
TOML_KEYS: dict[str, tuple[str, ...]] = {
    "account": ("account",),
    "user": ("user",),
    "role": ("role",),
    "host": ("host",),
    "port": ("port",),
    "protocol": ("protocol",),
    "authenticator": ("authenticator",),
    "token": ("token",),
    "token_file_path": ("token_file_path",),
    "private_key_file": ("private_key_file", "private_key_path"),
    "private_key_file_pwd": ("private_key_file_pwd", "private_key_passphrase"),
    "private_key": ("private_key_raw", "private_key"),
    "password": ("password",),
    "passcode": ("passcode",),
}

SNOWFLAKE_DOMAIN = ".snowflakecomputing.com"


class ConfigurationError(ValueError):
    """The Snowflake connection is configured in a way that cannot work; the message says how to fix
    it."""


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


def find_connections_toml(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The connections.toml the Snowflake connector would read, or None when there is none."""
    config_dir = _snowflake_config_dir(environ)
    candidate = config_dir / "connections.toml"
    return candidate if candidate.is_file() else None


def resolve_connection(
    config: CortexClaude, environ: Mapping[str, str] = os.environ
) -> SnowflakeConnection | None:
    """Merge traitlets, environment and connections.toml into one connection (see the module
    docstring).

    Returns None when no account or host is configured anywhere. Raises :class:`ConfigurationError`
    when one is, but the settings cannot work (no credential, an unknown authenticator, a missing
    entry).
    """
    layers: list[tuple[str, dict[str, Any]]] = [
        ("traitlets", _explicit_traitlets(config)),
        ("environment", _environment_settings(environ)),
    ]
    toml_label, toml_settings = _connections_toml_entry(config, environ)
    if toml_label:
        layers.append((toml_label, toml_settings))

    from .notebook_identity import active_snowpark_session, container_token_file

    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in CONNECTION_FIELDS:
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
    authenticator = _choose_authenticator(merged, origin)

    user = merged.get("user") or None
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
    )


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


def _choose_authenticator(merged: dict[str, Any], origin: dict[str, str]) -> str:
    raw = merged.get("authenticator")
    if raw:
        name = str(raw).strip().lower()
        if name.startswith("https://"):
            name = "okta"
        kind = AUTHENTICATOR_ALIASES.get(name)
        if kind is None and name != "okta":
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
    # Without any credential the PAT check in _build_connection reports what is missing.
    return PAT


def _rank(origin: dict[str, str], order: list[str], name: str) -> int:
    label = origin[name]
    return order.index(label) if label in order else len(order)


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
    return str(_expand_user(str(value), environ))


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


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME") or environ.get("USERPROFILE")
    return Path(home) if home else Path.home()


def _expand_user(path: str, environ: Mapping[str, str]) -> Path:
    if path == "~" or path.startswith(("~/", "~\\")):
        return _home(environ) / path[2:]
    return Path(path)


def _snowflake_config_dir(environ: Mapping[str, str]) -> Path:
    # Mirrors the connector's sf_dirs: SNOWFLAKE_HOME (default ~/.snowflake) when that directory
    # exists, otherwise platformdirs' user config directory for app "snowflake".
    snowflake_home = _expand_user(environ.get("SNOWFLAKE_HOME") or "~/.snowflake", environ)
    if snowflake_home.is_dir():
        return snowflake_home
    if sys.platform == "darwin":
        return _home(environ) / "Library" / "Application Support" / "snowflake"
    if sys.platform == "win32":
        local = environ.get("LOCALAPPDATA")
        return (
            Path(local) / "snowflake"
            if local
            else _home(environ) / "AppData" / "Local" / "snowflake"
        )
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else _home(environ) / ".config"
    return base / "snowflake"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        # tomllib's message gives line and column, never the offending text, so no secret can leak
        # here.
        raise ConfigurationError(f"{path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigurationError(f"Cannot read {path}: {error.strerror}") from None


def _warn_if_shared(path: Path) -> None:
    if sys.platform == "win32":
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    # The connector warns the same way: this file usually holds tokens or key passphrases.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s can be read or written by other users (mode %s); it may hold Snowflake "
            "credentials. Run: chmod 0600 %s",
            path,
            oct(stat.S_IMODE(mode)),
            path,
        )


def _connections_toml_entry(
    config: CortexClaude, environ: Mapping[str, str]
) -> tuple[str | None, dict[str, Any]]:
    path = find_connections_toml(environ)
    explicit_name = (
        config.connection_name.strip()
        or environ.get("SNOWFLAKE_DEFAULT_CONNECTION_NAME", "").strip()
    )
    if path is None:
        if config.connection_name.strip():
            raise ConfigurationError(
                f"c.CortexClaude.connection_name is {config.connection_name!r} but no "
                f"connections.toml was found (looked in {_snowflake_config_dir(environ)}; set "
                "SNOWFLAKE_HOME to its folder)."
            )
        return None, {}

    _warn_if_shared(path)
    document = _read_toml(path)
    sections = {name: value for name, value in document.items() if isinstance(value, dict)}
    name = explicit_name or _default_connection_name(document, path)
    if name not in sections:
        if explicit_name or name != "default":
            known = ", ".join(sorted(sections)) or "none"
            raise ConfigurationError(
                f"Connection {name!r} is not in {path} (sections there: {known}). Set "
                "c.CortexClaude.connection_name or SNOWFLAKE_DEFAULT_CONNECTION_NAME to one of "
                "them."
            )
        return None, {}

    entry = sections[name]
    settings: dict[str, Any] = {}
    for field_name, keys in TOML_KEYS.items():
        for key in keys:
            if entry.get(key) not in (None, ""):
                settings[field_name] = entry[key]
                break
    return f"connections.toml [{name}]", settings


def _default_connection_name(document: dict[str, Any], path: Path) -> str:
    top_level = document.get("default_connection_name")
    if isinstance(top_level, str) and top_level.strip():
        return top_level.strip()
    config_toml = path.with_name("config.toml")
    if config_toml.is_file():
        value = _read_toml(config_toml).get("default_connection_name")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return "default"
