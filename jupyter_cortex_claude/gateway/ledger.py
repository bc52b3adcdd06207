"""The usage ledger: one SQLite row per gateway request, written off the request path.

Snowflake's own ``CORTEX_REST_API_USAGE_HISTORY`` lags 45 minutes to 3 hours (cortex-api.md, "Usage
accounting"), so the gateway keeps its own live record. What is stored is what a bill needs (time,
client, models, token counts, timing, outcome, request id), never prompt or answer text.

Writes never block a request: :meth:`UsageLedger.record` only puts a tuple on a queue, and one writer
thread drains it in batches, each batch one transaction. The database runs in WAL mode, so a process
killed mid-write loses at most the batch in flight and never leaves a half-written row or a corrupt
file (SQLite's atomic commit), and readers (``GET cortex-claude/usage``) never wait for the writer.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .usage import CLIENT_CLOSED_REQUEST, UsageRecord

log = logging.getLogger("jupyter_cortex_claude.ledger")

# Credits per million tokens. ESTIMATES, not Snowflake's rates: Snowflake publishes them only in its
# Service Consumption Table (a PDF none of our sources quoted; searched 2026-11-30, see
# docs/budgets.md). Derived from Anthropic's list prices (pricing page as of 2026-02: Opus 4.5/4.6
# $5/$25, Sonnet 4.5 $3/$15, Haiku 4.5 $1/$5 per million input/output tokens) at an assumed 2 USD
# per credit; cache reads at 10 % of input (Snowflake's Cortex REST billing guide describes a 90 %
# discount on cached input) and cache writes at 125 %. Override with c.CortexClaude.model_prices.
DEFAULT_MODEL_PRICES: dict[str, dict[str, float]] = {
    "claude-opus-4-6": {"input": 2.5, "output": 12.5, "cache_read": 0.25, "cache_write": 3.125},
    "claude-opus-4-5": {"input": 2.5, "output": 12.5, "cache_read": 0.25, "cache_write": 3.125},
    "claude-sonnet-4-6": {"input": 1.5, "output": 7.5, "cache_read": 0.15, "cache_write": 1.875},
    "claude-sonnet-4-5": {"input": 1.5, "output": 7.5, "cache_read": 0.15, "cache_write": 1.875},
    "claude-haiku-4-5": {"input": 0.5, "output": 2.5, "cache_read": 0.05, "cache_write": 0.625},
    "*": {"input": 1.5, "output": 7.5, "cache_read": 0.15, "cache_write": 1.875},
}

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
COLUMNS = (
    "time",
    "endpoint",
    "client",
    "client_model",
    "cortex_model",
    "stream",
    "status",
    *TOKEN_COLUMNS,
    "latency_ms",
    "first_token_ms",
    "retries",
    "error",
    "request_id",
)
# group_by name -> SQL expression; days are UTC, as in Snowflake's ACCOUNT_USAGE views.
GROUPS = {
    "model": "cortex_model",
    "client_model": "client_model",
    "day": "strftime('%Y-%m-%d', time, 'unixepoch')",
    "hour": "strftime('%Y-%m-%dT%H:00', time, 'unixepoch')",
    "client": "client",
    "endpoint": "endpoint",
    "status": "status",
}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    endpoint TEXT NOT NULL,
    client TEXT NOT NULL,
    client_model TEXT NOT NULL,
    cortex_model TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    {", ".join(f"{column} INTEGER NOT NULL" for column in TOKEN_COLUMNS)},
    latency_ms REAL,
    first_token_ms REAL,
    retries INTEGER NOT NULL,
    error TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS usage_time ON usage (time);
"""
_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

_STOP = object()


def default_ledger_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "cortex_claude" / "usage.sqlite"


