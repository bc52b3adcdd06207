"""Credit budgets: a gateway stops its user at a budget, before Cortex is called.

Snowflake's usage views lag 45 minutes to 3 hours (cortex-api.md, "Usage accounting"), far too late
to stop a coding agent that loops. So each gateway keeps its own tally: the ledger's estimated
credits for the current period (read once, when the first request arrives), plus what every request
served since then cost (:meth:`CreditBudget.settle`, fed by the same usage records the ledger
writes), priced per request by :mod:`.prices` (Snowflake's published rates, or
``c.CortexClaude.model_prices``, in credits at ``c.CortexClaude.usd_per_credit``).

Admission (:meth:`CreditBudget.admit`), before the request goes to Cortex:

- spent ≥ budget → 403 (Anthropic ``permission_error``): Claude Code fails at once on a 403 and
  does not retry (/work/shared/clients.md, "How it reacts to answers"); the message names the spend,
  the budget, the period, when it resets and how to raise it.
- spent + what the requests already in flight may still cost ≥ budget → 429 with ``retry-after``:
  at the edge only the requests in flight go on; the client waits for them to settle and then
  gets either room or the 403.
- otherwise the request reserves what it may cost at most (its bytes as input tokens plus the output
  ceiling, at the dearest price in the table) until its answer is complete.

A request admitted is never cut: a stream that runs past the budget ends normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import GatewayError
from .prices import estimate_credits
from .usage import UsageRecord

_NOTHING_TO_HOLD: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()

log = logging.getLogger("jupyter_cortex_claude.budget")

PERIODS = ("day", "week", "month")
WARNING_FRACTION = 0.8
# How long a client refused at the edge waits before asking again: long enough for a turn in
# flight to finish, short enough that an agent barely notices.
EDGE_RETRY_AFTER = 5.0
# A request's input tokens, at most: its body's bytes over this (JSON syntax, tool schemas and
# base64 make real bodies denser in bytes than in tokens; ~3.5 characters per token for prose).
BYTES_PER_TOKEN_AT_MOST = 2.0
HOW_TO_RAISE = (
    "To raise it, set c.CortexClaude.credit_budget (on JupyterHub, the admin sets "
    "CORTEX_CLAUDE_CREDIT_BUDGET in the spawner's environment) and restart the server."
)


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """Start and end (Unix seconds) of the UTC day, ISO week (from Monday) or month around ``now``."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        end = start + timedelta(days=1)
    elif period == "week":
        start -= timedelta(days=start.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = start.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
    else:
        raise ValueError(f"credit_budget_period must be one of {PERIODS}, got {period!r}")
    return start.timestamp(), end.timestamp()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = (
        [f"{days} d"] * bool(days)
        + [f"{hours} h"] * bool(hours)
        + [f"{minutes} min"] * bool(minutes)
    )
    return " ".join(parts)


class CreditBudget:
    """The budget of one gateway. ``credits`` 0 turns it off (every call is then a no-op)."""

    def __init__(
        self,
        *,
        credits: float = 0.0,
        period: str = "day",
        prices: Mapping[str, Mapping[str, float]] | None = None,
        output_ceiling: int = 16_384,
        spent_since: Callable[[float], float] | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        if period not in PERIODS:
            raise ValueError(f"credit_budget_period must be one of {PERIODS}, got {period!r}")
        self.credits = max(0.0, credits)
        self.period = period
        self.prices = {name: dict(price) for name, price in (prices or {}).items()}
        self.output_ceiling = output_ceiling
        self.spent_since = spent_since
        self.clock = clock
        self.log = logger or log
        self.spent = 0.0
        self.refused = 0
        self.period_start, self.period_end = period_bounds(period, clock())
        self._reservations: dict[int, float] = {}
        self._tickets = itertools.count()
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._warned: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.credits > 0

    @property
    def reserved(self) -> float:
        return sum(self._reservations.values())

    # -- admission ----------------------------------------------------------------------------

    def admit(self, request_bytes: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold a reservation for one request while it runs, or refuse it (GatewayError)."""
        if not self.enabled:
            return _NOTHING_TO_HOLD  # no generator and context manager made per request
        return self._admit(request_bytes)

    @contextlib.asynccontextmanager
    async def _admit(self, request_bytes: int) -> AsyncIterator[None]:
        await self.load()
        self._roll()
        if self.spent >= self.credits:
            self.refused += 1
            self._warn_once("exhausted")
            raise GatewayError(403, self.exhausted_message())
        if self.spent + self.reserved >= self.credits:
            self.refused += 1
            raise GatewayError(429, self.edge_message(), retry_after=EDGE_RETRY_AFTER)
        ticket = next(self._tickets)
        self._reservations[ticket] = self.most_a_request_costs(request_bytes)
        try:
            yield
        finally:
            del self._reservations[ticket]

    def most_a_request_costs(self, request_bytes: int) -> float:
        """A request's worst case: its bytes as input tokens, the output ceiling, dearest prices."""
        prices = self.prices.values()
        dearest_input = max((price.get("input", 0.0) for price in prices), default=0.0)
        dearest_output = max((price.get("output", 0.0) for price in prices), default=0.0)
        input_tokens = request_bytes / BYTES_PER_TOKEN_AT_MOST
        return (input_tokens * dearest_input + self.output_ceiling * dearest_output) / 1_000_000

    # -- accounting ---------------------------------------------------------------------------

    def settle(self, record: UsageRecord) -> None:
        """Count a finished request (the gateway's usage hook; never raises into a request)."""
        if not self.enabled:
            return
        self._roll()
        if record.started < self.period_start:
            return  # began in the last period: it counts there, as in the ledger
        tokens = {
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "cache_read_tokens": record.cache_read_tokens,
            "cache_write_tokens": record.cache_write_tokens,
        }
        self.spent += estimate_credits(record.cortex_model, tokens, self.prices)
        if self.spent >= self.credits:
            self._warn_once("exhausted")
        elif self.spent >= WARNING_FRACTION * self.credits:
            self._warn_once("warning")

    async def load(self) -> None:
        """The ledger's spend for this period, read once (off the event loop).

        Every admission waits for it, so no request settles while the ledger is read and none is
        counted twice. Without a budget there is nothing to read, nor to warn about."""
        if self._loaded or not self.enabled:
            return
        async with self._load_lock:
            if self._loaded:
                return
            if self.spent_since is not None:
                start = self.period_start
                spent = await asyncio.get_running_loop().run_in_executor(
                    None, self.spent_since, start
                )
                self.spent += spent
            self._loaded = True
            if self.spent >= self.credits:
                self._warn_once("exhausted")
            elif self.spent >= WARNING_FRACTION * self.credits:
                self._warn_once("warning")

    def _roll(self) -> None:
        now = self.clock()
        if now >= self.period_end or now < self.period_start:
            self.period_start, self.period_end = period_bounds(self.period, now)
            self.spent = 0.0
            self._warned.clear()

    def _warn_once(self, level: str) -> None:
        if level in self._warned:
            return
        self._warned.add(level)
        if level == "warning":
            self.log.warning(
                "cortex-claude: %.0f%% of the credit budget is spent (an estimated %.2f of %g "
                "credits this %s, UTC); requests are refused once it is all spent, until %s.",
                100 * self.spent / self.credits,
                self.spent,
                self.credits,
                self.period,
                _iso(self.period_end),
            )
        else:
            self.log.warning("cortex-claude: %s", self.exhausted_message())

    # -- what users read ----------------------------------------------------------------------

    def exhausted_message(self) -> str:
        return (
            f"Credit budget reached: this gateway has spent an estimated {self.spent:.2f} of its "
            f"{self.credits:g} credits for this {self.period} (UTC), so it sends nothing more to "
            f"Cortex until the budget resets at {_iso(self.period_end)} (in "
            f"{_duration(self.period_end - self.clock())}). {HOW_TO_RAISE}"
        )

    def edge_message(self) -> str:
        return (
            f"Credit budget nearly reached: an estimated {self.spent:.2f} of {self.credits:g} "
            f"credits are spent this {self.period} (UTC) and the requests already running may use "
            f"the rest. Retry in {EDGE_RETRY_AFTER:g} seconds. The budget resets at "
            f"{_iso(self.period_end)}. {HOW_TO_RAISE}"
        )

    def status(self) -> dict[str, Any] | None:
        """Spend against budget for health, ``/usage`` and the status bar (None when off)."""
        if not self.enabled:
            return None
        self._roll()
        fraction = self.spent / self.credits
        if fraction >= 1:
            state = "exhausted"
        elif fraction >= WARNING_FRACTION:
            state = "warning"
        else:
            state = "ok"
        return {
            "credits": self.credits,
            "period": self.period,
            "spent": round(self.spent, 6),
            "fraction": round(fraction, 4),
            "state": state,
            "in_flight": len(self._reservations),
            "refused": self.refused,
            "period_start": _iso(self.period_start),
            "resets_at": _iso(self.period_end),
            "loaded": self._loaded,
            "how_to_raise": HOW_TO_RAISE,
        }
