"""Errors a person can act on: a connection configured so that it cannot work, and Cortex's error
answers.

Cortex's error bodies are written by Snowflake, not Anthropic: ``{"message", "code", "error_code",
"request_id"}`` with an ``X-Snowflake-Request-ID`` header (Snowflake's Cortex REST API page). We keep
Snowflake's message and request id (support asks for it) and add the fix where we know it.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import GatewayError

THROTTLED_400 = "all requests were throttled by remote service"
SESSION_EXPIRED_CODE = "390112"


CONNECTOR_INSTALL = "pip install 'snowflake-connector-python>=3.12'"


class ConfigurationError(ValueError):
    """The Snowflake connection is configured in a way that cannot work; the message says how to fix
    it."""


class ConnectorMissing(ConfigurationError):
    """The login needs snowflake-connector-python, which is not installed."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"This Snowflake login ({kind}) needs the Snowflake connector, which "
            "jupyter-cortex-claude installs; in this environment it is missing: "
            f"{CONNECTOR_INSTALL} (or use a programmatic access token or a key pair, which need "
            "no connector)."
        )


@dataclass(frozen=True)
class ConnectFailure:
    """Why a connection to Snowflake could not be opened, in words a person can act on.

    ``heals`` says whether waiting can help (a refused connection, a resolver hiccup, a timeout) or
    not (a name that does not exist, a TLS certificate or protocol mismatch): the gateway retries
    the first kind within its deadline and reports the second at once.
    """

    what: str
    check: str
    heals: bool


def describe_connect_failure(exc: BaseException, *, connect_timeout: float) -> ConnectFailure:
    """What went wrong opening a connection, from the OS error under httpx's ``ConnectError``."""
    causes = list(_causes(exc))
    for cause in causes:
        dns = _dns_failure(cause)
        if dns is not None:
            reason, heals = dns
            return ConnectFailure(
                f"the host name does not resolve ({reason})",
                "the account identifier (`<org>-<account>`, without .snowflakecomputing.com), "
                "c.CortexClaude.host, and the DNS or VPN this machine uses",
                heals,
            )
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "reason", None) or str(cause)
            return ConnectFailure(
                f"the TLS handshake failed ({reason})",
                "the protocol and port (https on 443 for Snowflake; http only for a local "
                "emulator), and, behind a proxy that inspects TLS, its CA certificate "
                "(SSL_CERT_FILE)",
                False,
            )
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return ConnectFailure(
                "the connection was refused (nothing listens on that port)",
                "the host and port (c.CortexClaude.host / port), and the proxy, VPN or "
                "privatelink setup",
                True,
            )
        # By name too: asyncio's TimeoutError is not the builtin one before Python 3.11.
        if isinstance(cause, TimeoutError) or type(cause).__name__ in (
            "TimeoutError",
            "ConnectTimeout",
            "PoolTimeout",
        ):
            return ConnectFailure(
                f"no connection within {connect_timeout:g} s",
                "the network: a firewall, a proxy (HTTPS_PROXY) or a VPN this machine needs for "
                "Snowflake",
                True,
            )
    reason = next((str(c) for c in reversed(causes) if str(c)), type(exc).__name__)
    return ConnectFailure(
        f"the connection failed ({reason})",
        "the account host, the network (proxy, VPN, privatelink) and the account identifier",
        True,
    )


# c-ares status codes (aiodns, which aiohttp resolves with): "no such name" and "no such record"
# say the name is wrong; the others (server failure, timeout, refused) may pass.
_ARES_NOT_FOUND = (1, 4)


