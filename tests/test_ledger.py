"""Every gateway request lands in the usage ledger once, with the tokens Cortex reported, and
the ledger file survives its writer being killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.gateway.ledger import (
    SCHEMA_VERSION,
    LedgerSchemaError,
    UsageLedger,
    open_ledger,
    parse_since,
)
from jupyter_cortex_claude.gateway.usage import UsageRecord
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .conftest import RunningGateway, emulator_config

SECRET_PROMPT = "the launch codes are 7-7-7 tangerine"


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator, tmp_path: Path) -> dict[str, Any]:
    return emulator_config(cortex_emulator, usage_db_path=str(tmp_path / "ledger" / "usage.sqlite"))


def _record(request_id: str, model: str = "claude-sonnet-4-6", **fields: Any) -> UsageRecord:
    record = UsageRecord(
        endpoint="anthropic",
        client="test-client/1.0",
        client_model=model,
        cortex_model=model,
        stream=True,
        input_tokens=10,
        output_tokens=20,
        latency_ms=12.5,
        first_token_ms=3.0,
        request_id=request_id,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _ledger_rows(path: Path) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute("SELECT * FROM usage ORDER BY id")]
    finally:
        connection.close()


async def test_sdk_requests_through_jupyter_are_recorded_with_the_tokens_cortex_reported(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Streamed answer in several pieces, please."))
    client = running_gateway.anthropic()
    async with client.messages.stream(
        model="claude-sonnet-4-5-20250929",
        max_tokens=1000,
        messages=[{"role": "user", "content": SECRET_PROMPT}],
    ) as stream:
        streamed = await stream.get_final_message()
    running_gateway.emulator.script(Reply.text("A plain answer."))
    plain = await client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": SECRET_PROMPT}],
    )

    ledger = running_gateway.service.ledger
    assert ledger.flush()
    rows = ledger.rows()
    assert len(rows) == 2
    first, second = rows
    assert first["client_model"] == "claude-sonnet-4-5-20250929"
    assert first["cortex_model"] == "claude-sonnet-4-5"
    assert first["stream"] == 1 and first["status"] == 200
    assert first["input_tokens"] == streamed.usage.input_tokens > 0
    assert first["output_tokens"] == streamed.usage.output_tokens > 0
    assert first["first_token_ms"] is not None and first["latency_ms"] is not None
    assert first["client"].startswith("AsyncAnthropic/Python")
    assert first["request_id"]
    assert second["cortex_model"] == "claude-haiku-4-5" and second["stream"] == 0
    assert second["input_tokens"] == plain.usage.input_tokens
    assert second["output_tokens"] == plain.usage.output_tokens
    # Never the text: not in any row, not anywhere in the file.
    assert SECRET_PROMPT not in json.dumps(rows)
    database = Path(running_gateway.service.config.usage_db_path)
    stored = b"".join(p.read_bytes() for p in database.parent.iterdir())
    assert b"tangerine" not in stored and b"Streamed answer" not in stored


async def test_usage_endpoint_aggregates_by_model_day_and_client(
    running_gateway: RunningGateway,
) -> None:
    client = running_gateway.anthropic()
    for model in ("claude-haiku-4-5", "claude-haiku-4-5", "claude-opus-4-6"):
        await client.messages.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": SECRET_PROMPT}]
        )
    rows = (running_gateway.service.ledger.flush(), running_gateway.service.ledger.rows())[1]
    headers = {"Authorization": f"Bearer {running_gateway.key}"}
    async with httpx.AsyncClient() as http:
        by_model = await http.get(running_gateway.url("cortex-claude/usage"), headers=headers)
        by_day_client = await http.get(
            running_gateway.url("cortex-claude/usage"),
            params={"group_by": "day,client", "since": "1d"},
            headers=headers,
        )
        future = await http.get(
            running_gateway.url("cortex-claude/usage"),
            params={"since": str(time.time() + 3600)},
            headers=headers,
        )
        wrong = await http.get(
            running_gateway.url("cortex-claude/usage"),
            params={"group_by": "prompt"},
            headers=headers,
        )
        anonymous = await http.get(running_gateway.url("cortex-claude/usage"))

    assert by_model.status_code == 200
    body = by_model.json()
    groups = {group["model"]: group for group in body["groups"]}
    assert set(groups) == {"claude-haiku-4-5", "claude-opus-4-6"}
    haiku = groups["claude-haiku-4-5"]
    assert haiku["requests"] == 2
    haiku_rows = [row for row in rows if row["cortex_model"] == "claude-haiku-4-5"]
    assert haiku["input_tokens"] == sum(row["input_tokens"] for row in haiku_rows)
    assert haiku["output_tokens"] == sum(row["output_tokens"] for row in haiku_rows)
    assert haiku["estimated_credits"] > 0
    assert groups["claude-opus-4-6"]["estimated_credits"] > 0
    assert body["estimated_credits"] == pytest.approx(
        haiku["estimated_credits"] + groups["claude-opus-4-6"]["estimated_credits"], abs=1e-5
    )

    day_client = by_day_client.json()["groups"]
    assert len(day_client) == 1
    assert day_client[0]["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert day_client[0]["client"].startswith("AsyncAnthropic/Python")
    assert day_client[0]["requests"] == 3

    assert future.json()["groups"] == []
    assert wrong.status_code == 400
    assert "cannot group usage by prompt" in wrong.json()["error"]["message"]
    assert anonymous.status_code in (401, 403)
    everything = by_model.text + by_day_client.text
    assert SECRET_PROMPT not in everything and running_gateway.key not in everything


async def test_a_thousand_concurrent_requests_are_recorded_exactly_once_each(
    running_gateway: RunningGateway,
) -> None:
    headers = {"Authorization": f"Bearer {running_gateway.key}", "anthropic-version": "2023-06-01"}
    url = running_gateway.url("cortex-claude/anthropic/v1/messages")
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    }
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        replies = await asyncio.gather(
            *(http.post(url, json=body, headers=headers) for _ in range(1000))
        )
    assert {reply.status_code for reply in replies} == {200}
    ledger = running_gateway.service.ledger
    assert ledger.flush()
    rows = ledger.rows()
    sent_ids = {reply.headers["x-snowflake-request-id"] for reply in replies}
    assert len(sent_ids) == 1000
    assert len(rows) == 1000
    assert {row["request_id"] for row in rows} == sent_ids
    assert sum(row["output_tokens"] for row in rows) == sum(
        reply.json()["usage"]["output_tokens"] for reply in replies
    )


def test_records_from_many_threads_each_land_once(tmp_path: Path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite", batch_size=37)

    def write(start: int) -> None:
        for number in range(start, start + 50):
            ledger.record(_record(f"req-{number}"))

    threads = [threading.Thread(target=write, args=(n * 50,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()
    rows = _ledger_rows(tmp_path / "usage.sqlite")
    assert sorted(row["request_id"] for row in rows) == sorted(f"req-{n}" for n in range(1000))


def test_a_writer_killed_mid_write_loses_at_most_the_rows_in_flight(tmp_path: Path) -> None:
    database = tmp_path / "usage.sqlite"
    writer = textwrap.dedent(
        f"""
        import sys
        from jupyter_cortex_claude.gateway.ledger import UsageLedger
        from jupyter_cortex_claude.gateway.usage import UsageRecord
        ledger = UsageLedger({str(database)!r}, batch_size=64)
        number = 0
        while True:
            for _ in range(200):
                ledger.record(UsageRecord("anthropic", "killer/1", "m", "m", True,
                                          input_tokens=number, output_tokens=1,
                                          request_id=f"r{{number}}"))
                number += 1
            ledger.flush()
            print(number, flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert process.stdout is not None
    committed = 0
    for line in process.stdout:
        committed = int(line)
        if committed >= 4000:
            break
    # Still writing (records queued after the last flush) when SIGKILL lands.
    process.send_signal(signal.SIGKILL)
    process.wait()

    connection = sqlite3.connect(database)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, distinct = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM usage"
        ).fetchone()
        incomplete = connection.execute(
            "SELECT COUNT(*) FROM usage WHERE request_id IS NULL OR client != 'killer/1'"
        ).fetchone()[0]
    finally:
        connection.close()
    assert count >= committed  # everything flushed before the kill is there
    assert count == distinct and incomplete == 0  # and nothing half-written or doubled

    reopened = UsageLedger(database)
    reopened.record(_record("after-the-crash"))
    reopened.close()
    assert _ledger_rows(database)[-1]["request_id"] == "after-the-crash"


