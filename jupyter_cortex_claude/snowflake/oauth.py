"""OAuth access tokens, given directly or in a file, and the Snowpark Container Services token.

An OAuth access token is sent as ``Authorization: Bearer <token>`` with
``X-Snowflake-Authorization-Token-Type: OAUTH`` ("Authenticating Snowflake REST APIs"). We cannot
refresh it ourselves (the identity provider or JupyterHub does); from a file it is re-read when the
file changes, so a token rotated on disk is used without a restart.

Inside Snowpark Container Services (Snowflake Notebooks on the container runtime, Notebooks in
Workspaces), Snowflake writes a short-lived OAuth token to ``/snowflake/session/token`` and keeps
rewriting it; its documentation says to read the file every time it is used, never to cache it.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

from .authenticators import OAUTH, SPCS_OAUTH
from .credentials import Clock, PatCredential


class OAuthCredential(PatCredential):
    """An OAuth access token from the identity provider, directly or from a re-read file."""

    kind: ClassVar[str] = OAUTH
    token_type: ClassVar[str | None] = "OAUTH"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": self.kind}

    def explain_refusal(self) -> str:
        if self._token_file is not None:
            where = (
                f"the token in {self._token_file}. Whatever writes that file (JupyterHub's "
                "auth_state hook, a token refresher) must keep it current"
            )
        else:
            where = "the configured token. Get a fresh one from your identity provider"
        return (
            f"Snowflake refused the OAuth access token for {self.user or 'the configured user'}: "
            f"it has expired or been revoked, or the security integration does not accept it. "
            f"Check {where}."
        )


class ContainerOAuthCredential(OAuthCredential):
    """The OAuth token Snowpark Container Services writes for the service: re-read on every use."""

    kind: ClassVar[str] = SPCS_OAUTH

    def __init__(
        self,
        token_file_path: str | os.PathLike[str],
        *,
        user: str | None = None,
        account: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(None, token_file_path, user=user, account=account, clock=clock)

    async def _current_token(self) -> str:
        # Snowflake rewrites the file in place every few minutes: read it every time.
        self._reload_if_changed(force=True)
        return self._token

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "via": "Snowpark Container Services token file (re-read on every request)",
        }

    def explain_refusal(self) -> str:
        return (
            f"Snowflake refused the container's OAuth token from {self._token_file}. The service "
            "may lack the role grants for Cortex (its owner role needs SNOWFLAKE.CORTEX_USER), or "
            "the token was not yet rewritten; retry, and check the service's role."
        )
