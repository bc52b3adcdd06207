"""The Snowflake connector's login protocol, as the emulator speaks it.

Learned by pointing the real connector (snowflake-connector-python 5.2 on its Rust core, and 3.18)
at a recording server over ``protocol=http`` and reading what it sent:

- ``POST /session/v1/login-request``: ``{"data": {"CLIENT_APP_ID", "ACCOUNT_NAME", "LOGIN_NAME",
  "AUTHENTICATOR", "PASSWORD" | "TOKEN" | "PASSCODE" ..., "SESSION_PARAMETERS",
  "CLIENT_ENVIRONMENT"}}``; 3.x gzips the body (``Content-Encoding: gzip``). The answer is HTTP 200
  either way: ``{"success": true, "data": {"token", "masterToken", "validityInSeconds", ...}}`` or
  ``{"success": false, "code", "message"}``.
- ``POST /session/token-request`` with ``Authorization: Snowflake Token="<master token>"`` and
  ``{"oldSessionToken", "requestType": "RENEW"}``: a new session token.
- ``POST /session/heartbeat`` and ``POST /session?delete=true`` (logout; ``DELETE /session`` too)
  with the session token; ``POST /telemetry/send`` on close.
- ``POST /session/authenticator-request`` for browser SSO: the ``ssoUrl`` the connector opens, whose
  redirect brings the token to the connector's local port.
- ``authenticator=WORKLOAD_IDENTITY`` (5.2, provider OIDC): the login request carries
  ``"PROVIDER": "OIDC"`` and the workload's OIDC token as ``TOKEN``, no ``LOGIN_NAME``; Snowflake
  finds the user whose ``WORKLOAD_IDENTITY`` names the token's issuer and subject. The emulator
  reads ``iss``/``sub`` without checking the signature (Snowflake checks it against the issuer's
  keys). The 5.x connector sends an attestation only to Snowflake hosts unless
  ``SNOWFLAKE_WIF_ALLOWED_HOST_SUFFIXES`` names the host.
- ``authenticator=OAUTH_CLIENT_CREDENTIALS``: the connector first posts a form
  (``grant_type=client_credentials``, the client id and secret) to ``oauth_token_request_url``
  (Snowflake's own is ``/oauth/token-request``) and reads ``{"access_token", ...}``, then logs in
  with that access token.

Error codes 390100 (wrong password), 390112 (session expired), 390114 (master token expired) and
390144 (invalid JWT) are Snowflake's; the others here are the emulator's own, stable for tests.
"""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import jwt

from .auth import Credentials, jwt_account
from .refusals import CortexRefusal

if TYPE_CHECKING:
    import tornado.web

LOGIN_PATH = "/session/v1/login-request"
TOKEN_PATH = "/session/token-request"
HEARTBEAT_PATH = "/session/heartbeat"
SESSION_PATH = "/session"
TELEMETRY_PATH = "/telemetry/send"
AUTHENTICATOR_PATH = "/session/authenticator-request"
OAUTH_TOKEN_PATH = "/oauth/token-request"
SSO_PATH = "/emulator/sso"
LOGIN_PATHS = frozenset(
    {
        LOGIN_PATH,
        TOKEN_PATH,
        HEARTBEAT_PATH,
        SESSION_PATH,
        TELEMETRY_PATH,
        AUTHENTICATOR_PATH,
        OAUTH_TOKEN_PATH,
    }
)

WRONG_PASSWORD = "390100"
SESSION_EXPIRED = "390112"
MASTER_EXPIRED = "390114"
JWT_INVALID = "390144"
# The emulator's own codes.
INVALID_TOKEN = "390303"
WRONG_PASSCODE = "394508"
BAD_REQUEST = "390400"


