"""Errors a person can act on: a connection configured so that it cannot work, and Cortex's error
answers.

Cortex's error bodies are written by Snowflake, not Anthropic: ``{"message", "code", "error_code",
"request_id"}`` with an ``X-Snowflake-Request-ID`` header (Snowflake's Cortex REST API page). We keep
Snowflake's message and request id (support asks for it) and add the fix where we know it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import GatewayError

THROTTLED_400 = "all requests were throttled by remote service"
SESSION_EXPIRED_CODE = "390112"


class ConfigurationError(ValueError):
    """The Snowflake connection is configured in a way that cannot work; the message says how to fix
    it."""


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
