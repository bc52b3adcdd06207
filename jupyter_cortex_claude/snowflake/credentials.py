"""Snowflake credentials: one class per kind, behind one small interface.

The Cortex client never learns which kind of identity is in use. It asks a credential three things:
the token to send now (:meth:`SnowflakeCredential.token`, renewed first when about to expire) and
its headers (:meth:`SnowflakeCredential.authorization_headers`); whether an answer is Snowflake
refusing that token (:meth:`SnowflakeCredential.is_refusal`); and, after a refusal, a renewed token
to replay the request with once (:meth:`SnowflakeCredential.renewed_after_refusal`: one renewal
however many requests were refused together).

The kind here: programmatic access tokens (:class:`PatCredential`). The others live beside it:
key-pair JWTs (``keypair.py``); connector and Snowpark session tokens (``session_credentials.py``,
sent as ``Authorization: Snowflake Token="..."`` and expiring with HTTP 200 + code 390112, so they
override :meth:`SnowflakeCredential.authorization_headers`, :meth:`SnowflakeCredential.refusal_needs_body`
and :meth:`SnowflakeCredential.is_refusal`); OAuth tokens and the Snowflake Notebooks token file
(``oauth.py``). :func:`.credential_factory.create_credential` picks the kind for a connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from .authenticators import PAT
from .errors import ConfigurationError

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class CredentialError(ConfigurationError):
    """A credential cannot be loaded (a missing file, a wrong passphrase); never holds a secret."""


class SnowflakeCredential(ABC):
    """Headers for Snowflake REST calls, renewed when they expire or are refused."""

    kind: ClassVar[str]
    # Value of X-Snowflake-Authorization-Token-Type; Snowflake guesses the type when it is absent.
    token_type: ClassVar[str | None] = None

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        # The token a renewal was last started for: callers that saw the same refusal skip renewing
        # again, even when the renewal produced an identical token (a JWT minted in the same
        # second).
        self._last_refused: str | None = None

    # --- what callers use -------------------------------------------------------------------------

    async def token(self) -> str:
        """The token to send now, renewed first if it is near expiry."""
        return await self._current_token()

    async def headers(self) -> dict[str, str]:
        """Authorization headers to send now, renewing first if the token is near expiry."""
        return self.authorization_headers(await self._current_token())

    def authorization_headers(self, token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if self.token_type:
            headers["X-Snowflake-Authorization-Token-Type"] = self.token_type
        return headers

    def refusal_needs_body(self, status: int, content_type: str) -> bool:
        """Whether :meth:`is_refusal` must see the body of such an answer (session tokens' 200 +
        390112)."""
        return False

    def is_refusal(self, status: int, content_type: str, body: bytes | None) -> bool:
        """Whether Snowflake refused the token that was sent (``body`` is read only when
        :meth:`refusal_needs_body` said so)."""
        return status == 401

    async def renewed_after_refusal(self, refused: str) -> str | None:
        """A token to replay a refused request with once, or None when there is nothing new to
        send (a PAT with nothing to re-read: sending it again would only double the 401)."""
        await self.renew(refused)
        renewed = await self._current_token()
        return None if renewed == refused else renewed

    async def renew(self, failed_token: str | None = None) -> None:
        """Renew after Snowflake refused ``failed_token``. However many callers saw the same
        refusal, the renewal runs once: the others find the token already renewed and return."""
        async with self._lock:
            if failed_token is not None and (
                failed_token == self._last_refused or failed_token != self._peek_token()
            ):
                return
            self._last_refused = failed_token
            await self._renew_locked()

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What a person needs to debug authentication (kind, user, account, expiry): no secret."""

    @abstractmethod
    def secrets(self) -> list[str]:
        """Every secret string in use now, for log redaction and leak tests."""

    @abstractmethod
    def explain_refusal(self) -> str:
        """What to tell the user when Snowflake still refuses this credential after a renewal."""

    # --- for subclasses ---------------------------------------------------------------------------

    @abstractmethod
    async def _current_token(self) -> str:
        """The token to use now, refreshed first if it is stale."""

    @abstractmethod
    def _peek_token(self) -> str | None:
        """The token in use, without refreshing anything."""

    @abstractmethod
    async def _renew_locked(self) -> None:
        """Obtain a new token; called with the lock held."""


class PatCredential(SnowflakeCredential):
    """A programmatic access token, given directly or in a file.

    A PAT cannot be renewed by us. When it comes from a file, the file is re-read whenever its
    modification time changes and after every refusal, so a token rotated on disk is picked up
    without a restart. A token given directly wins over a file.
    """

    kind: ClassVar[str] = PAT
    token_type: ClassVar[str | None] = "PROGRAMMATIC_ACCESS_TOKEN"

    def __init__(
        self,
        token: str | None = None,
        token_file_path: str | os.PathLike[str] | None = None,
        *,
        user: str | None = None,
        account: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.user = user
        self.account = account
        self._token_file = (
            Path(token_file_path).expanduser() if token_file_path and not token else None
        )
        self._file_stamp: tuple[int, int] | None = None
        if token:
            self._token = token.strip()
        elif self._token_file is not None:
            self._token = self._read_token_file()
        else:
            raise CredentialError(
                "A programmatic access token is needed: give a token or a token file."
            )

    def _read_token_file(self) -> str:
        path = self._token_file
        assert path is not None
        try:
            info = path.stat()
            token = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise CredentialError(
                f"Token file {path} does not exist: create it with your programmatic access token, "
                "or fix token_file_path."
            ) from None
        except OSError as error:
            raise CredentialError(f"Cannot read token file {path}: {error.strerror}.") from None
        if not token:
            raise CredentialError(
                f"Token file {path} is empty: put your programmatic access token in it."
            )
        self._file_stamp = (info.st_mtime_ns, info.st_size)
        return token

    def _reload_if_changed(self, *, force: bool = False) -> None:
        if self._token_file is None:
            return
        try:
            info = self._token_file.stat()
        except OSError:
            log.warning("Token file %s has gone; keeping the token read before.", self._token_file)
            return
        if force or (info.st_mtime_ns, info.st_size) != self._file_stamp:
            try:
                self._token = self._read_token_file()
            except CredentialError as error:
                log.warning("%s Keeping the token read before.", error)
            else:
                log.debug("Re-read the programmatic access token from %s", self._token_file)

    async def _current_token(self) -> str:
        self._reload_if_changed()
        return self._token

    def _peek_token(self) -> str | None:
        return self._token

    async def _renew_locked(self) -> None:
        self._reload_if_changed(force=True)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "user": self.user,
            "account": self.account,
            "token_file_path": str(self._token_file) if self._token_file else None,
            "expires_at": None,
        }

    def secrets(self) -> list[str]:
        return [self._token]

    def explain_refusal(self) -> str:
        where = f"in {self._token_file}" if self._token_file else "configured"
        who = f" for user {self.user}" if self.user else ""
        return (
            f"Snowflake refused the programmatic access token{who} ({where}). It may have expired, "
            "been revoked, or be refused by a network or authentication policy. Create a new one "
            "in Snowsight (Settings → Authentication) or with "
            "ALTER USER ... ADD PROGRAMMATIC ACCESS TOKEN, and update "
            + (
                f"{self._token_file}."
                if self._token_file
                else "SNOWFLAKE_TOKEN or connections.toml."
            )
        )
