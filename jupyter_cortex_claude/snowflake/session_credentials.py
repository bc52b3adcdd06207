"""Connector session tokens: log in with the Snowflake connector, send its session token.

For logins that cannot mint a REST token by themselves (browser SSO, password with MFA), the
Snowflake connector logs in and the gateway sends the session's token as ``Authorization: Snowflake
Token="..."`` (Snowflake's "Authenticating Snowflake REST APIs"; no ``Bearer``, no token-type
header). The same works for PAT, key-pair and OAuth when ``c.CortexClaude.connector_login`` asks
for it.

Session tokens expire (an hour by default) while the session's master token lives longer. Cortex
answers an expired session token with **HTTP 200 and code 390112** (cortex-api.md): the credential
reads such an answer, renews with the master token (``/session/token-request``), or logs in again
when that fails, and the auth flow replays the request once.

The connector is imported only here, only when such a credential is made, and its blocking calls
run in a thread. Its Python API differs by major version: 3.x/4.x keep tokens on ``conn.rest``
(``_token_request("RENEW")`` updates them); 5.x (Rust core) returns the renewed token but keeps the
old one in ``conn.rest.token``, and exposes expiry times through ``_get_connection_info()``. Both
answer ``_token_request`` with ``{"data": {"sessionToken", "validityInSecondsST"}}``.

A Snowflake Notebook's own Snowpark session (found by :mod:`.notebook_detection`) is a session we
did not open: :class:`SnowparkSessionCredential` sends its token and never logs it out.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ClassVar

from ..errors import GatewayError
from .authenticators import SNOWPARK_SESSION
from .connection import SnowflakeConnection
from .credentials import Clock, CredentialError, SnowflakeCredential
from .errors import ConnectorMissing
from .keypair import load_private_key

log = logging.getLogger(__name__)

SESSION_EXPIRED_CODE = "390112"
# Snowflake's session tokens live an hour; when the connector does not say, assume that.
DEFAULT_SESSION_LIFETIME = 3600.0
# Renew this long before the known expiry, so a request never starts on a dying token.
SESSION_RENEW_MARGIN = 60.0

# Our authenticator kinds → the connector's `authenticator` argument.
CONNECTOR_AUTHENTICATORS: dict[str, str] = {
    "snowflake": "snowflake",
    "username_password_mfa": "username_password_mfa",
    "externalbrowser": "externalbrowser",
    "oauth": "oauth",
    "programmatic_access_token": "programmatic_access_token",
    "snowflake_jwt": "snowflake_jwt",
    "workload_identity": "workload_identity",
    "oauth_authorization_code": "oauth_authorization_code",
    "oauth_client_credentials": "oauth_client_credentials",
    "okta": "okta",  # replaced by the Okta URL from connector_options
}


def is_session_expired_answer(status: int, content_type: str, body: bytes | None) -> bool:
    """Cortex's answer to an expired session token: HTTP 200 with code 390112 in a JSON body."""
    if status != 200 or not content_type.startswith("application/json") or not body:
        return False
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and str(payload.get("code")) == SESSION_EXPIRED_CODE


class SessionTokenCredential(SnowflakeCredential):
    """A Snowflake session token, whoever obtained it. Subclasses say how to get and renew one."""

    kind: ClassVar[str] = "session_token"

    def __init__(
        self, *, clock: Clock = time.time, renew_margin: float = SESSION_RENEW_MARGIN
    ) -> None:
        super().__init__(clock=clock)
        self._token: str | None = None
        self._expires_at: float | None = None
        self._renew_margin = renew_margin
        self.renewals = 0
        self.logins = 0

    def authorization_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f'Snowflake Token="{token}"'}

    def refusal_needs_body(self, status: int, content_type: str) -> bool:
        # A JSON 200 may be the 390112 refusal; an event stream never is. Reading a JSON answer
        # here costs nothing: the gateway reads non-streamed answers whole anyway.
        return status == 200 and content_type.startswith("application/json")

    def is_refusal(self, status: int, content_type: str, body: bytes | None) -> bool:
        return status == 401 or is_session_expired_answer(status, content_type, body)

    def _is_fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or self._clock() < self._expires_at - self._renew_margin

    async def _current_token(self) -> str:
        if not self._is_fresh():
            async with self._lock:
                if not self._is_fresh():
                    await self._renew_locked()
        assert self._token is not None
        return self._token

    def _peek_token(self) -> str | None:
        return self._token

    def _expiry_iso(self) -> str | None:
        if self._expires_at is None:
            return None
        return datetime.fromtimestamp(self._expires_at, tz=timezone.utc).isoformat()

    def secrets(self) -> list[str]:
        return [self._token] if self._token else []


