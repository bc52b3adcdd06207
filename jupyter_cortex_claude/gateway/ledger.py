"""The usage ledger: one SQLite row per gateway request, written off the request path.

Snowflake's own ``CORTEX_REST_API_USAGE_HISTORY`` lags 45 minutes to 3 hours (cortex-api.md, "Usage
accounting"), so the gateway keeps its own live record. What is stored is what a bill needs (time,
client, models, token counts, timing, outcome, request id), never prompt or answer text.

Writes never block a request: :meth:`UsageLedger.record` only appends a tuple to a deque, and one
writer thread drains it in batches, each batch one transaction. The writer is woken once per batch,
not once per row: a wake-up per request made the two threads trade the GIL on every request
(docs/benchmarks.md, "Profile"). The database runs in WAL mode, so a process
killed mid-write never leaves a half-written row or a corrupt file (SQLite's atomic commit), and
readers (``GET cortex-claude/usage``) never wait for the writer.

What a crash can lose: a batch is committed ``commit_interval`` (250 ms) after its first row, so a
``kill -9`` loses the requests that finished in the last ~250 ms (plus any batch SQLite was refusing
at that moment). A batch whose commit fails (locked, disk full, I/O error) is kept and retried with
backoff, never dropped; a clean stop (``close()``, the server's shutdown) commits everything queued.

The file holds who used which model when: it is created 0600 in a 0700 folder (as are SQLite's
``-wal``/``-shm`` files, which take the database's mode). ``PRAGMA user_version`` carries the schema
version; :data:`_MIGRATIONS` brings an older file up to date when it is opened.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .prices import CACHE_DISCOUNT_MIN_TOKENS, credit_prices, estimate_credits
from .usage import CLIENT_CLOSED_REQUEST, UsageRecord

log = logging.getLogger("jupyter_cortex_claude.ledger")

# Requests are priced by prices.py (Snowflake's published example rates, Tables 6(b)/6(c) of its
# Service Consumption Table, as quoted by its "Cortex REST API Billing & Cost Analysis" guide, read
# 2026-11-30; converted to credits with c.CortexClaude.usd_per_credit). The ledger stores token
# counts, never credits, so a change of prices re-prices the past too.
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

_CREATE_USAGE_V1 = f"""
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
)"""
# Schema migrations, in order: _MIGRATIONS[n] (its statements) takes a file from user_version n to
# n + 1. A file written before the ledger had a version (user_version 0) already has the version-1
# table, which `IF NOT EXISTS` leaves as is. To change the schema, append a step, never edit one:
# e.g. ("ALTER TABLE usage ADD COLUMN x TEXT",), with readers that tolerate the old rows' NULLs.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (_CREATE_USAGE_V1, "CREATE INDEX IF NOT EXISTS usage_time ON usage (time)"),
)
SCHEMA_VERSION = len(_MIGRATIONS)
_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

_STOP = object()

# Characters kept of each text column: a client can send any model id or User-Agent, and three
# requests with a 5 MiB model id once grew usage.sqlite from 1 MB to 36 MB (issue 11).
TEXT_COLUMN_CHARS = 256


def _short(value: str | None) -> str | None:
    return value[:TEXT_COLUMN_CHARS] if value is not None else None


def default_ledger_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "cortex_claude" / "usage.sqlite"


class LedgerSchemaError(sqlite3.DatabaseError):
    """The file was written by a newer jupyter-cortex-claude (a schema this one does not know)."""


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`, each step and its version in one transaction.

    The version is read inside the transaction: two servers opening one file at once run each
    step once."""
    while True:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerSchemaError(
                    f"{path} has usage-ledger schema version {version}, newer than this "
                    f"jupyter-cortex-claude's {SCHEMA_VERSION}: upgrade the package, or point "
                    "c.CortexClaude.usage_db_path at another file"
                )
            if version == SCHEMA_VERSION:
                connection.execute("COMMIT")
                return
            for statement in _MIGRATIONS[version]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        log.debug("usage ledger %s migrated to schema version %d", path, version + 1)


