"""Which credential serves a connection whose authenticator is not a plain PAT or key pair.

:func:`~.credentials.create_credential` hands these kinds over, so the connector, the OAuth file
reader and the notebook detection load only when a configuration asks for them.
"""

from __future__ import annotations

import time

from .authenticators import KEYPAIR_JWT, OAUTH, PAT, SNOWPARK_SESSION, SPCS_OAUTH
from .connection import SnowflakeConnection
from .credentials import Clock, CredentialError, SnowflakeCredential
from .notebook_identity import SnowparkSessionCredential, active_snowpark_session
from .oauth import ContainerOAuthCredential, OAuthCredential
from .session_credentials import (
    CONNECTOR_AUTHENTICATORS,
    ConnectorSessionCredential,
    connector_arguments,
)


def create_identity_credential(
    connection: SnowflakeConnection, *, clock: Clock = time.time
) -> SnowflakeCredential:
    kind = connection.authenticator
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
    if kind == OAUTH and not connection.connector_login:
        return OAuthCredential(
            connection.token,
            connection.token_file_path,
            user=connection.user,
            account=connection.account,
            clock=clock,
        )
    if kind in CONNECTOR_AUTHENTICATORS:
        if kind in (PAT, KEYPAIR_JWT, OAUTH) or connection.user:
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
                ],
                clock=clock,
            )
        raise CredentialError(
            f"The {kind} login needs the Snowflake user: set SNOWFLAKE_USER, `user` in "
            "connections.toml, or c.CortexClaude.user."
        )
    raise CredentialError(f"The {kind!r} authenticator is not supported.")