def test_aggregates_price_tokens_per_model_and_merge_groups(tmp_path: Path) -> None:
    prices = {
        "claude-a": {"input": 1.0, "output": 10.0},
        "*": {"input": 100.0, "output": 100.0},
    }
    ledger = UsageLedger(tmp_path / "usage.sqlite", prices=prices)
    ledger.record(_record("1", "claude-a", input_tokens=1_000_000, output_tokens=100_000))
    ledger.record(_record("2", "claude-b", input_tokens=10_000, output_tokens=0, status=429))
    ledger.flush()
    by_model = {group["model"]: group for group in ledger.aggregate()}
    assert by_model["claude-a"]["estimated_credits"] == pytest.approx(2.0)
    assert by_model["claude-b"]["estimated_credits"] == pytest.approx(1.0)
    assert by_model["claude-b"]["errors"] == 1
    (by_client,) = ledger.aggregate(group_by=["client"])
    assert by_client["requests"] == 2
    assert by_client["estimated_credits"] == pytest.approx(3.0)
    ledger.close()
    assert parse_since("2d", now=1_000_000.0) == 1_000_000.0 - 2 * 86400
    assert parse_since("1970-01-02") == 86400.0
    with pytest.raises(ValueError):
        parse_since("yesterday-ish")


async def test_the_ledger_a_server_writes_is_0600_files_in_a_0700_folder(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    """Who used which model when is nobody else's business on a shared machine (issue 11, L8)."""
    client = running_gateway.anthropic()
    await client.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert running_gateway.service.ledger.flush()
    folder = tmp_path / "ledger"
    files = [folder / name for name in ("usage.sqlite", "usage.sqlite-wal", "usage.sqlite-shm")]
    assert all(file.exists() for file in files)  # the WAL files are open while the server runs
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    assert {file.name: oct(file.stat().st_mode & 0o777) for file in files} == {
        file.name: oct(0o600) for file in files
    }


def test_a_ledger_an_older_version_left_readable_is_made_private(tmp_path: Path) -> None:
    """The default folder (the ledger's own) and files created 0644/0755 before the fix."""
    folder = tmp_path / "jupyter-data" / "cortex_claude"  # conftest's JUPYTER_DATA_DIR
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    database = folder / "usage.sqlite"
    sqlite3.connect(database).close()
    os.chmod(database, 0o644)
    ledger = UsageLedger()
    assert ledger.path == database
    ledger.record(_record("after-upgrade"))
    ledger.flush()
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in folder.iterdir()}
    ledger.close()
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    assert modes == {
        "usage.sqlite": oct(0o600),
        "usage.sqlite-wal": oct(0o600),
        "usage.sqlite-shm": oct(0o600),
    }


