"""The gateway key: a random key, minted at start, that opens only the ``cortex-claude/`` endpoints.

Claude Code in a terminal needs a credential for the gateway, but handing it the Jupyter token would
let anything in that terminal drive the whole server (kernels, files, terminals). The gateway key
authorizes only our endpoints, never Jupyter's other APIs, and is never a Snowflake secret.

It imports nothing of the package: the service mints it, the handlers (Jupyter's and the standalone
server's) check what a client presents against it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from pathlib import Path


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
