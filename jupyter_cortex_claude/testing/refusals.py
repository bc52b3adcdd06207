"""A refusal in Snowflake's error shape: ``{"message", "code", "error_code", "request_id"}``."""

from __future__ import annotations

from typing import Any

# Only 390144 (JWT invalid) and 390112 (session expired) are documented codes; the others are the
# emulator's own choice, stable so tests can assert them.
DEFAULT_CODES: dict[int, str] = {
    400: "399504",
    401: "390303",
    402: "399402",
    403: "399403",
    404: "399404",
    405: "399405",
    413: "399413",
    429: "399429",
    500: "399500",
    503: "399503",
}
JWT_INVALID = "390144"
SESSION_EXPIRED = "390112"


class CortexRefusal(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or DEFAULT_CODES.get(status, str(status))

    def body(self, request_id: str) -> dict[str, Any]:
        return snowflake_error_body(self.message, self.code, request_id)


def snowflake_error_body(message: str, code: str, request_id: str) -> dict[str, Any]:
    # `error_code` is Snowflake's deprecated copy of `code`; both are sent.
    return {"message": message, "code": code, "error_code": code, "request_id": request_id}