def _private_file(path: Path) -> None:
    """Create the ledger 0600 in a 0700 folder, and tighten a file an older version left 0644.

    Only folders this call creates are set to 0700: a configured ``usage_db_path`` may sit in a
    folder shared with other things. The default folder (``<jupyter data>/cortex_claude``) is the
    ledger's own and is tightened too. SQLite creates ``-wal`` and ``-shm`` with the database's
    permissions (sqlite.org/src os_unix.c, findCreateFileMode), so a 0600 database gives 0600 ones.
    """
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    own = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    if path.parent == default_ledger_path().parent:
        own.append(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_RDONLY, 0o600))
    for item in own:
        if item.exists() and item.stat().st_mode & 0o077 and item.stat().st_uid == os.getuid():
            os.chmod(item, 0o700 if item.is_dir() else 0o600)


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
        max_pending: int = 100_000,
    ) -> None:
        self.path = Path(path) if path else default_ledger_path()
        # Credits per million tokens (prices.credit_prices): the defaults at the default credit price.
        self.prices = dict(prices or credit_prices())
        self.batch_size = batch_size
        self.commit_interval = commit_interval
        # Rows held in memory while SQLite refuses commits (~200 bytes each): beyond this the
        # oldest are dropped, with an error in the log, rather than growing without bound.
        self.max_pending = max_pending
        _private_file(self.path)
        setup = _connect(self.path)
        try:
            _migrate(setup, self.path)
        finally:
            setup.close()
        # Rows, flush markers (threading.Event) and _STOP, in order; deque appends and pops are
        # atomic, so the request path takes no lock.
        self._queued: deque[Any] = deque()
        self._wake = threading.Event()  # set by the first row of a batch
        self._hurry = threading.Event()  # set by flush() and close(): commit now
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="cortex-usage-ledger")
        self._writer.daemon = True
        self._writer.start()

    # -- writing ------------------------------------------------------------------------------

    def record(self, record: UsageRecord) -> None:
        """Queue one request's usage (never blocks, never raises into the request)."""
        if self._closed:
            return
        self._queued.append(
            (
                record.started,
                _short(record.endpoint),
                _short(record.client),
                _short(record.client_model),
                _short(record.cortex_model),
                int(record.stream),
                record.status,
                record.input_tokens,
                record.output_tokens,
                record.cache_read_tokens,
                record.cache_write_tokens,
                record.latency_ms,
                record.first_token_ms,
                record.retries,
                _short(record.error),
                _short(record.request_id),
            )
        )
        if not self._wake.is_set():  # the writer sleeps: this row starts a batch
            self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is committed."""
        if self._closed:
            return True
        done = threading.Event()
        self._queued.append(done)
        self._hurry.set()
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queued.append(_STOP)
        self._hurry.set()
        self._wake.set()
        self._writer.join(timeout)

    def _write_loop(self) -> None:
        connection = _connect(self.path)
        pending: list[tuple[Any, ...]] = []  # rows not yet committed, oldest first
        waiting: list[threading.Event] = []  # flush() calls waiting for `pending` to empty
        retry_delay = 0.0  # > 0 while SQLite refuses commits
        try:
            stopping = False
            while not stopping:
                # Asleep until a row starts a batch (or, while SQLite refuses, the retry is due);
                # then gather rows for a short while (flush() and close() cut it short): one
                # commit and one wake-up per request cost the event loop the GIL (benchmarks/).
                if self._wake.wait(retry_delay or None) and not self._hurry.is_set():
                    self._hurry.wait(self.commit_interval)
                # Cleared before draining: a row appended after the drain finds the flag down and
                # sets it again, so no row waits for a later one.
                self._wake.clear()
                self._hurry.clear()
                items = self._take(self.batch_size)
                if len(items) == self.batch_size:
                    self._wake.set()  # more are queued: the next batch goes without waiting
                    self._hurry.set()
                pending.extend(item for item in items if isinstance(item, tuple))
                waiting.extend(item for item in items if isinstance(item, threading.Event))
                stopping = any(item is _STOP for item in items)
                if pending:
                    if self._commit(connection, pending, quiet=retry_delay > 0):
                        if retry_delay:
                            log.warning("usage ledger %s writable again", self.path)
                        pending, retry_delay = [], 0.0
                    else:
                        retry_delay = min(max(retry_delay * 2, 0.1), 5.0)
                        self._drop_beyond_limit(pending)
                if not pending:
                    for event in waiting:
                        event.set()
                    waiting.clear()
            if pending:
                # close(): a few last tries, then say how much is lost.
                for delay in (0.1, 0.5, 1.0):
                    time.sleep(delay)
                    if self._commit(connection, pending, quiet=True):
                        pending = []
                        break
                if pending:
                    log.error(
                        "usage ledger %s: %d rows not written at shutdown", self.path, len(pending)
                    )
            for event in waiting:
                event.set()
        finally:
            connection.close()

    def _take(self, limit: int) -> list[Any]:
        """Up to ``limit`` queued items, oldest first; everything up to and including _STOP."""
        queued, items = self._queued, []
        while queued and len(items) < limit:
            items.append(queued.popleft())
            if items[-1] is _STOP:
                break
        return items

    def _drop_beyond_limit(self, pending: list[tuple[Any, ...]]) -> None:
        excess = len(pending) - self.max_pending
        if excess > 0:
            del pending[:excess]
            log.error(
                "usage ledger %s: %d oldest rows dropped (still not writable)", self.path, excess
            )

    def _commit(
        self, connection: sqlite3.Connection, rows: list[tuple[Any, ...]], *, quiet: bool = False
    ) -> bool:
        """One transaction for the batch; False (rolled back, rows kept by the caller) on failure."""
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(_INSERT, rows)
            connection.execute("COMMIT")
            return True
        except sqlite3.Error as error:
            if quiet:  # the first failure was logged with its traceback; retries only at debug
                log.debug("usage ledger %s still not writable: %s", self.path, error)
            else:
                log.warning(
                    "could not write %d usage rows to %s (%s); kept and retried",
                    len(rows),
                    self.path,
                    error,
                )
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return False

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
            named = ", ".join(ascii(name[:40])[1:-1] for name in unknown[:5])
            raise ValueError(f"cannot group usage by {named}; choose from {', '.join(GROUPS)}")
        # Always split by Cortex model too, so each row can be priced; merged again below.
        keys = [*groups, *([] if "model" in groups else ["model"])]
        select = ", ".join(f"{GROUPS[name]} AS {name}" for name in keys)
        sums = ", ".join(f"SUM({column})" for column in TOKEN_COLUMNS)
        # The cache-read discount applies per request (prices.py), so its tokens are summed apart,
        # as in Snowflake's billing guide.
        discounted = (
            f"SUM(CASE WHEN cache_read_tokens >= {CACHE_DISCOUNT_MIN_TOKENS} "
            "THEN cache_read_tokens ELSE 0 END)"
        )
        query = (
            # A client's hang-up (499) is the user's choice, not a failure: counted, not an error.
            f"SELECT {select}, COUNT(*), SUM(status >= 400 AND status != {CLIENT_CLOSED_REQUEST}), "
            f"{sums}, {discounted}, SUM(latency_ms), "
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
            discounted_cache_reads = numbers[6] or 0
            latency_sum, latency_n, ttft_sum, ttft_n, retries = numbers[7:]
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
            entry["estimated_credits"] += estimate_credits(
                key_values["model"],
                {
                    **{column: count or 0 for column, count in tokens.items()},
                    "discounted_cache_read_tokens": discounted_cache_reads,
                },
                self.prices,
            )
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
    """``since`` as Unix seconds, an ISO date/time (UTC unless it says otherwise), or ``7d``/``12h``.

    Anything else, and values that are not finite (``1e309``, ``nan``, ``inf``, ``99...9d``),
    raise ``ValueError``: a non-finite ``since`` would be written back as the invalid JSON token
    ``Infinity`` (issue 11, finding 5).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    now = time.time() if now is None else now
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        since = now - float(text[:-1]) * units[text[-1]]
    else:
        since = _absolute_since(text)
    if not math.isfinite(since):
        raise ValueError(_since_error(text))
    return since


def _absolute_since(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(_since_error(text)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _since_error(text: str) -> str:
    shown = ascii(text[:40]) + ("..." if len(text) > 40 else "")
    return f"since={shown}: expected Unix seconds, an ISO date such as 2025-01-31, or 7d / 12h"


def open_ledger(
    usage_db_path: str, prices: Mapping[str, Mapping[str, float]] | None = None
) -> UsageLedger | None:
    """The ledger a gateway service records into (None when turned off with ``:none:``).

    ``prices``: credits per million tokens (:func:`.prices.credit_prices`); None: the defaults."""
    if usage_db_path.strip() == ":none:":
        return None
    try:
        return UsageLedger(usage_db_path or None, prices=prices)
    except (OSError, sqlite3.Error) as error:
        # A read-only home must not stop the gateway: usage is then simply not recorded.
        log.warning("usage ledger unavailable (%s): requests are not recorded", error)
        return None
