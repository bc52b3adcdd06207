"""Every process we launch to run an agent: what it finds in its environment, where its ``claude``
comes from, and (opt-in) which files its own tools may not read.

The launchers are the real ones (a Jupyter terminal, ``%%cortex_claude --agent`` in a real kernel,
the ``cortex-claude`` console script) and the agent is the pinned Claude Code CLI, driven by the
Cortex emulator's scripted answers (a ``Bash`` call to ``env``: what an agent would do to find a
secret).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.claude_env import agent_environment, hidden_variables
from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import claude_executable
from .conftest import TEST_PAT, RunningGateway, emulator_config
from .kernels import in_kernel_environment, running_kernel
from .test_standalone import (
    OTHER_SECRETS,
    assert_no_secret,
    emulator_environment,
    parse_env_dump,
    run_cortex_claude,
)
from .test_terminals import child_processes, shell_pid, wait_for


def allow_bash(home: Path) -> None:
    """User settings that let headless Claude Code run the scripted ``env`` command."""
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text(
        json.dumps({"permissions": {"allow": ["Bash"]}})
    )


# -- one environment for every agent --------------------------------------------------------------


def test_the_hidden_patterns_cover_the_snowflake_cli_and_connector_secrets() -> None:
    environ = {
        **OTHER_SECRETS,
        "SNOWFLAKE_TOKEN": "t",
        "SNOWFLAKE_PAT": "p",
        "SNOWFLAKE_PASSWORD": "p",
        "SNOWFLAKE_PRIVATE_KEY_FILE_PWD": "p",
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "p",
        "SNOWFLAKE_ACCOUNT": "kept",
        "SNOWFLAKE_USER": "kept",
        "SNOWFLAKE_CONNECTIONS_PROD_ACCOUNT": "kept",
        "SNOWFLAKE_HOME": "kept",
        "HOME": "kept",
    }
    hidden = set(hidden_variables(environ, CortexClaude().terminal_hidden_env))
    assert hidden == {name for name, value in environ.items() if value != "kept"}

    env = agent_environment(
        CortexClaude(),
        gateway_url="http://127.0.0.1:1/cortex-claude",
        key="gateway-key",
        mode="standalone",
        inherited={**environ, "ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": "elsewhere"},
    )
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1/cortex-claude/anthropic"
    assert env["ANTHROPIC_AUTH_TOKEN"] == env["CORTEX_CLAUDE_GATEWAY_KEY"] == "gateway-key"
    assert "ANTHROPIC_API_KEY" not in env
    assert not hidden & set(env)
    assert env["SNOWFLAKE_ACCOUNT"] == env["HOME"] == "kept"


def test_the_agent_of_a_kernel_gets_the_gateway_and_none_of_the_kernels_secrets(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    allow_bash(tmp_path / "home")
    dump = notebooks / "seen-env.txt"
    cortex_emulator.script(
        Reply.tool_use("Bash", {"command": f"env > {dump}"}, text="Looking."),
        Reply.text("Done looking."),
    )
    env = in_kernel_environment(
        cortex_emulator,
        tmp_path / "home",
        CORTEX_CLAUDE_COMMAND=claude_executable(),
        **OTHER_SECRETS,
    )
    with running_kernel(env, notebooks) as kernel:
        final = kernel.run(
            "%%cortex_claude --agent --max-turns 3\nLook at the environment.", timeout=240
        ).final_markdown
    assert "Done looking." in final, final
    assert dump.exists(), final
    seen = parse_env_dump(dump)
    assert seen["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert seen["ANTHROPIC_BASE_URL"].endswith("/cortex-claude/anthropic")
    assert seen["ANTHROPIC_AUTH_TOKEN"] == seen["CORTEX_CLAUDE_GATEWAY_KEY"]
    assert seen["CORTEX_CLAUDE_GATEWAY_URL"] + "/anthropic" == seen["ANTHROPIC_BASE_URL"]
    assert seen["CORTEX_CLAUDE_GATEWAY_MODE"] == "in-kernel"
    assert seen["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert_no_secret(dump)
    # Claude Code's requests reached Cortex with the gateway's credential, not the agent's.
    assert cortex_emulator.inference_requests()[0].headers["authorization"] == f"Bearer {TEST_PAT}"


# -- one lookup for `claude` -----------------------------------------------------------------------


@pytest.fixture
def prefix_only_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose only Claude Code is ``~/.local/bin/claude`` (the install prefix we document),
    on a PATH that has none."""
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "claude").symlink_to(claude_executable())
    monkeypatch.delenv("CORTEX_CLAUDE_COMMAND", raising=False)
    assert shutil.which("claude", path=os.environ.get("PATH")) is None
    return home


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator, tmp_path: Path) -> dict[str, Any]:
    # The server looks under the configured prefix (the default "~/.local" is the test's HOME).
    return emulator_config(cortex_emulator, claude_install_prefix=str(tmp_path / "home" / ".local"))


