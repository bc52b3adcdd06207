"""A Snowflake that cannot be reached, or whose login cannot run, is told to the user in seconds,
shown by ``cortex-claude/health``, and written to the server log once (issue 12, items 1-3).

Through a real Jupyter server, the real Claude Code CLI with its default retries, and the Cortex
emulator (stopped, or started late, to play an outage).
"""

from __future__ import annotations

import io
import logging
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .battery import ANTHROPIC_MESSAGES, OPENAI_CHAT
from .clients import run_claude_headless
from .conftest import TEST_PAT, RunningGateway, emulator_config

DEFAULT_RETRIES = {
    name: getattr(CortexClaude(), name)
    for name in ("max_retries", "retry_backoff", "retry_deadline")
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


@pytest.fixture
def cortex_claude_config(request: pytest.FixtureRequest, cortex_emulator: CortexEmulator) -> Any:
    return emulator_config(cortex_emulator, **getattr(request, "param", {}))


@pytest.fixture
def server_log(jp_serverapp: Any) -> Iterator[io.StringIO]:
    """What the Jupyter server's log handlers write, from before the extension starts."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    jp_serverapp.log.addHandler(handler)
    yield stream
    jp_serverapp.log.removeHandler(handler)


async def health(gateway: RunningGateway, *, probe: bool = False) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(
            gateway.url("cortex-claude/health") + ("?probe=1" if probe else ""),
            headers={"Authorization": f"token {gateway.jupyter_token}"},
        )
    assert response.status_code == 200, response.text
    return response.json()


async def ask(gateway: RunningGateway, endpoint: str = ANTHROPIC_MESSAGES) -> httpx.Response:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
    }
    if endpoint == ANTHROPIC_MESSAGES:
        body["max_tokens"] = 50
    async with httpx.AsyncClient(timeout=120) as client:
        return await client.post(
            gateway.url(endpoint), headers={"Authorization": f"Bearer {gateway.key}"}, json=body
        )


async def started_probe(gateway: RunningGateway) -> None:
    task = gateway.service._probe_task
    if task is not None:
        await task


# -- 1. the user learns why, in seconds -------------------------------------------------------


@pytest.mark.parametrize(
    "cortex_claude_config", [{"port": closed_port(), **DEFAULT_RETRIES}], indirect=True
)
async def test_claude_code_with_its_default_retries_shows_why_snowflake_is_unreachable_in_30_s(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    port = running_gateway.service.connection.port
    started = time.monotonic()
    run = await run_claude_headless(
        "say hi",
        base_url=running_gateway.anthropic_url,
        auth_token=running_gateway.key,
        cwd=project,
        home=tmp_path / "home",
        max_turns=1,
        extra_env={"CLAUDE_CODE_MAX_RETRIES": None},  # Claude Code's own default (10)
        timeout=240,
    )
    elapsed = time.monotonic() - started
    result = run.result
    assert result["is_error"] is True, result
    shown = result["result"]
    assert f"Could not reach Snowflake at 127.0.0.1:{port}" in shown, shown
    assert "connection was refused" in shown and "Check the host and port" in shown, shown
    assert elapsed < 30, f"the user waited {elapsed:.0f} s"  # the bound


# -- 2. health tells the truth ----------------------------------------------------------------


async def test_health_reports_the_upstream_before_and_after_it_fails(
    running_gateway: RunningGateway,
) -> None:
    await started_probe(running_gateway)
    before = await health(running_gateway, probe=True)
    assert before["status"] == "ok"
    assert before["upstream"]["probe"]["state"] == "ok"

    running_gateway.emulator.stop()  # Snowflake goes away
    refused = await ask(running_gateway)
    assert refused.status_code == 502, refused.text

    after = await health(running_gateway)
    assert after["status"] == "unreachable"
    upstream = after["upstream"]
    assert upstream["state"] == "unreachable"
    assert upstream["last_call"]["state"] == "unreachable"
    assert "Could not reach Snowflake at 127.0.0.1:" in upstream["reason"]
    assert upstream["last_call"]["at"].endswith("+00:00")

    probed = await health(running_gateway, probe=True)
    assert probed["upstream"]["probe"]["state"] == "unreachable"
    assert "connection was refused" in probed["upstream"]["probe"]["reason"]


async def test_health_reports_a_credential_snowflake_refused(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.revoke(TEST_PAT)
    refused = await ask(running_gateway, OPENAI_CHAT)
    assert refused.status_code == 401, refused.text
    report = await health(running_gateway)
    assert report["status"] == "auth_failed"
    assert "rejected the credential" in report["upstream"]["reason"]
    assert TEST_PAT not in str(report)


@pytest.mark.parametrize(
    "cortex_claude_config",
    [{"authenticator": "snowflake", "password": "pw-not-used", "token": ""}],
    indirect=True,
)
async def test_health_and_the_error_name_the_missing_connector_and_its_install_command(
    jp_serverapp: Any,
    monkeypatch: pytest.MonkeyPatch,
    running_gateway: RunningGateway,
) -> None:
    # The connector is installed in the test environment; this makes `import` fail as it would
    # without it (None in sys.modules is Python's "not importable").
    monkeypatch.setitem(sys.modules, "snowflake.connector", None)
    await started_probe(running_gateway)
    report = await health(running_gateway, probe=True)
    assert report["status"] == "connector_missing"
    install = "pip install 'snowflake-connector-python>=3.12'"
    assert install in report["upstream"]["reason"]

    refused = await ask(running_gateway)
    assert refused.status_code == 403, refused.text
    assert install in refused.json()["error"]["message"]
    assert running_gateway.emulator.inference_requests() == []
    assert "pw-not-used" not in str(report) + refused.text


# -- 3. the server log says why, once ---------------------------------------------------------


@pytest.mark.parametrize(
    "cortex_claude_config", [{"port": closed_port(), "retry_deadline": 1.0}], indirect=True
)
async def test_an_unreachable_host_is_one_warning_with_its_cause_and_no_ready_line(
    server_log: io.StringIO, running_gateway: RunningGateway
) -> None:
    await started_probe(running_gateway)
    for _ in range(3):
        assert (await ask(running_gateway)).status_code == 502
    lines = server_log.getvalue().splitlines()
    warnings = [line for line in lines if line.startswith("WARNING jupyter_cortex_claude")]
    assert len(warnings) == 1, lines
    port = running_gateway.service.connection.port
    assert (
        f"Could not reach Snowflake at 127.0.0.1:{port}: the connection was refused"
        in (warnings[0])
    )
    assert not [line for line in lines if "gateway ready" in line], lines
    text = server_log.getvalue()
    assert TEST_PAT not in text and running_gateway.key not in text
    assert "authorization" not in text.lower()  # no header dump


@pytest.mark.parametrize(
    ("jp_argv", "debug_shown"),
    [(["--ServerApp.log_level=DEBUG"], True), (["--ServerApp.log_level=INFO"], False)],
    ids=["debug", "info"],
)
async def test_the_gateways_loggers_follow_the_servers_level_and_handlers(
    server_log: io.StringIO, running_gateway: RunningGateway, debug_shown: bool
) -> None:
    running_gateway.emulator.script(Reply.text("hello"))
    answered = await ask(running_gateway)
    assert answered.status_code == 200, answered.text
    shaping = [line for line in server_log.getvalue().splitlines() if "shaping:" in line]
    if debug_shown:
        assert shaping and shaping[0].startswith("DEBUG jupyter_cortex_claude.gateway"), shaping
    else:
        assert shaping == []
