"""Where a Snowflake Notebook's own login is found, with no configuration at all.

- **Container runtime** (Snowflake Notebooks on Snowpark Container Services, Notebooks in
  Workspaces): Snowflake mounts an OAuth token at ``/snowflake/session/token`` and sets
  ``SNOWFLAKE_HOST`` and ``SNOWFLAKE_ACCOUNT`` ("Connecting to Snowflake from inside a container").
  The token rotates: :class:`~.oauth.ContainerOAuthCredential` re-reads it on every request.
- **Warehouse runtime**: the notebook's kernel holds an active Snowpark session
  (``snowflake.snowpark.context.get_active_session()``); its connection's session token is sent as
  ``Authorization: Snowflake Token="..."`` by
  :class:`~.session_credentials.SnowparkSessionCredential`. We only look when Snowpark is already
  imported (it always is when a session exists), so a plain Jupyter server never imports it.

This module only detects; :mod:`.credential_factory` turns what it finds into a credential.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def describe_environment(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Which notebook login would be used here, without secrets (for status checks)."""
    return {
        "spcs_token_file": container_token_file(environ),
        "snowpark_session": active_snowpark_session() is not None,
    }