def _dns_failure(cause: BaseException) -> tuple[str, bool] | None:
    """(reason, heals) when ``cause`` is a failed name lookup: the standard resolver's gaierror,
    or aiodns's DNSError under aiohttp (snowflake/cortex_http.py)."""
    if isinstance(cause, socket.gaierror):
        # EAI_AGAIN is a resolver that could not answer now; the others say the name is wrong.
        return str(cause.strerror or cause), cause.errno == socket.EAI_AGAIN
    if type(cause).__name__ == "DNSError" and cause.args:
        code = cause.args[0]
        reason = str(cause.args[1]) if len(cause.args) > 1 else str(cause)
        return reason, code not in _ARES_NOT_FOUND
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups among them."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(getattr(current, "exceptions", ()) or ())
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """An upstream ``Retry-After`` (seconds or an HTTP date) in seconds; None when absent or bad.

    Cortex does not document one (cortex-api.md), but a proxy or a future Cortex may send it; RFC
    9110 section 10.2.3 allows both forms.
    """
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - time.time()
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return None
    return min(seconds, 24 * 3600.0)


def parse_snowflake_error(body: bytes) -> dict[str, Any]:
    """Snowflake's error JSON, or a dict with the body text as message when it is not JSON."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"message": body[:500].decode("utf-8", "replace").strip()}
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and "message" in error:  # Anthropic- or OpenAI-shaped
            return {**parsed, "message": error.get("message"), "code": error.get("type")}
        return parsed
    return {"message": str(parsed)[:500]}


def is_throttled_400(status: int, body: bytes) -> bool:
    """Cortex dresses a throttle as a 400; it is retried like a 429 (cortex-api.md, status codes)."""
    return status == 400 and THROTTLED_400.encode() in body.lower()


def is_error_body(payload: Any) -> bool:
    """A Snowflake error object where an answer was expected (Cortex can answer 200 with one)."""
    return (
        isinstance(payload, dict)
        and "code" in payload
        and "message" in payload
        and "content" not in payload
        and "choices" not in payload
    )


def error_from_cortex(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    model: str,
    identity: str,
) -> GatewayError:
    """The GatewayError for a non-2xx answer from Cortex, with the fix in the message."""
    info = parse_snowflake_error(body)
    raw_message = str(info.get("message") or "").strip() or f"HTTP {status}"
    request_id = headers.get("x-snowflake-request-id") or info.get("request_id")
    code = info.get("code") or info.get("error_code")
    prefix = f"Cortex answered {status}"
    if code:
        prefix += f" (code {code})"
    message = f"{prefix}: {raw_message}"
    lowered = raw_message.lower()

    if status == 400 and "unknown model" in lowered:
        message += (
            f". The model '{model}' is not available to this account or region. Pick another "
            "model, or ask an admin to enable cross-region inference "
            "(ALTER ACCOUNT SET CORTEX_ENABLED_CROSS_REGION = 'ANY_REGION')."
        )
    elif status == 400 and "max tokens of" in lowered and "exceeded" in lowered:
        # Cortex's words for a context that is too long. Claude Code compacts the conversation when
        # it sees Anthropic's phrase "prompt is too long" in a 400, so we include it.
        message = f"prompt is too long: {message}"
    elif status == 401:
        message += (
            f". Snowflake rejected the credential the gateway uses ({identity}). Check that the "
            "token or key is current and belongs to this account and user."
        )
    elif status == 402:
        message += (
            ". The Cortex consumption budget for this account or model is exhausted; ask an "
            "account admin to raise it, or try again when the budget resets."
        )
    elif status == 403:
        message += (
            f". Snowflake refused {identity} for model '{model}'. Either the user's default role "
            "lacks the SNOWFLAKE.CORTEX_USER database role (fix: GRANT DATABASE ROLE "
            "SNOWFLAKE.CORTEX_USER TO ROLE <default role>), or the model is not allowed for this "
            "account or role (CORTEX_MODELS_ALLOWLIST or model grants)."
        )
    elif status == 429 or is_throttled_400(status, body):
        status = 429
        message += ". Cortex rate limits are per account and model; wait and retry."
    elif status == 503:
        message += ". Cortex inference timed out; retry, or use a smaller request."
    if request_id:
        message += f" [Snowflake request id {request_id}]"
    return GatewayError(status, message, request_id=request_id)
