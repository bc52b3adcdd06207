"""`%cortex_claude` in a real IPython kernel started by the Jupyter server (or not)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.kernel.open_claude import OPEN_TERMINAL_MIME_TYPE
from jupyter_cortex_claude.service import GatewayService
from jupyter_cortex_claude.standalone import start_gateway_server

from .conftest import TEST_PAT, RunningGateway, emulator_config

STARTUP_FILE = (
    Path(__file__).parents[1] / "jupyter-config" / "ipython_startup" / "50-jupyter-cortex-claude.py"
)


@dataclass
class CellOutput:
    stdout: str = ""
    stderr: str = ""
    displays: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def everything(self) -> str:
        return self.stdout + self.stderr + repr(self.displays) + (self.error or "")


async def execute(client: AsyncKernelClient, code: str) -> CellOutput:
    msg_id = client.execute(code)
    output = CellOutput()
    while True:
        message = await client.get_iopub_msg(timeout=120)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                output.stdout += content["text"]
            else:
                output.stderr += content["text"]
        elif kind in ("display_data", "execute_result"):
            output.displays.append(content["data"])
        elif kind == "error":
            output.error = "\n".join(content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            return output


async def connect(kernel_manager: Any) -> AsyncKernelClient:
    # The manager's own client judges "alive" by the process, not by heartbeats that a busy
    # machine can miss.
    client: AsyncKernelClient = kernel_manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=120)
    return client


async def test_status_in_a_notebook_kernel_reports_the_server_gateway_without_secrets(
    running_gateway: RunningGateway,
) -> None:
    kernels = running_gateway.serverapp.kernel_manager
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    client = await connect(kernels.get_kernel(kernel_id))
    try:
        loaded = await execute(client, "%load_ext jupyter_cortex_claude")
        assert loaded.error is None, loaded.error
        status = await execute(client, "%cortex_claude status")
        models = await execute(client, "%cortex_claude models")
    finally:
        client.stop_channels()
        await kernels.shutdown_kernel(kernel_id, now=True)

    assert status.error is None, status.error
    assert "server-extension" in status.stdout
    assert "testorg-testaccount" in status.stdout
    assert "testuser" in status.stdout
    assert "claude-sonnet-4-6" in status.stdout
    assert running_gateway.url("cortex-claude").replace("localhost", "127.0.0.1") in status.stdout
    # The status checked the way to Snowflake (the emulator) just now.
    assert "last check:    ok at " in status.stdout
    for secret in (running_gateway.key, TEST_PAT, running_gateway.jupyter_token):
        assert secret not in status.everything
    # Which models can drive Claude Code (tool use), and which only chat.
    agents, _, chat_only = models.stdout.partition("Chat only")
    assert "Models that can drive Claude Code" in agents
    assert "claude-opus-4-6" in agents and "openai-gpt-5" in agents
    assert "llama3.1-70b" in chat_only and "mistral-large2" in chat_only
    assert "llama3.1-70b" not in agents


async def test_the_magic_asks_jupyterlab_to_open_claude_in_the_notebooks_folder(
    running_gateway: RunningGateway,
) -> None:
    root = Path(running_gateway.serverapp.root_dir)
    (root / "reports" / "2025").mkdir(parents=True)
    kernels = running_gateway.serverapp.kernel_manager
    # As JupyterLab starts a notebook's kernel: in the notebook's folder.
    kernel_id = await kernels.start_kernel(kernel_name="python3", path="reports/2025")
    client = await connect(kernels.get_kernel(kernel_id))
    try:
        await execute(client, "%load_ext jupyter_cortex_claude")
        opened = await execute(client, "%cortex_claude --model claude-opus-4-6 tidy the plots")
    finally:
        client.stop_channels()
        await kernels.shutdown_kernel(kernel_id, now=True)

    assert opened.error is None, opened.error
    (bundle,) = opened.displays
    request = bundle[OPEN_TERMINAL_MIME_TYPE]
    assert request["cwd"] == "reports/2025"
    assert request["model"] == "claude-opus-4-6"
    assert request["prompt"] == "tidy the plots"
    assert len(request["nonce"]) >= 16
    assert "claude --model claude-opus-4-6 'tidy the plots'" in bundle["text/plain"]
    assert "<pre>" in bundle["text/html"] and "tidy the plots" in bundle["text/html"]
    assert running_gateway.key not in repr(bundle)

    # What the JupyterLab extension does with it: ask the server for the terminal.
    async with httpx.AsyncClient() as http:
        response = await http.post(
            running_gateway.url("cortex-claude/terminals"),
            json={key: request[key] for key in ("cwd", "model", "prompt")},
            headers={"Authorization": f"token {running_gateway.jupyter_token}"},
        )
    assert response.status_code == 200, response.text
    terminal = running_gateway.serverapp.web_app.settings["terminal_manager"].get_terminal(
        response.json()["name"]
    )
    shell_cwd = Path(f"/proc/{terminal.ptyproc.pid}/cwd").resolve()
    assert shell_cwd == (root / "reports" / "2025").resolve()


async def test_the_codex_magic_asks_jupyterlab_to_open_codex_in_the_notebooks_folder(
    running_gateway: RunningGateway,
) -> None:
    root = Path(running_gateway.serverapp.root_dir)
    (root / "etl").mkdir()
    kernels = running_gateway.serverapp.kernel_manager
    kernel_id = await kernels.start_kernel(kernel_name="python3", path="etl")
    client = await connect(kernels.get_kernel(kernel_id))
    try:
        await execute(client, "%load_ext jupyter_cortex_claude")
        opened = await execute(client, "%cortex_claude codex --model openai-gpt-5 fix the tests")
    finally:
        client.stop_channels()
        await kernels.shutdown_kernel(kernel_id, now=True)

    assert opened.error is None, opened.error
    (bundle,) = opened.displays
    request = bundle[OPEN_TERMINAL_MIME_TYPE]
    assert request["agent"] == "codex"
    assert request["cwd"] == "etl"
    assert request["model"] == "openai-gpt-5"
    assert request["prompt"] == "fix the tests"
    assert "codex -m openai-gpt-5 'fix the tests'" in bundle["text/plain"]
    assert "start Codex on Cortex" in bundle["text/plain"]
    assert running_gateway.key not in repr(bundle)


async def test_a_kernel_outside_jupyter_uses_the_gateway_named_in_its_environment(
    cortex_emulator: Any, tmp_path: Path
) -> None:
    service = GatewayService(CortexClaude(**emulator_config(cortex_emulator)))
    gateway = await start_gateway_server(service)
    kernel = AsyncKernelManager(kernel_name="python3")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JPY_")},
        "CORTEX_CLAUDE_GATEWAY_URL": gateway.gateway_url,
        "CORTEX_CLAUDE_GATEWAY_KEY": gateway.key,
        "CORTEX_CLAUDE_GATEWAY_MODE": "standalone",
    }
    await kernel.start_kernel(env=env, cwd=str(tmp_path))
    client = await connect(kernel)
    try:
        await execute(client, "%load_ext jupyter_cortex_claude")
        status = await execute(client, "%cortex_claude status")
        opened = await execute(client, "%cortex_claude fix it")
    finally:
        client.stop_channels()
        await kernel.shutdown_kernel(now=True)
        await gateway.stop()

    assert "standalone" in status.stdout
    assert "testorg-testaccount" in status.stdout
    assert gateway.key not in status.everything
    (bundle,) = opened.displays
    # No server extension, so nothing for JupyterLab to open: the command brings its own gateway.
    assert OPEN_TERMINAL_MIME_TYPE not in bundle
    assert "cortex-claude -- 'fix it'" in bundle["text/plain"]


async def test_the_ipython_startup_file_registers_the_magic_without_load_ext(
    tmp_path: Path,
) -> None:
    ipython_dir = tmp_path / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    shutil.copy(STARTUP_FILE, startup / STARTUP_FILE.name)
    kernel = AsyncKernelManager(kernel_name="python3")
    await kernel.start_kernel(env={**os.environ, "IPYTHONDIR": str(ipython_dir)})
    client = await connect(kernel)
    try:
        helped = await execute(client, "%cortex_claude help")
        names = await execute(client, "print(sorted(k for k in dir() if 'cortex' in k))")
    finally:
        client.stop_channels()
        await kernel.shutdown_kernel(now=True)

    assert helped.error is None, helped.error
    assert "%cortex_claude status" in helped.stdout
    assert names.stdout.strip() == "[]"  # nothing left in the user's namespace


def test_status_never_prints_a_key_even_if_health_had_one() -> None:
    from jupyter_cortex_claude.kernel.discovery import GatewayEndpoint
    from jupyter_cortex_claude.kernel.magics import status_text

    endpoint = GatewayEndpoint(
        "http://127.0.0.1:1/cortex-claude/anthropic", "", "the-key", "in-kernel", None
    )
    text = status_text(endpoint, {"status": "ok", "account": "acme"}, ["claude-sonnet-4-6"])
    assert "the-key" not in text and "the-key" not in repr(endpoint)
    assert "in-kernel" in text and "acme" in text
