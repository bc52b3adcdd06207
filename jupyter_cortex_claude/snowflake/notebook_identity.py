"""The identity a Snowflake Notebook already has, found with no configuration at all.

- **Container runtime** (Snowflake Notebooks on Snowpark Container Services, Notebooks in
  Workspaces): Snowflake mounts an OAuth token at ``/snowflake/session/token`` and sets
  ``SNOWFLAKE_HOST`` and ``SNOWFLAKE_ACCOUNT`` ("Connecting to Snowflake from inside a container").
  The token rotates: :class:`~.oauth.ContainerOAuthCredential` re-reads it on every request.
- **Warehouse runtime**: the notebook's kernel holds an active Snowpark session
  (``snowflake.snowpark.context.get_active_session()``); its connection's session token is sent as
  ``Authorization: Snowflake Token="..."``. We only look when Snowpark is already imported (it
  always is when a session exists), so a plain Jupyter server never imports it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .authenticators import SNOWPARK_SESSION
from .credentials import Clock
from .session_credentials import ConnectorSessionCredential, connector_rest

log = logging.getLogger(__name__)

SPCS_TOKEN_PATH = "/snowflake/session/token"
# Tests (and unusual mounts) point the detection elsewhere.
SPCS_TOKEN_PATH_VARIABLE = "CORTEX_CLAUDE_SPCS_TOKEN_PATH"


def spcs_token_path(environ: Mapping[str, str], configured: str = "") -> Path:
    return Path(configured or environ.get(SPCS_TOKEN_PATH_VARIABLE) or SPCS_TOKEN_PATH)


def container_token_file(environ: Mapping[str, str], configured: str = "") -> str | None:
    """The container's OAuth token file when this process runs inside Snowpark Container
    Services (the file exists and Snowflake's SNOWFLAKE_HOST or SNOWFLAKE_ACCOUNT is set)."""
    if not (environ.get("SNOWFLAKE_HOST") or environ.get("SNOWFLAKE_ACCOUNT")):
        return None
    path = spcs_token_path(environ, configured)
    return str(path) if path.is_file() else None


def active_snowpark_session() -> Any | None:
    """The notebook's active Snowpark session, or None (never imports Snowpark itself)."""
    context = sys.modules.get("snowflake.snowpark.context")
    if context is None:
        return None
    try:
        return context.get_active_session()
    except Exception:  # Snowpark raises when there is no session, or more than one
        return None


class SnowparkSessionCredential(ConnectorSessionCredential):
    """The session token of a Snowpark session this process did not open (and must not close).

    The session may renew its own token while it runs queries; we re-read it after a refusal, and
    otherwise renew with its master token as for our own logins. We cannot log in again: the
    notebook owns the session.
    """

    def __init__(self, session: Any, *, clock: Clock = time.time) -> None:
        connection = session.connection
        super().__init__(
            {},
            kind=SNOWPARK_SESSION,
            user=getattr(connection, "user", None),
            account=getattr(connection, "account", None),
            role=getattr(connection, "role", None),
            clock=clock,
        )
        self._connection = connection
        self._token = connector_rest(connection).token
        self._expires_at = None  # the session keeps itself alive; renew on refusal only

    async def _renew_locked(self) -> None:
        token = connector_rest(self._connection).token
        if token and token != self._token:
            self._token = token  # the session renewed itself meanwhile
            return
        if await asyncio.to_thread(self._renew_with_master):
            self.renewals += 1
            return
        log.warning("The notebook's Snowpark session could not be renewed; it may have ended.")

    def _adopt(self, token: str | None, expires_at: float | None) -> None:
        if token:
            self._token = token
            self._expires_at = None

    def close(self) -> None:
        self._connection = None  # the notebook's session: never log it out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "via": "the notebook's active Snowpark session"}

    def explain_refusal(self) -> str:
        return (
            "Snowflake refused the notebook's Snowpark session token. The session may have ended: "
            "restart the notebook's kernel (or re-run get_active_session()), and check that its "
            "role has the SNOWFLAKE.CORTEX_USER database role."
        )


def describe_environment(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """What notebook identity would be used here, without secrets (for status checks)."""
    return {
        "spcs_token_file": container_token_file(environ),
        "snowpark_session": active_snowpark_session() is not None,
    }
