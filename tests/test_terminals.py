"""Terminals opened by Jupyter run Claude Code on Cortex with nothing to configure."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.server.claude_terminal import (
    NODE_HINT,
    claude_prompt_argument,
    plan_claude_launch,
)
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import claude_executable
from .conftest import RunningGateway, emulator_config
from .test_standalone import OTHER_SECRETS

USER_MODEL = "claude-haiku-4-5"
SERVER_SECRET = "snowflake-pat-from-the-server-environment"


@pytest.fixture
def server_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the server inherits from the user's login: their own model, and a Snowflake PAT."""
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_MODEL", USER_MODEL)
    monkeypatch.setenv("SNOWFLAKE_PAT", SERVER_SECRET)
    for name, value in OTHER_SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def cortex_claude_config(
    server_environment: None, cortex_emulator: CortexEmulator
) -> dict[str, Any]:
    return emulator_config(cortex_emulator, claude_command=claude_executable())


def jupyter_headers(gateway: RunningGateway) -> dict[str, str]:
    return {"Authorization": f"token {gateway.jupyter_token}"}


def terminal_manager(gateway: RunningGateway) -> Any:
    return gateway.serverapp.web_app.settings["terminal_manager"]


def shell_pid(gateway: RunningGateway, name: str) -> int:
    return int(terminal_manager(gateway).terminals[name].ptyproc.pid)


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode(errors="replace") for key, value in pairs}


def child_processes(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may contain spaces; the parent pid follows the closing paren.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


async def open_jupyter_terminal(gateway: RunningGateway, **body: Any) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            gateway.url("api/terminals"), json=body, headers=jupyter_headers(gateway)
        )
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


