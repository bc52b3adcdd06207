"""Which credential serves a connection: the one place that turns an authenticator into a credential.

Each kind of credential lives in its own module (``credentials.py`` for PATs, ``keypair.py``,
``oauth.py``, ``session_credentials.py`` for connector and Snowpark sessions); this module only
decides between them, so none of them needs to know the others. Importing it loads no heavy
package: the connector, PyJWT and cryptography are imported only when a credential uses them.
"""

from __future__ import annotations

import time

from .authenticators import (
    KEYPAIR_JWT,
    OAUTH,
    PAT,
    SNOWPARK_SESSION,
    SPCS_OAUTH,
    USERLESS_CONNECTOR_LOGINS,
)
from .connection import SnowflakeConnection
from .connections_toml import SECRET_CONNECTOR_OPTIONS
from .credentials import Clock, CredentialError, PatCredential, SnowflakeCredential
from .keypair import KeyPairJwtCredential
from .notebook_detection import active_snowpark_session
from .oauth import ContainerOAuthCredential, OAuthCredential
from .session_credentials import (
    CONNECTOR_AUTHENTICATORS,
    ConnectorSessionCredential,
    SnowparkSessionCredential,
    connector_arguments,
)


def create_credential(
    connection: SnowflakeConnection, *, clock: Clock = time.time
) -> SnowflakeCredential:
    """The credential for a resolved connection; :class:`CredentialError` if it cannot load."""
    kind = connection.authenticator
    # The notebook logins are found, not configured: the connector cannot make them.
    if kind == SPCS_OAUTH:
        assert connection.token_file_path is not None
        return ContainerOAuthCredential(
            connection.token_file_path,
            user=connection.user,
            account=connection.account,
            clock=clock,
        )
    if kind == SNOWPARK_SESSION:
        session = active_snowpark_session()
        if session is None:
            raise CredentialError("The notebook's Snowpark session has gone: restart the kernel.")
        return SnowparkSessionCredential(session, clock=clock)
    if connection.connector_login:
        return _connector_session(connection, clock)
    if kind in (PAT, OAUTH):
        # Both are a token given directly or in a re-read file; OAuth adds its token-type header.
        token_class = PatCredential if kind == PAT else OAuthCredential
        return token_class(
            connection.token,
            connection.token_file_path,
            user=connection.user,
            account=connection.account,
            clock=clock,
        )
    if kind == KEYPAIR_JWT:
        if not connection.account or not connection.user:
            raise CredentialError("Key-pair authentication needs both the account and the user.")
        return KeyPairJwtCredential(
            account=connection.account,
            user=connection.user,
            private_key_file=connection.private_key_file,
            private_key=connection.private_key,
            passphrase=connection.private_key_file_pwd,
            clock=clock,
        )
    return _connector_session(connection, clock)


def _connector_session(connection: SnowflakeConnection, clock: Clock) -> SnowflakeCredential:
    """A login through the Snowflake connector (SSO, password, MFA, or any kind on request)."""
    kind = connection.authenticator
    if kind not in CONNECTOR_AUTHENTICATORS:
        raise CredentialError(f"The {kind!r} authenticator is not supported.")
    # Workload identity and the OAuth flows identify the user themselves.
    if kind not in (PAT, KEYPAIR_JWT, OAUTH, *USERLESS_CONNECTOR_LOGINS) and not connection.user:
        raise CredentialError(
            f"The {kind} login needs the Snowflake user: set SNOWFLAKE_USER, `user` in "
            "connections.toml, or c.CortexClaude.user."
        )
    return ConnectorSessionCredential(
        connector_arguments(connection),
        kind=kind,
        user=connection.user,
        account=connection.account,
        role=connection.role,
        secrets=[
            connection.password,
            connection.passcode,
            connection.token,
            connection.private_key_file_pwd,
            connection.private_key,
            *(
                str(value)
                for name, value in connection.connector_options.items()
                if name in SECRET_CONNECTOR_OPTIONS
            ),
        ],
        clock=clock,
    )