def estimate_credits(
    model: str, tokens: Mapping[str, int | float], prices: Mapping[str, Mapping[str, float]]
) -> float:
    """Estimated credits for token counts of one model (price table: credits per million)."""
    price = prices.get(model) or prices.get("*") or {}
    total = (
        tokens.get("input_tokens", 0) * price.get("input", 0.0)
        + tokens.get("output_tokens", 0) * price.get("output", 0.0)
        + tokens.get("cache_read_tokens", 0) * price.get("cache_read", 0.0)
        + tokens.get("cache_write_tokens", 0) * price.get("cache_write", 0.0)
    )
    return total / 1_000_000


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a crashed process loses nothing committed; only power loss may drop the
    # last transactions, and never corrupts the file (sqlite.org/pragma.html#pragma_synchronous).
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


class UsageLedger:
    def __init__(
        self,
        path: Path | str | None = None,
        *,
        prices: Mapping[str, Mapping[str, float]] | None = None,
        batch_size: int = 500,
        commit_interval: float = 0.25,
    ) -> None:
        self.path = Path(path) if path else default_ledger_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.prices = dict(prices or DEFAULT_MODEL_PRICES)
        self.batch_size = batch_size
        self.commit_interval = commit_interval
        setup = _connect(self.path)
        try:
            setup.executescript(_SCHEMA)
        finally:
            setup.close()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="cortex-usage-ledger")
        self._writer.daemon = True
        self._writer.start()

    # -- writing ------------------------------------------------------------------------------

    def record(self, record: UsageRecord) -> None:
        """Queue one request's usage (never blocks, never raises into the request)."""
        if self._closed:
            return
        self._queue.put(
            (
                record.started,
                record.endpoint,
                record.client,
                record.client_model,
                record.cortex_model,
                int(record.stream),
                record.status,
                record.input_tokens,
                record.output_tokens,
                record.cache_read_tokens,
                record.cache_write_tokens,
                record.latency_ms,
                record.first_token_ms,
                record.retries,
                record.error,
                record.request_id,
            )
        )

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is committed."""
        if self._closed:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join(timeout)

    def _write_loop(self) -> None:
        connection = _connect(self.path)
        try:
            stopping = False
            while not stopping:
                items = [self._queue.get()]
                # Gather rows for a short while before committing: one commit per request woke this
                # thread on every request and cost the event loop the GIL (benchmarks/ profile).
                deadline = time.monotonic() + self.commit_interval
                while len(items) < self.batch_size and isinstance(items[-1], tuple):
                    try:
                        items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                rows = [item for item in items if isinstance(item, tuple)]
                if rows:
                    self._commit(connection, rows)
                for item in items:
                    if isinstance(item, threading.Event):
                        item.set()
                    elif item is _STOP:
                        stopping = True
        finally:
            connection.close()

    def _commit(self, connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(_INSERT, rows)
            connection.execute("COMMIT")
        except sqlite3.Error:
            log.exception("could not write %d usage rows to %s", len(rows), self.path)
            if connection.in_transaction:
                connection.execute("ROLLBACK")

    # -- reading ------------------------------------------------------------------------------

    def rows(self, since: float | None = None) -> list[dict[str, Any]]:
        """Every recorded request since a Unix time (oldest first)."""
        with _reader(self.path) as connection:
            cursor = connection.execute(
                f"SELECT {', '.join(COLUMNS)} FROM usage WHERE time >= ? ORDER BY time, id",
                (since or 0.0,),
            )
            return [dict(zip(COLUMNS, row, strict=True)) for row in cursor]

    def aggregate(
        self, since: float | None = None, group_by: Sequence[str] = ("model",)
    ) -> list[dict[str, Any]]:
        """Requests, tokens, timing and estimated credits per group (``GROUPS`` keys)."""
        groups = list(dict.fromkeys(group_by))
        unknown = [name for name in groups if name not in GROUPS]
        if unknown:
            raise ValueError(
                f"cannot group usage by {', '.join(unknown)}; choose from {', '.join(GROUPS)}"
            )
        # Always split by Cortex model too, so each row can be priced; merged again below.
        keys = [*groups, *([] if "model" in groups else ["model"])]
        select = ", ".join(f"{GROUPS[name]} AS {name}" for name in keys)
        sums = ", ".join(f"SUM({column})" for column in TOKEN_COLUMNS)
        query = (
            # A client's hang-up (499) is the user's choice, not a failure: counted, not an error.
            f"SELECT {select}, COUNT(*), SUM(status >= 400 AND status != {CLIENT_CLOSED_REQUEST}), "
            f"{sums}, SUM(latency_ms), "
            f"COUNT(latency_ms), SUM(first_token_ms), COUNT(first_token_ms), SUM(retries) "
            f"FROM usage WHERE time >= ? GROUP BY {', '.join(keys)}"
        )
        with _reader(self.path) as connection:
            raw = connection.execute(query, (since or 0.0,)).fetchall()
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in raw:
            key_values = dict(zip(keys, row[: len(keys)], strict=True))
            numbers = row[len(keys) :]
            requests, errors = numbers[0], numbers[1]
            tokens = dict(zip(TOKEN_COLUMNS, numbers[2:6], strict=True))
            latency_sum, latency_n, ttft_sum, ttft_n, retries = numbers[6:]
            group_key = tuple(key_values[name] for name in groups)
            entry = merged.setdefault(
                group_key,
                {
                    **{name: key_values[name] for name in groups},
                    "requests": 0,
                    "errors": 0,
                    **dict.fromkeys(TOKEN_COLUMNS, 0),
                    "retries": 0,
                    "estimated_credits": 0.0,
                    "_latency": [0.0, 0],
                    "_ttft": [0.0, 0],
                },
            )
            entry["requests"] += requests
            entry["errors"] += errors or 0
            entry["retries"] += retries or 0
            for column in TOKEN_COLUMNS:
                entry[column] += tokens[column] or 0
            entry["estimated_credits"] += estimate_credits(key_values["model"], tokens, self.prices)
            entry["_latency"][0] += latency_sum or 0.0
            entry["_latency"][1] += latency_n
            entry["_ttft"][0] += ttft_sum or 0.0
            entry["_ttft"][1] += ttft_n
        result = []
        for entry in merged.values():
            latency_total, latency_n = entry.pop("_latency")
            ttft_total, ttft_n = entry.pop("_ttft")
            entry["mean_latency_ms"] = round(latency_total / latency_n, 1) if latency_n else None
            entry["mean_first_token_ms"] = round(ttft_total / ttft_n, 1) if ttft_n else None
            entry["estimated_credits"] = round(entry["estimated_credits"], 6)
            result.append(entry)
        result.sort(key=lambda entry: tuple(str(entry[name]) for name in groups))
        return result

    def credits_since(self, since: float) -> float:
        """Estimated credits of every request recorded since a Unix time (a budget's spend)."""
        self.flush()
        return sum(group["estimated_credits"] for group in self.aggregate(since, ("model",)))


class _reader:
    """A short-lived read connection (WAL readers never wait for the writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        self.connection = sqlite3.connect(self.path, timeout=30)
        return self.connection

    def __exit__(self, *exc_info: object) -> None:
        self.connection.close()


def parse_group_by(values: Iterable[str]) -> list[str]:
    """``group_by=model,day`` or repeated ``group_by`` parameters, as one list."""
    names: list[str] = []
    for value in values:
        names.extend(part.strip() for part in value.split(",") if part.strip())
    return names or ["model"]


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """``since`` as Unix seconds, an ISO date/time (UTC unless it says otherwise), or ``7d``/``12h``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    now = time.time() if now is None else now
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since={text!r}: expected Unix seconds, an ISO date such as 2025-01-31, or 7d / 12h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def open_ledger(
    usage_db_path: str, model_prices: Mapping[str, Mapping[str, float]]
) -> UsageLedger | None:
    """The ledger a gateway service records into (None when turned off with ``:none:``)."""
    if usage_db_path.strip() == ":none:":
        return None
    prices = {**DEFAULT_MODEL_PRICES, **{k: dict(v) for k, v in model_prices.items()}}
    try:
        return UsageLedger(usage_db_path or None, prices=prices)
    except (OSError, sqlite3.Error) as error:
        # A read-only home must not stop the gateway: usage is then simply not recorded.
        log.warning("usage ledger unavailable (%s): requests are not recorded", error)
        return None
