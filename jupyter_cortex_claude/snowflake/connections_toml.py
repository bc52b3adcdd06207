"""The named connections the Snowflake CLI and Python connector share, found as they find them.

Where the named connections come from (the connector's ``config_manager``; the first that exists
is the whole set, they are not merged):

1. ``SNOWFLAKE_CONNECTIONS``: a TOML string of ``[name]`` tables (the connector's environment
   override of its ``connections`` option);
2. ``connections.toml`` in the Snowflake folder (it replaces the ``[connections]`` of config.toml);
3. ``[connections.<name>]`` tables in ``config.toml`` in the same folder.

The folder is found as the connector finds it (``sf_dirs._resolve_platform_dirs``):
``$SNOWFLAKE_HOME`` (default ``~/.snowflake``) if it exists, else the platform's config directory
(``$XDG_CONFIG_HOME/snowflake`` or ``~/.config/snowflake`` on Linux).

Which one: ``c.CortexClaude.connection_name``, else ``SNOWFLAKE_DEFAULT_CONNECTION_NAME``, else
``default_connection_name`` at the top of config.toml (the connector's option), else (ours, kept
for existing setups) at the top of connections.toml, else ``default``.

``SNOWFLAKE_CONNECTIONS_<NAME>_<KEY>`` (the Snowflake CLI's per-key override, e.g.
``SNOWFLAKE_CONNECTIONS_PROD_PASSWORD``) sets one key of the chosen connection, above the files and
the generic ``SNOWFLAKE_<KEY>`` variables, as the CLI's precedence puts it. :mod:`.connection`
merges these layers with traitlets and the environment.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import CortexClaude
from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

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
# Connection parameters the gateway does not use itself but hands to the connector's login for the
# authenticators it implements (OAuth flows, workload identity); names as the connector takes them.
CONNECTOR_OPTIONS: tuple[str, ...] = (
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_token_request_url",
    "oauth_authorization_url",
    "oauth_redirect_uri",
    "oauth_scope",
    "oauth_enable_pkce",
    "oauth_enable_refresh_tokens",
    "oauth_enable_single_use_refresh_tokens",
    "workload_identity_provider",
    "workload_identity_entra_resource",
    "workload_identity_impersonation_path",
    "client_store_temporary_credential",
)
SECRET_CONNECTOR_OPTIONS = frozenset({"oauth_client_secret"})


def find_connections_toml(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The connections.toml the Snowflake connector would read, or None when there is none."""
    config_dir = _snowflake_config_dir(environ)
    candidate = config_dir / "connections.toml"
    return candidate if candidate.is_file() else None


def read_named_connection(
    config: CortexClaude, environ: Mapping[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """The chosen connection as layers, highest precedence first: ``SNOWFLAKE_CONNECTIONS_<NAME>_*``
    overrides, then the entry itself; each a label for messages and settings under our names.

    ``[]`` when there are no named connections, or none was asked for and there is no
    ``default``. Raises :class:`ConfigurationError` for an unreadable source or a connection that
    was asked for and exists nowhere.
    """
    folder = _snowflake_config_dir(environ)
    source, connections = _named_connections(folder, environ)
    explicit_name = (
        config.connection_name.strip()
        or environ.get("SNOWFLAKE_DEFAULT_CONNECTION_NAME", "").strip()
    )
    name = explicit_name or _default_connection_name(folder)
    layers: list[tuple[str, dict[str, Any]]] = []
    overrides = _per_key_overrides(name, environ)
    if overrides:
        layers.append((f"SNOWFLAKE_CONNECTIONS_{name.upper()}_* environment", overrides))
    entry = connections.get(name)
    if entry is not None:
        layers.append((f"{source} [{name}]", _our_names(entry)))
    elif not overrides and (explicit_name or name != "default"):
        if source is None:
            raise ConfigurationError(
                f"Connection {name!r} was asked for (c.CortexClaude.connection_name, "
                "SNOWFLAKE_DEFAULT_CONNECTION_NAME or default_connection_name) but no "
                f"connections are defined: no connections.toml or config.toml in {folder} (set "
                "SNOWFLAKE_HOME to their folder) and no SNOWFLAKE_CONNECTIONS variable."
            )
        known = ", ".join(sorted(connections)) or "none"
        raise ConfigurationError(
            f"Connection {name!r} is not in {source} (connections there: {known}). Set "
            "c.CortexClaude.connection_name or SNOWFLAKE_DEFAULT_CONNECTION_NAME to one of them."
        )
    return layers


def _named_connections(
    folder: Path, environ: Mapping[str, str]
) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(where they came from, the named connections) in the connector's order (module docstring)."""
    inline = environ.get("SNOWFLAKE_CONNECTIONS", "")
    if inline.strip():
        try:
            document = tomllib.loads(inline)
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"SNOWFLAKE_CONNECTIONS is not valid TOML: {error}") from None
        return "SNOWFLAKE_CONNECTIONS", _tables(document)
    connections_toml = folder / "connections.toml"
    if connections_toml.is_file():
        _warn_if_shared(connections_toml)
        return "connections.toml", _tables(_read_toml(connections_toml))
    config_toml = folder / "config.toml"
    if config_toml.is_file():
        section = _read_toml(config_toml).get("connections")
        if isinstance(section, dict) and _tables(section):
            _warn_if_shared(config_toml)
            return "config.toml [connections]", _tables(section)
    return None, {}


def _tables(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: value for name, value in document.items() if isinstance(value, dict)}


def _our_names(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's settings under our field names (first spelling wins), plus connector options."""
    settings: dict[str, Any] = {}
    for field_name, keys in TOML_KEYS.items():
        for key in keys:
            if entry.get(key) not in (None, ""):
                settings[field_name] = entry[key]
                break
    for option in CONNECTOR_OPTIONS:
        if entry.get(option) not in (None, ""):
            settings[option] = entry[option]
    return settings


def _per_key_overrides(name: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """``SNOWFLAKE_CONNECTIONS_<NAME>_<KEY>`` for the keys a connection entry may have."""
    prefix = f"SNOWFLAKE_CONNECTIONS_{name.upper()}_"
    found = {
        variable[len(prefix) :].lower(): value
        for variable, value in environ.items()
        if variable.upper().startswith(prefix) and value.strip()
    }
    return _our_names(found)


def _default_connection_name(folder: Path) -> str:
    for file in ("config.toml", "connections.toml"):
        path = folder / file
        if path.is_file():
            value = _read_toml(path).get("default_connection_name")
            if isinstance(value, str) and value.strip():
                return value.strip()
    return "default"


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME") or environ.get("USERPROFILE")
    return Path(home) if home else Path.home()


def expand_user(path: str, environ: Mapping[str, str]) -> Path:
    """``~`` expanded to the home directory ``environ`` names (``HOME`` or ``USERPROFILE``)."""
    if path == "~" or path.startswith(("~/", "~\\")):
        return _home(environ) / path[2:]
    return Path(path)


def _snowflake_config_dir(environ: Mapping[str, str]) -> Path:
    # Mirrors the connector's sf_dirs: SNOWFLAKE_HOME (default ~/.snowflake) when that directory
    # exists, otherwise platformdirs' user config directory for app "snowflake".
    snowflake_home = expand_user(environ.get("SNOWFLAKE_HOME") or "~/.snowflake", environ)
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
