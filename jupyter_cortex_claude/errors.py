"""The package's one error, :class:`GatewayError`, in the shapes Anthropic and OpenAI clients expect.

It sits at the bottom of the layers (it imports nothing of the package), so the Snowflake client, the
gateway, the handlers and the kernel side all raise the same error.

Every failure the gateway can meet, whether the client's request is wrong, our own auth refused it, or
Cortex answered with an error, becomes one :class:`GatewayError`. The handlers turn it into JSON (or an
SSE ``error`` event mid-stream) in the dialect of the endpoint that was called. The failures of an
answer that breaks after Cortex accepted the request are made by the functions at the end, so the
Cortex client and every route word them alike.
"""

from __future__ import annotations

from typing import Any

# Anthropic's documented error types by HTTP status. 402 and 403 are both "permission" problems for the
# user (budget exceeded, role or model not allowed); Claude Code fails at once on them instead of retrying.
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "permission_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
}

OPENAI_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
    529: "server_error",
}


class GatewayError(Exception):
    """A failure to report to the client.

    ``status`` is the HTTP status the client sees. A Cortex 503 ("inference timed out") is reported to
    Anthropic clients as 529 ``overloaded_error``, which is what Anthropic itself sends for overload, so
    Claude Code retries it; OpenAI clients get 503.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        param: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.request_id = request_id
        self.retry_after = retry_after
        self.param = param
        # False: the client should not retry on its own (an `x-should-retry: false` header, which
        # the Anthropic and OpenAI SDKs and Claude Code obey; docs/reliability.md).
        self.should_retry = should_retry

    @property
    def anthropic_status(self) -> int:
        return 529 if self.status == 503 else self.status

    @property
    def anthropic_type(self) -> str:
        return self.error_type or ANTHROPIC_ERROR_TYPES.get(self.status, "api_error")

    @property
    def openai_type(self) -> str:
        return OPENAI_ERROR_TYPES.get(self.status, "api_error")

    def anthropic_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": self.anthropic_type, "message": self.message},
        }
        if self.request_id:
            body["request_id"] = self.request_id
        return body

    def openai_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.openai_type,
            "param": self.param,
            "code": self.error_type or str(self.status),
        }
        if self.request_id:
            error["request_id"] = self.request_id
        return {"error": error}

    def response_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, round(self.retry_after)))
        headers.update(request_id_header(self.request_id))
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers


def request_id_header(request_id: str | None) -> dict[str, str]:
    """Snowflake's request id, passed on to the client (on answers and errors alike) so a user can
    quote it to Snowflake support."""
    return {"x-snowflake-request-id": request_id} if request_id else {}


def invalid_request(message: str, *, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)


# -- an answer that breaks after Cortex accepted the request (every route reports these alike) --


def answer_broke_off(exc: Exception) -> GatewayError:
    return GatewayError(502, f"The answer from Cortex broke off ({type(exc).__name__}).")


def not_json() -> GatewayError:
    return GatewayError(502, "Cortex answered with something that is not JSON.")


def stalled_mid_answer() -> GatewayError:
    return GatewayError(503, "Cortex stopped sending mid-answer (read timeout). Retry the request.")


def stream_broke_off(exc: Exception) -> GatewayError:
    return GatewayError(502, f"The stream from Cortex broke off mid-answer ({type(exc).__name__}).")


def malformed_stream() -> GatewayError:
    return GatewayError(502, "Cortex sent a malformed event stream.")


def incomplete_answer(missing: str, *, mid_event: bool) -> GatewayError:
    """A stream that ended before ``missing`` (its last event): never passed off as complete."""
    detail = f"the stream from Cortex ended before {missing}"
    if mid_event:
        detail += " (in the middle of an event)"
    return GatewayError(502, f"Incomplete answer: {detail}. Retry the request.")
