"""The gateway key: a random key, minted at start, that opens only the ``cortex-claude/`` endpoints.

Claude Code in a terminal needs a credential for the gateway, but handing it the Jupyter token would
let anything in that terminal drive the whole server (kernels, files, terminals). The gateway key
authorizes only our endpoints, never Jupyter's other APIs, and is never a Snowflake secret.

It imports nothing of the package: the service mints it, the handlers (Jupyter's and the standalone
server's) check what a client presents against it.

The *persistent key* is the same kind of key for clients configured once and kept across server
restarts (Jupyternaut's model settings in Jupyter AI, docs/jupyter-ai.md): a gateway key written
into such a config would stop working at the next start, and the Jupyter token would open far more
than the gateway. It lives in ``<jupyter data dir>/cortex_claude/persistent-key`` (0600, folder
0700), is accepted exactly like the gateway key, and is revoked by deleting the file.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

PERSISTENT_KEY_NAME = "persistent-key"


class GatewayKey:
    def __init__(self, value: str | None = None) -> None:
        self.value = value or "cortex-claude-" + secrets.token_urlsafe(32)
        self.path: Path | None = None

    def matches(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.value.encode())

    def write(self, path: Path, *, url: str) -> Path:
        """Write ``{"url", "key"}`` with 0600 permissions (created so, never widened later)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"url": url, "key": self.value}, handle)
        self.path = path
        return path

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.path = None

    def __repr__(self) -> str:  # never show the key itself
        return "GatewayKey(<hidden>)"


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The credential a client presented: ``Authorization: Bearer <k>`` or ``x-api-key: <k>``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            return value.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


def persistent_key_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "cortex_claude" / PERSISTENT_KEY_NAME


class UnsafeKeyFile(OSError):
    """The persistent key file is readable by others: it is not used."""


def read_persistent_key(path: Path) -> GatewayKey | None:
    """The persistent key in ``path``, or None when there is none.

    A file other users could read is refused rather than trusted: anyone who read it could spend
    this user's Cortex credits.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(fd) as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise UnsafeKeyFile(
                f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}), so the "
                f"cortex-claude persistent key is not accepted: `chmod 600 {path}`, or delete it "
                "to mint a new key (clients configured with the old one must then be updated)."
            )
        value = handle.read().strip()
    # No ``path`` on it: GatewayKey.remove() deletes the per-start key file at stop, never this.
    return GatewayKey(value) if value else None


def load_or_create_persistent_key(path: Path) -> GatewayKey:
    """The persistent key, minted (0600 in a 0700 folder) on first use."""
    existing = read_persistent_key(path)
    if existing is not None:
        return existing
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = GatewayKey("cortex-claude-persistent-" + secrets.token_urlsafe(32))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another server minted it just now: use theirs
        return read_persistent_key(path) or key
    with os.fdopen(fd, "w") as handle:
        handle.write(key.value + "\n")
    return key
