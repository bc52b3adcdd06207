"""What the gateway last heard from Snowflake, for ``cortex-claude/health`` and the server log.

The Cortex client reports the final outcome of every call here (not each retry): ``ok`` when
Cortex answered (a refusal of one request, such as a 400, still proves the host and the credential
work), else why not. A failure is logged once at WARNING with its cause; the same failure again
within ``log_interval`` seconds is only counted, and the count is added to the next line logged for
it, so a broken account during a busy hour writes a handful of lines, not thousands.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("jupyter_cortex_claude.cortex")

OK = "ok"
UNREACHABLE = "unreachable"
AUTH_FAILED = "auth_failed"
CONNECTOR_MISSING = "connector_missing"
NOT_ALLOWED = "not_allowed"
THROTTLED = "throttled"
CORTEX_ERROR = "cortex_error"
STATES = (OK, UNREACHABLE, AUTH_FAILED, CONNECTOR_MISSING, NOT_ALLOWED, THROTTLED, CORTEX_ERROR)

LOG_INTERVAL = 60.0
# What differs between two reports of the same failure: a request id, how often it was tried.
_PER_CALL_DETAIL = re.compile(r"\s*(\[Snowflake request id [^\]]*\]|\(tried [^)]*\))")
_MAX_REMEMBERED = 64  # distinct failures whose repeats are counted; older ones are forgotten


def state_for_status(status: int) -> str:
    """The upstream state a Cortex answer with this HTTP status stands for."""
    if status == 401:
        return AUTH_FAILED
    if status in (402, 403):
        return NOT_ALLOWED
    if status == 429:
        return THROTTLED
    if status >= 500:
        return CORTEX_ERROR
    return OK


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str | None
    at: float  # time.time()

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "at": datetime.fromtimestamp(self.at, timezone.utc).isoformat(timespec="seconds"),
        }


class UpstreamStatus:
    """The last outcome of a call to Cortex and of the reachability probe."""

    def __init__(
        self,
        *,
        log_interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.log_interval = log_interval
        self.clock = clock
        self.log = logger or log
        self.last: Outcome | None = None
        self.probe: Outcome | None = None
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def succeeded(self) -> None:
        previous = self.last
        self.last = Outcome(OK, None, self.clock())
        if previous is not None and previous.state != OK:
            self.log.info("cortex-claude: Cortex answers again (after %s).", previous.state)

    def failed(self, state: str, reason: str) -> None:
        """Remember the failure; log it at WARNING unless the same one was logged just now."""
        self.last = Outcome(state, reason, self.clock())
        if state != OK:
            self._warn(state, reason)

    def probed(self, state: str, reason: str | None) -> None:
        self.probe = Outcome(state, reason, self.clock())
        if state != OK:
            self._warn(state, reason or state)

    @property
    def state(self) -> str | None:
        """The newest of the last call's and the last probe's state; None before either."""
        newest = max(
            (o for o in (self.last, self.probe) if o is not None),
            key=lambda o: o.at,
            default=None,
        )
        return newest.state if newest else None

    def as_dict(self) -> dict[str, Any]:
        newest = max(
            (o for o in (self.last, self.probe) if o is not None),
            key=lambda o: o.at,
            default=None,
        )
        return {
            "state": newest.state if newest else "unknown",
            "reason": newest.reason if newest else None,
            "last_call": self.last.as_dict() if self.last else None,
            "probe": self.probe.as_dict() if self.probe else None,
        }

    def _warn(self, state: str, reason: str) -> None:
        key = (state, _PER_CALL_DETAIL.sub("", reason))
        now = self.clock()
        logged_at, repeats = self._logged.get(key, (None, 0))
        if logged_at is not None and now - logged_at < self.log_interval:
            self._logged[key] = (logged_at, repeats + 1)
            return
        if len(self._logged) >= _MAX_REMEMBERED:
            self._logged.clear()
        self._logged[key] = (now, 0)
        more = (
            f" ({repeats} more like it in the last {now - logged_at:.0f} s)"
            if logged_at is not None and repeats
            else ""
        )
        self.log.warning("cortex-claude upstream %s: %s%s", state, reason, more)