class LoginRefusal(Exception):
    """A login-protocol failure: HTTP 200 with ``success: false``, as Snowflake answers them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class LoginSession:
    session_id: int
    user: str
    role: str
    master_token: str
    master_expires_at: float
    tokens: list[str] = field(default_factory=list)
    closed: bool = False


class LoginProtocol:
    """Users, sessions and tokens of the emulated account's login service. Thread-safe."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        passwords: Mapping[str, str] | None = None,
        session_lifetime: float = 3600.0,
        master_lifetime: float = 4 * 3600.0,
        role: str = "PUBLIC",
    ) -> None:
        self.credentials = credentials
        self.session_lifetime = session_lifetime
        self.master_lifetime = master_lifetime
        self.role = role
        self.passwords = {user.upper(): pw for user, pw in (passwords or {}).items()}
        self.passcodes: dict[str, str] = {}
        self.sessions: dict[str, LoginSession] = {}  # by master token
        self.logins: list[str] = []  # AUTHENTICATOR of each successful login
        self.renewals = 0  # successful token-requests
        self.refuse_renewals = False
        self._sso: dict[str, str] = {}  # proof key -> the token the browser hands back
        self.workload_identities: dict[tuple[str, str], str] = {}  # (issuer, subject) -> user
        self.oauth_clients: dict[str, str] = {}  # client id -> secret
        # Where the SSO page lives. The 5.x connector (Rust core) refuses to open an ssoUrl that
        # is not https ("URL must use https scheme"), as a real identity provider's always is: a
        # test that plays the browser serves the page over TLS and sets its origin here (see
        # tests/test_sso.py). None keeps the emulator's own plain-http page (SSO_PATH).
        self.identity_provider_url: str | None = None
        self._next_id = 1000
        self._lock = threading.Lock()

    # -- scripting ---------------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Every session token issued so far now gets the 200 + 390112 answer."""
        with self._lock:
            tokens = [t for s in self.sessions.values() for t in s.tokens]
        for token in tokens:
            self.credentials.expire_session_token(token)

    def expire_master_tokens(self) -> None:
        with self._lock:
            for session in self.sessions.values():
                session.master_expires_at = 0.0

    def current_session_tokens(self) -> list[str]:
        with self._lock:
            return [s.tokens[-1] for s in self.sessions.values() if s.tokens and not s.closed]

    # -- protocol ----------------------------------------------------------------------------

    def answer(self, handler: tornado.web.RequestHandler, base_url: str) -> tuple[int, Any]:
        request = handler.request
        path, method = request.path, request.method or ""
        try:
            if path == SESSION_PATH and (
                method == "DELETE" or handler.get_query_argument("delete", "") == "true"
            ):
                return 200, self._logout(request.headers)
            if method != "POST":
                raise CortexRefusal(405, f"Method {method} is not allowed on {path}")
            if path == OAUTH_TOKEN_PATH:  # a form, answered in OAuth's shape (RFC 6749 §5)
                return self._oauth_token(request.body or b"", request.headers)
            body = _json_body(request.body or b"", request.headers)
            if path == LOGIN_PATH:
                role = handler.get_query_argument("roleName", "") or self.role
                return 200, self._login(body, role.upper())
            if path == TOKEN_PATH:
                return 200, self._renew(request.headers, body)
            if path == AUTHENTICATOR_PATH:
                return 200, self._start_sso(body, base_url)
            if path in (HEARTBEAT_PATH, TELEMETRY_PATH):
                self._session_of(request.headers)
                return 200, _success({})
            raise CortexRefusal(404, f"Not found: {method} {path}")
        except LoginRefusal as refusal:
            return 200, {
                "data": None,
                "code": refusal.code,
                "message": refusal.message,
                "success": False,
            }

    def sso_redirect(self, port: str, proof_key: str) -> str:
        """Where the identity provider sends the browser: the connector's local port, with the
        token that proves this login."""
        with self._lock:
            token = self._sso.get(proof_key)
        if token is None:
            raise CortexRefusal(400, "Unknown SSO proof key.")
        return f"http://localhost:{int(port)}/?{urlencode({'token': token})}"

    def _login(self, body: dict[str, Any], role: str) -> dict[str, Any]:
        data = body.get("data")
        if not isinstance(data, dict):
            raise CortexRefusal(400, "login-request body must be {'data': {...}}")
        for key in ("CLIENT_APP_ID", "ACCOUNT_NAME"):
            if not data.get(key):
                raise LoginRefusal(BAD_REQUEST, f"{key} is missing from the login request.")
        if jwt_account(str(data["ACCOUNT_NAME"])) != self.credentials.account:
            raise LoginRefusal(WRONG_PASSWORD, "Incorrect username or password was specified.")
        user = str(data.get("LOGIN_NAME") or "").upper()
        authenticator = str(data.get("AUTHENTICATOR") or "SNOWFLAKE").upper()
        token = str(data.get("TOKEN") or "")
        if authenticator in ("SNOWFLAKE", "USERNAME_PASSWORD_MFA"):
            # Snowflake also takes a PAT as the password: snowflake-claude-code logs in so.
            pat_as_password = self.credentials.is_pat(str(data.get("PASSWORD") or ""))
            if not (authenticator == "SNOWFLAKE" and pat_as_password):
                self._check_password(user, data)
        elif authenticator == "PROGRAMMATIC_ACCESS_TOKEN":
            # Snowflake also takes a PAT in the password field; the connector sends it as TOKEN.
            if not self.credentials.is_pat(token or str(data.get("PASSWORD") or "")):
                raise LoginRefusal(INVALID_TOKEN, "Programmatic access token is invalid.")
        elif authenticator == "SNOWFLAKE_JWT":
            try:
                self.credentials.check_jwt(token)
            except CortexRefusal as refusal:
                raise LoginRefusal(JWT_INVALID, refusal.message) from None
        elif authenticator == "OAUTH":
            if not self.credentials.is_oauth_token(token):
                raise LoginRefusal(INVALID_TOKEN, "Invalid OAuth access token.")
            user = user or self.credentials.user
        elif authenticator == "WORKLOAD_IDENTITY":
            user = self._workload_user(str(data.get("PROVIDER") or ""), token)
        elif authenticator == "EXTERNALBROWSER":
            with self._lock:
                expected = self._sso.pop(str(data.get("PROOF_KEY") or ""), None)
            if expected is None or expected != token:
                raise LoginRefusal(INVALID_TOKEN, "The SSO token or proof key is not valid.")
        else:
            raise LoginRefusal(BAD_REQUEST, f"Authenticator {authenticator} is not emulated.")
        if user != self.credentials.user:
            raise LoginRefusal(WRONG_PASSWORD, "Incorrect username or password was specified.")
        session = self._open_session(user, role)
        with self._lock:
            self.logins.append(authenticator)
        return _success(
            {
                "token": session.tokens[-1],
                "masterToken": session.master_token,
                "validityInSeconds": int(self.session_lifetime),
                "masterValidityInSeconds": int(self.master_lifetime),
                "sessionId": session.session_id,
                "serverVersion": "9.40.0",
                "displayUserName": user,
                "firstLogin": False,
                "healthCheckInterval": 45,
                "idToken": None,
                "mfaToken": None,
                "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
                "sessionInfo": {
                    "databaseName": None,
                    "schemaName": None,
                    "warehouseName": None,
                    "roleName": session.role,
                },
            }
        )

    def _workload_user(self, provider: str, token: str) -> str:
        if provider.upper() != "OIDC":
            raise LoginRefusal(
                BAD_REQUEST, f"Workload identity provider {provider!r} is not emulated."
            )
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise LoginRefusal(INVALID_TOKEN, "The workload identity token is not a JWT.") from None
        with self._lock:
            user = self.workload_identities.get((str(claims.get("iss")), str(claims.get("sub"))))
        if user is None:
            raise LoginRefusal(INVALID_TOKEN, "No user has this workload identity.")
        return user

    def _oauth_token(self, raw: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
        form = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = headers.get("Authorization", "")
        if basic.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "emulated: client_credentials",
            }
        with self._lock:
            known = self.oauth_clients.get(client_id)
        if known is None or known != secret:
            return 401, {
                "error": "invalid_client",
                "error_description": "Client authentication failed.",
            }
        token = "oauth-cc-" + secrets.token_urlsafe(24)
        self.credentials.add_oauth_token(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 600}

    def _check_password(self, user: str, data: dict[str, Any]) -> None:
        with self._lock:
            expected = self.passwords.get(user)
            passcode = self.passcodes.get(user)
        if expected is None or data.get("PASSWORD") != expected:
            raise LoginRefusal(WRONG_PASSWORD, "Incorrect username or password was specified.")
        if passcode is not None and data.get("PASSCODE") != passcode:
            raise LoginRefusal(WRONG_PASSCODE, "MFA passcode is missing or incorrect.")

    def _open_session(self, user: str, role: str) -> LoginSession:
        now = time.time()
        with self._lock:
            self._next_id += 1
            session = LoginSession(
                session_id=self._next_id,
                user=user,
                role=role,
                master_token="master-" + secrets.token_urlsafe(24),
                master_expires_at=now + self.master_lifetime,
            )
            self.sessions[session.master_token] = session
        self._issue_token(session)
        return session

    def _issue_token(self, session: LoginSession) -> str:
        token = "session-" + secrets.token_urlsafe(24)
        self.credentials.add_session_token(token, expires_at=time.time() + self.session_lifetime)
        with self._lock:
            session.tokens.append(token)
        return token

    def _renew(self, headers: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        master = _snowflake_token(headers)
        with self._lock:
            session = self.sessions.get(master or "")
        if session is None or session.closed:
            raise LoginRefusal(INVALID_TOKEN, "Master token is invalid.")
        if body.get("requestType") not in ("RENEW", "ISSUE"):
            raise CortexRefusal(400, "requestType must be RENEW or ISSUE")
        if body.get("oldSessionToken") not in session.tokens:
            raise LoginRefusal(INVALID_TOKEN, "oldSessionToken does not belong to this session.")
        if self.refuse_renewals or time.time() >= session.master_expires_at:
            raise LoginRefusal(
                MASTER_EXPIRED,
                "Authentication token has expired.  The user must authenticate again.",
            )
        token = self._issue_token(session)
        with self._lock:
            self.renewals += 1
        return _success(
            {
                "sessionToken": token,
                "validityInSecondsST": int(self.session_lifetime),
                "masterToken": session.master_token,
                "validityInSecondsMT": int(session.master_expires_at - time.time()),
                "sessionId": session.session_id,
            }
        )

    def _session_of(self, headers: Mapping[str, str]) -> LoginSession:
        token = _snowflake_token(headers)
        if token is None:
            raise CortexRefusal(401, 'Authorization must be Snowflake Token="<session token>".')
        kind = self.credentials.authenticate({"Authorization": f'Snowflake Token="{token}"'})
        if kind == "EXPIRED_SESSION":
            raise LoginRefusal(SESSION_EXPIRED, "Your session has expired. Please login again.")
        with self._lock:
            for session in self.sessions.values():
                if token in session.tokens:
                    return session
        raise CortexRefusal(401, "Session token is invalid.")

    def _logout(self, headers: Mapping[str, str]) -> dict[str, Any]:
        session = self._session_of(headers)
        with self._lock:
            session.closed = True
            tokens = list(session.tokens)
        for token in tokens:
            self.credentials.revoke_session_token(token)
        return _success(None)

    def _start_sso(self, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        data = body.get("data") or {}
        if str(data.get("AUTHENTICATOR", "")).upper() != "EXTERNALBROWSER":
            raise LoginRefusal(BAD_REQUEST, "Only EXTERNALBROWSER is emulated here.")
        port = data.get("BROWSER_MODE_REDIRECT_PORT")
        if not port:
            raise LoginRefusal(BAD_REQUEST, "BROWSER_MODE_REDIRECT_PORT is missing.")
        proof_key = secrets.token_urlsafe(16)
        with self._lock:
            self._sso[proof_key] = "sso-" + secrets.token_urlsafe(16)
        origin = self.identity_provider_url or base_url
        sso_url = f"{origin}{SSO_PATH}?{urlencode({'port': port, 'proof': proof_key})}"
        return _success({"ssoUrl": sso_url, "proofKey": proof_key})


def _success(data: Any) -> dict[str, Any]:
    return {"data": data, "code": None, "message": None, "success": True}


def _snowflake_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization", "").strip()
    prefix, suffix = 'Snowflake Token="', '"'
    if value.startswith(prefix) and value.endswith(suffix) and len(value) > len(prefix) + 1:
        return value[len(prefix) : -len(suffix)]
    return None


def _json_body(raw: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    if headers.get("Content-Encoding", "").lower() == "gzip":
        try:
            raw = gzip.decompress(raw)
        except OSError:
            raise CortexRefusal(400, "body is not valid gzip") from None
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise CortexRefusal(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise CortexRefusal(400, "request body must be a JSON object")
    return body
