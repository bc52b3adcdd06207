"""Finding and reading ``connections.toml``, the file the Snowflake CLI and Python connector share.

The file is found as the Snowflake Python connector finds it (``sf_dirs._resolve_platform_dirs``):
the directory ``$SNOWFLAKE_HOME`` (default ``~/.snowflake``) if it exists, else the platform's config
directory (``$XDG_CONFIG_HOME/snowflake`` or ``~/.config/snowflake`` on Linux). Its entry is chosen
by ``c.CortexClaude.connection_name``, else ``SNOWFLAKE_DEFAULT_CONNECTION_NAME``, else a top-level
``default_connection_name`` (in connections.toml, or in config.toml beside it as the connector reads
it), else ``default``. :mod:`.connection` merges the entry with traitlets and the environment.
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


def find_connections_toml(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The connections.toml the Snowflake connector would read, or None when there is none."""
    config_dir = _snowflake_config_dir(environ)
    candidate = config_dir / "connections.toml"
    return candidate if candidate.is_file() else None


def read_connections_toml_entry(
    config: CortexClaude, environ: Mapping[str, str]
) -> tuple[str | None, dict[str, Any]]:
    """The chosen entry's settings under our field names, with a label naming it for messages.

    ``(None, {})`` when there is no file, or no entry was asked for and there is no ``default``.
    Raises :class:`ConfigurationError` for an unreadable file or a missing entry that was asked for.
    """
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