async def test_a_claude_only_in_the_install_prefix_is_found_by_the_status_and_the_terminal(
    prefix_only_claude: Path, running_gateway: RunningGateway
) -> None:
    installed = str(prefix_only_claude / ".local" / "bin" / "claude")
    token = {"Authorization": f"token {running_gateway.jupyter_token}"}
    async with httpx.AsyncClient() as client:
        health = (
            await client.get(running_gateway.url("cortex-claude/health"), headers=token)
        ).json()
        opened = await client.post(
            running_gateway.url("cortex-claude/terminals"),
            json={"prompt": "say hi from the prefix"},
            headers=token,
        )
    assert health["claude_installed"] is True
    assert health["claude_install_hint"] is None
    answer = opened.json()
    assert opened.status_code == 200, opened.text
    assert answer["claude_installed"] is True
    assert answer["command"].startswith(installed + " ")

    shell = shell_pid(running_gateway, answer["name"])

    def claude_child() -> bool:
        for child in child_processes(shell):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if argv[0] == installed.encode() and b"say hi from the prefix" in argv:
                return True
        return False

    await wait_for(claude_child, timeout=60, what="the prefix's claude started by the shell")


def test_a_claude_only_in_the_install_prefix_runs_the_kernels_agent(
    prefix_only_claude: Path, cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    cortex_emulator.script(Reply.text("Hi from the prefix's Claude Code."))
    env = in_kernel_environment(cortex_emulator, prefix_only_claude)
    env.pop("CORTEX_CLAUDE_COMMAND", None)
    with running_kernel(env, tmp_path) as kernel:
        final = kernel.run("%%cortex_claude --agent --max-turns 1\nSay hi.", timeout=240)
    assert "Hi from the prefix's Claude Code." in final.final_markdown, final.stderr


async def test_a_claude_only_in_the_install_prefix_is_launched_by_cortex_claude(
    prefix_only_claude: Path, cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    cortex_emulator.script(Reply.text("Hi from the prefix, standalone."))
    code, stdout, stderr = await run_cortex_claude(
        "--",
        "-p",
        "say hi",
        "--max-turns",
        "1",
        "--output-format",
        "json",
        env=emulator_environment(cortex_emulator, prefix_only_claude),
        cwd=tmp_path,
    )
    assert code == 0, stderr[-2000:]
    assert json.loads(stdout)["result"] == "Hi from the prefix, standalone."


async def test_without_claude_every_entry_point_gives_the_same_pinned_install_command(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    home = tmp_path / "empty-home"
    code, _, stderr = await run_cortex_claude(
        env=emulator_environment(cortex_emulator, home), cwd=tmp_path
    )
    expected = f"npm install -g --prefix {home}/.local @anthropic-ai/claude-code@2.1.330"
    assert code == 127
    assert expected in stderr


# -- opt-in: Claude Code's own Read/Edit tools kept away from the secrets' files -------------------


@pytest.mark.parametrize("deny", [False, True])
async def test_deny_agent_secret_reads_keeps_the_read_tool_from_jupyters_runtime_files(
    deny: bool, cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    server_file = runtime / "jpserver-4242.json"
    server_file.write_text(json.dumps({"token": "jupyter-token-secret-4242"}))
    config = tmp_path / "cortex_claude_config.json"
    config.write_text(json.dumps({"CortexClaude": {"deny_agent_secret_reads": deny}}))
    cortex_emulator.script(
        Reply.tool_use("Read", {"file_path": str(server_file)}, text="Reading it."),
        Reply.text("Done reading."),
    )
    env = {
        **emulator_environment(cortex_emulator, tmp_path / "home"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
    }
    code, _, stderr = await run_cortex_claude(
        "--config",
        str(config),
        "--claude",
        claude_executable(),
        "--",
        "-p",
        "read the server file",
        "--max-turns",
        "2",
        env=env,
        cwd=tmp_path,
    )
    assert code == 0, stderr[-2000:]
    follow_up = json.dumps(cortex_emulator.inference_requests()[1].body)
    # The file's content reached the model only when reads were allowed.
    assert ("jupyter-token-secret-4242" in follow_up) is not deny
    if deny:
        assert "denied" in follow_up.lower(), follow_up[-1500:]


@pytest.fixture(autouse=True)
def _no_inherited_command(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A developer's own CORTEX_CLAUDE_COMMAND must not decide which claude these tests find.
    monkeypatch.delenv("CORTEX_CLAUDE_COMMAND", raising=False)
    yield