def test_a_batch_sqlite_refuses_is_kept_and_written_once_it_can(tmp_path: Path) -> None:
    """A failed commit (here a real SQLite abort, as a full disk or an I/O error gives) is retried,
    not dropped (issue 11, L1); flush() reports that the rows are not written yet."""
    database = tmp_path / "usage.sqlite"
    UsageLedger(database).close()
    control = sqlite3.connect(database, isolation_level=None)
    control.executescript(
        """
        CREATE TABLE refuse (flag INTEGER);
        INSERT INTO refuse VALUES (1);
        CREATE TRIGGER refuse_inserts BEFORE INSERT ON usage
        WHEN (SELECT flag FROM refuse) BEGIN SELECT RAISE(ABORT, 'disk I/O error (test)'); END;
        """
    )
    ledger = UsageLedger(database, commit_interval=0.01)
    for number in range(3):
        ledger.record(_record(f"while-refused-{number}"))
    assert not ledger.flush(timeout=1.0)  # not written, and flush says so
    assert _ledger_rows(database) == []
    control.execute("UPDATE refuse SET flag = 0")
    ledger.record(_record("after"))
    assert ledger.flush(timeout=30.0)
    ledger.close()
    control.close()
    assert [row["request_id"] for row in _ledger_rows(database)] == [
        "while-refused-0",
        "while-refused-1",
        "while-refused-2",
        "after",
    ]


def test_rows_still_refused_at_close_are_retried_before_giving_up(tmp_path: Path) -> None:
    database = tmp_path / "usage.sqlite"
    UsageLedger(database).close()
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("CREATE TABLE refuse (flag INTEGER)")
    blocker.execute("INSERT INTO refuse VALUES (1)")
    blocker.execute(
        "CREATE TRIGGER refuse_inserts BEFORE INSERT ON usage WHEN (SELECT flag FROM refuse) "
        "BEGIN SELECT RAISE(ABORT, 'refused (test)'); END"
    )
    ledger = UsageLedger(database, commit_interval=0.01)
    ledger.record(_record("queued-before-close"))
    assert not ledger.flush(timeout=0.3)
    blocker.execute("UPDATE refuse SET flag = 0")  # SQLite recovers while the server stops
    ledger.close()
    blocker.close()
    assert [row["request_id"] for row in _ledger_rows(database)] == ["queued-before-close"]


def test_the_ledger_carries_a_schema_version_and_upgrades_an_unversioned_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "usage.sqlite"
    # A file as the ledger wrote it before it had a version: same table, user_version 0.
    UsageLedger(database).close()
    old = sqlite3.connect(database, isolation_level=None)
    old.execute(
        "INSERT INTO usage (time, endpoint, client, client_model, cortex_model, stream, status, "
        "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, retries, request_id) "
        "VALUES (1.0, 'anthropic', 'c', 'm', 'm', 1, 200, 1, 2, 0, 0, 0, 'old-row')"
    )
    old.execute("PRAGMA user_version = 0")
    old.close()

    UsageLedger(database).close()
    check = sqlite3.connect(database)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    check.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # as a newer release would
    check.commit()
    check.close()
    assert [row["request_id"] for row in _ledger_rows(database)] == ["old-row"]

    with pytest.raises(LedgerSchemaError, match="upgrade the package"):
        UsageLedger(database)
    with caplog.at_level("WARNING", logger="jupyter_cortex_claude.ledger"):
        assert open_ledger(str(database), {}) is None  # the gateway runs on, unrecorded
    assert "newer than this jupyter-cortex-claude" in caplog.text