async def wait_for(condition: Any, timeout: float = 180.0, what: str = "condition") -> Any:
    for _ in range(int(timeout / 0.2)):
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_jupyter_terminal_has_the_gateway_settings_and_keeps_the_users_own(
    running_gateway: RunningGateway,
) -> None:
    name = await open_jupyter_terminal(running_gateway)
    env = process_environment(shell_pid(running_gateway, name))

    assert env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["ANTHROPIC_BASE_URL"].endswith(
        running_gateway.serverapp.base_url + "cortex-claude/anthropic"
    )
    assert env["ANTHROPIC_AUTH_TOKEN"] == running_gateway.key
    assert env["ANTHROPIC_AUTH_TOKEN"] != running_gateway.jupyter_token
    assert env["ANTHROPIC_MODEL"] == USER_MODEL  # the user's own setting is not overwritten
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "claude-opus-4-6"
    assert env["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "claude-sonnet-4-6"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "claude-haiku-4-5"
    assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "16384"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["DISABLE_TELEMETRY"] == "1"
    assert env["CORTEX_CLAUDE_GATEWAY_KEY"] == running_gateway.key
    assert env["CORTEX_CLAUDE_GATEWAY_URL"] + "/anthropic" == env["ANTHROPIC_BASE_URL"]
    assert env["CORTEX_CLAUDE_GATEWAY_MODE"] == "server-extension"
    # The server's Snowflake secrets stay with the gateway.
    environ_text = Path(f"/proc/{shell_pid(running_gateway, name)}/environ").read_text(
        errors="replace"
    )
    for secret_name, value in {"SNOWFLAKE_PAT": SERVER_SECRET, **OTHER_SECRETS}.items():
        assert secret_name not in env
        assert value not in environ_text


async def test_the_terminal_key_opens_the_gateway_and_nothing_else_of_jupyter(
    running_gateway: RunningGateway,
) -> None:
    name = await open_jupyter_terminal(running_gateway)
    env = process_environment(shell_pid(running_gateway, name))
    key_header = {"Authorization": f"Bearer {env['ANTHROPIC_AUTH_TOKEN']}"}
    async with httpx.AsyncClient() as client:
        models = await client.get(env["ANTHROPIC_BASE_URL"] + "/v1/models", headers=key_header)
        contents = await client.get(running_gateway.url("api/contents"), headers=key_header)
        terminals = await client.get(running_gateway.url("api/terminals"), headers=key_header)
        new_terminal = await client.post(
            running_gateway.url("cortex-claude/terminals"), json={}, headers=key_header
        )
    assert models.status_code == 200
    assert contents.status_code in (401, 403)
    assert terminals.status_code in (401, 403)
    assert new_terminal.status_code == 403
    assert "Jupyter login" in new_terminal.json()["error"]["message"]


async def test_claude_typed_in_a_jupyter_terminal_answers_from_cortex(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    running_gateway.emulator.script(Reply.text("Hello from a Jupyter terminal."))
    project = tmp_path / "project"
    project.mkdir()
    name = await open_jupyter_terminal(running_gateway, cwd=str(project))
    command = (
        f"{shlex.quote(claude_executable())} -p 'say hello' --max-turns 1 --output-format json"
        " > answer.json 2> claude.err; echo $? > exit-code\r"
    )
    terminal_manager(running_gateway).get_terminal(name).ptyproc.write(command)

    await wait_for(lambda: (project / "exit-code").exists(), what="claude in the terminal")
    answer = json.loads((project / "answer.json").read_text())
    assert (project / "exit-code").read_text().strip() == "0", (project / "claude.err").read_text()
    assert answer["result"] == "Hello from a Jupyter terminal."
    assert answer["is_error"] is False
    request = running_gateway.emulator.inference_requests()[0]
    assert request.body["model"] == USER_MODEL
    assert request.headers["authorization"] == "Bearer test-pat-0123456789"


async def test_the_claude_endpoint_types_claude_into_a_fresh_terminal_in_the_folder(
    running_gateway: RunningGateway,
) -> None:
    root = Path(running_gateway.serverapp.root_dir)
    (root / "analysis" / "q3").mkdir(parents=True)
    await open_jupyter_terminal(running_gateway, name="claude_1")  # the user's own terminal
    existing = terminal_manager(running_gateway).terminals["claude_1"]

    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/terminals"),
            json={"cwd": "analysis/q3", "model": "claude-opus-4-6", "prompt": "what's in here?"},
            headers=jupyter_headers(running_gateway),
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    name = answer["name"]
    assert name != "claude_1"
    assert terminal_manager(running_gateway).terminals["claude_1"] is existing
    assert answer["claude_installed"] is True
    assert answer["command"] == shlex.join(
        [claude_executable(), "--model", "claude-opus-4-6", "--", "what's in here?"]
    )

    shell = shell_pid(running_gateway, name)
    assert Path(f"/proc/{shell}/cwd").resolve() == (root / "analysis" / "q3").resolve()

    def claude_child() -> int | None:
        for child in child_processes(shell):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"what's in here?" in argv and b"claude-opus-4-6" in argv:
                return child
        return None

    await wait_for(claude_child, timeout=60, what="claude started by the shell")


async def test_control_characters_in_any_field_are_refused_and_nothing_is_typed(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    marker = tmp_path / "x"
    (Path(running_gateway.serverapp.root_dir) / "analysis").mkdir()
    before = set(terminal_manager(running_gateway).terminals)
    hostile = [
        {"prompt": f"summarize\u0003touch {marker}\r"},  # Ctrl-C, then a command and Enter
        {"prompt": f"summarize\rtouch {marker}\r"},
        {"prompt": "colour \x1b[31mred"},
        {"prompt": "rub\x7fout"},
        {"model": f"claude-opus-4-6\rtouch {marker}\r"},
        {"model": "claude-opus-4-6\n"},
        {"cwd": "analysis\u0003"},
        {"cwd": "analysis\ttab"},
    ]
    async with httpx.AsyncClient() as client:
        for body in hostile:
            response = await client.post(
                running_gateway.url("cortex-claude/terminals"),
                json=body,
                headers=jupyter_headers(running_gateway),
            )
            assert response.status_code == 400, (body, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert "control character" in error["message"], error
    assert set(terminal_manager(running_gateway).terminals) == before
    await asyncio.sleep(1.0)  # what a shell would have needed to run a typed `touch`
    assert not marker.exists()


async def test_a_prompt_with_line_breaks_and_shell_syntax_reaches_claude_as_one_argument(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    marker = tmp_path / "x"
    touch = f"touch {marker}"
    prompt = (
        f"Summarize this notebook.\n\tThen: $({touch}); `{touch}` && {touch} | cat\n"
        "'single' \"double\" \\ $HOME * ~"
    )
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/terminals"),
            json={"prompt": prompt, "model": "claude-opus-4-6"},
            headers=jupyter_headers(running_gateway),
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["command"] == shlex.join(
        [claude_executable(), "--model", "claude-opus-4-6", "--", prompt]
    )
    shell = shell_pid(running_gateway, answer["name"])

    def claude_argv() -> list[bytes] | None:
        for child in child_processes(shell):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"--model" in argv:
                return argv
        return None

    argv = await wait_for(claude_argv, timeout=60, what="claude started by the shell")
    assert argv[1:-1] == [b"--model", b"claude-opus-4-6", b"--", prompt.encode()]
    assert not marker.exists()


def test_a_one_word_prompt_is_never_taken_for_a_claude_subcommand() -> None:
    # `claude update` updates, `claude purge` deletes project data: a notebook's one-word prompt
    # must stay a prompt.
    assert claude_prompt_argument("update") == "update "
    assert claude_prompt_argument("please update") == "please update"


async def test_a_folder_outside_the_server_root_is_refused(
    running_gateway: RunningGateway,
) -> None:
    before = set(terminal_manager(running_gateway).terminals)
    async with httpx.AsyncClient() as client:
        for cwd in ("../..", "/etc", "no/such/folder"):
            response = await client.post(
                running_gateway.url("cortex-claude/terminals"),
                json={"cwd": cwd},
                headers=jupyter_headers(running_gateway),
            )
            assert response.status_code == 400, (cwd, response.text)
    assert set(terminal_manager(running_gateway).terminals) == before


async def test_without_claude_the_terminal_offers_a_user_local_install(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.service.config.claude_command = "claude-is-not-installed-here"
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/terminals"),
            json={},
            headers=jupyter_headers(running_gateway),
        )
    answer = response.json()
    assert response.status_code == 200
    assert answer["claude_installed"] is False
    install = answer["install_command"]
    assert install.startswith("npm install -g --prefix ")
    assert install.endswith("@anthropic-ai/claude-code@2.1.330")
    assert install in answer["message"]
    terminal = terminal_manager(running_gateway).get_terminal(answer["name"])
    # Typed at the prompt, but not run: installing is the user's decision.
    await wait_for(lambda: "npm install" in "".join(terminal.read_buffer), what="the offer")


def test_without_npm_the_user_is_told_to_install_node_first() -> None:
    from jupyter_cortex_claude.config import CortexClaude

    launch = plan_claude_launch(
        CortexClaude(claude_command="claude-is-not-installed-here"),
        model=None,
        prompt=None,
        path=os.devnull,
    )
    assert launch.claude_installed is False
    assert launch.message == NODE_HINT
    assert "Node.js" in launch.typed and launch.typed.endswith("\r")