class ConnectorSessionCredential(SessionTokenCredential):
    """Logs in through ``snowflake.connector.connect`` and uses the session's token."""

    needs_connector: ClassVar[bool] = True

    def __init__(
        self,
        connect_arguments: dict[str, Any],
        *,
        kind: str,
        user: str | None = None,
        account: str | None = None,
        role: str | None = None,
        secrets: list[str] | None = None,
        connect: Callable[..., Any] | None = None,
        clock: Clock = time.time,
        renew_margin: float = SESSION_RENEW_MARGIN,
    ) -> None:
        super().__init__(clock=clock, renew_margin=renew_margin)
        self.kind = kind  # type: ignore[misc]  # one class serves every connector login
        self.user = user
        self.account = account
        self.role = role
        self._arguments = connect_arguments
        self._configured_secrets = [s for s in (secrets or []) if s]
        self._connect = connect
        self._connection: Any = None

    # -- the connector, in a thread ------------------------------------------------------------

    async def _renew_locked(self) -> None:
        if self._connection is not None and await asyncio.to_thread(self._renew_with_master):
            self.renewals += 1
            return
        await asyncio.to_thread(self._log_in)
        self.logins += 1

    def _log_in(self) -> None:
        connect = self._connect or _import_connect(self.kind)
        old, self._connection = self._connection, None
        if old is not None:
            _close_quietly(old)
        try:
            connection = connect(**self._arguments)
        except Exception as error:
            # The connector's messages name the Snowflake error code, never the secret. A 401
            # reaches the client as an authentication_error carrying the fix.
            raise GatewayError(
                401,
                f"Snowflake login ({self.kind}) as {self.user or '?'} failed: {error}. "
                + self.explain_refusal(),
            ) from None
        self._connection = connection
        self._adopt(connector_rest(connection).token, _session_expiry_from(connection))
        self.role = _current_role(connection) or self.role
        log.debug("Logged in to Snowflake (%s) as %s", self.kind, self.user)

    def _renew_with_master(self) -> bool:
        try:
            answer = connector_rest(self._connection)._token_request("RENEW")
            data = answer.get("data") or {}
            token = data.get("sessionToken")
        except Exception as error:
            log.info("Session renewal with the master token failed (%s); logging in again.", error)
            return False
        if not token:
            return False
        validity = data.get("validityInSecondsST")
        expires_at = self._clock() + float(validity) if validity else None
        self._adopt(token, expires_at)
        log.debug("Renewed the Snowflake session token, valid until %s", self._expiry_iso())
        return True

    def _adopt(self, token: str | None, expires_at: float | None) -> None:
        if not token:
            raise CredentialError(
                "The Snowflake connector logged in but returned no session token."
            )
        self._token = token
        self._expires_at = expires_at or self._clock() + DEFAULT_SESSION_LIFETIME

    def close(self) -> None:
        """Log the session out (the connector's close, which blocks); safe to call twice."""
        connection, self._connection = self._connection, None
        if connection is not None:
            _close_quietly(connection)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # -- the interface -------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "via": "snowflake-connector-python session token",
            "user": self.user,
            "account": self.account,
            "role": self.role,
            "expires_at": self._expiry_iso(),
            "renewals": self.renewals,
            "logins": self.logins,
        }

    def secrets(self) -> list[str]:
        found = super().secrets() + self._configured_secrets
        if self._connection is not None:
            master = _master_token(self._connection)
            if master:
                found.append(master)
        return found

    def explain_refusal(self) -> str:
        return (
            f"Snowflake refused the session of {self.user or 'the configured user'} ({self.kind} "
            "login) even after renewing it. The user may be locked or disabled, its password or "
            "token changed, or a network policy blocks this machine. Log in again (restart the "
            "server, or run `snow connection test`) and check the connection in connections.toml."
        )


def connector_arguments(connection: SnowflakeConnection) -> dict[str, Any]:
    """``snowflake.connector.connect`` keyword arguments for a resolved connection."""
    arguments: dict[str, Any] = {
        "account": connection.account or connection.host.split(".")[0],
        "host": connection.host,
        "protocol": connection.protocol,
        "authenticator": CONNECTOR_AUTHENTICATORS.get(
            connection.authenticator, connection.authenticator
        ),
        # The gateway needs a session token, not SQL: no keep-alive thread, and close() logs out.
        "client_session_keep_alive": False,
        "login_timeout": 120,
    }
    if connection.port:
        arguments["port"] = connection.port
    optional = {
        "user": connection.user,
        "role": connection.role,
        "password": getattr(connection, "password", None),
        "passcode": getattr(connection, "passcode", None),
        "token": connection.token,
        "private_key_file": connection.private_key_file,
        "private_key_file_pwd": connection.private_key_file_pwd,
    }
    arguments.update({name: value for name, value in optional.items() if value})
    if connection.token_file_path and not connection.token:
        arguments["token_file_path"] = connection.token_file_path
    # OAuth flows, workload identity, the Okta URL: as the connection gave them.
    arguments.update(connection.connector_options)
    if connection.private_key and not connection.private_key_file:
        arguments["private_key"] = load_private_key(
            private_key=connection.private_key, passphrase=connection.private_key_file_pwd
        )
    return arguments


def connector_installed() -> bool:
    """Whether snowflake-connector-python can be imported, without importing it (it is slow)."""
    try:
        return importlib.util.find_spec("snowflake.connector") is not None
    except (ImportError, ValueError):  # no `snowflake` package, or a module blocked in sys.modules
        return False


def _import_connect(kind: str) -> Callable[..., Any]:
    try:
        import snowflake.connector
    except ImportError:
        raise ConnectorMissing(kind) from None
    return snowflake.connector.connect  # type: ignore[no-any-return]


def connector_rest(connection: Any) -> Any:
    """The connector's session client (tokens, renewal) of a ``snowflake.connector`` connection."""
    # 5.x marks `rest` as kept for backward compatibility only; it is the API both versions share.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return connection.rest


def _master_token(connection: Any) -> str | None:
    try:
        return connector_rest(connection).master_token  # type: ignore[no-any-return]
    except Exception:
        return None


def _session_expiry_from(connection: Any) -> float | None:
    """When the login's session token expires, if the connector says (5.x does)."""
    info_of = getattr(connection, "_get_connection_info", None)
    if info_of is None:
        return None
    try:
        milliseconds = info_of().session_token_expires_at_ms
    except Exception:
        return None
    return milliseconds / 1000 if milliseconds else None


def _current_role(connection: Any) -> str | None:
    role = getattr(connection, "role", None)
    return role if isinstance(role, str) and role else None


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except Exception as error:  # the session may already be gone; nothing to do about it
        log.debug("Closing the Snowflake session failed: %s", error)


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
