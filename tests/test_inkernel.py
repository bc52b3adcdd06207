"""No server extension (Snowflake Notebooks, VS Code, a plain Jupyter server): the kernel serves the
gateway itself, and the magics, the widget and Claude Code use it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import run_claude_headless
from .conftest import TEST_PAT
from .kernels import RunningKernel, in_kernel_environment, running_kernel

SHOW_ENDPOINT = (
    "import json\n"
    "from jupyter_cortex_claude.kernel.discovery import find_gateway\n"
    "endpoint = find_gateway()\n"
    "print(json.dumps({'url': endpoint.anthropic_url, 'key': endpoint.key, 'mode': endpoint.mode}))"
)


@pytest.fixture
def kernel(cortex_emulator: CortexEmulator, tmp_path: Path) -> Iterator[RunningKernel]:
    with running_kernel(in_kernel_environment(cortex_emulator, tmp_path / "home"), tmp_path) as k:
        yield k


def _endpoint(kernel: RunningKernel) -> dict[str, str]:
    return json.loads(kernel.run(SHOW_ENDPOINT).stdout)


def test_a_kernel_without_a_server_extension_starts_its_own_gateway_once(
    kernel: RunningKernel, cortex_emulator: CortexEmulator
) -> None:
    first = _endpoint(kernel)
    second = _endpoint(kernel)
    assert first["mode"] == "in-kernel"
    assert first == second  # one gateway per kernel
    assert first["url"].startswith("http://127.0.0.1:")
    assert len(first["key"]) >= 32 and first["key"] != TEST_PAT

    status = kernel.run("%cortex_claude status").stdout
    assert "in-kernel" in status and "testuser" in status
    assert first["key"] not in status and TEST_PAT not in status

    cortex_emulator.script(Reply.text("Answered by the gateway inside the kernel."))
    answer = kernel.run("%%cortex_claude\nWho answers?").final_markdown
    assert answer.startswith("Answered by the gateway inside the kernel.")
    assert cortex_emulator.inference_requests()[-1].headers["authorization"] == f"Bearer {TEST_PAT}"

    # Only the key opens it: the port is reachable by every local user.
    refused = httpx.post(first["url"] + "/v1/messages", json={"model": "x"})
    assert refused.status_code == 401
    assert first["key"] not in refused.text


def test_opening_claude_in_kernel_mode_offers_the_command_not_a_link_to_the_gateway(
    kernel: RunningKernel,
) -> None:
    """Snowflake Notebooks and VS Code: the in-kernel gateway's 127.0.0.1 port is no Jupyter to
    open (issue 15); the output says what to run in a terminal instead."""
    gateway_origin = _endpoint(kernel)["url"].split("/cortex-claude")[0]
    opened = kernel.run("%cortex_claude open 'fix it'")
    bundles = [m["content"]["data"] for m in opened.of_type("display_data")]
    assert len(bundles) == 1
    shown = json.dumps(bundles[0])
    assert "open Jupyter" not in shown and gateway_origin not in shown
    assert "cortex-claude -- 'fix it'" in bundles[0]["text/plain"]
    assert "<pre>" in bundles[0]["text/html"]


def test_the_in_kernel_gateway_serves_the_real_claude_code_cli(
    kernel: RunningKernel, cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    endpoint = _endpoint(kernel)
    project = tmp_path / "project"
    project.mkdir()
    target = project / "notes.txt"
    cortex_emulator.script(
        Reply.tool_use("Write", {"file_path": str(target), "content": "from the kernel\n"}),
        Reply.text("Wrote notes.txt."),
    )
    run = asyncio.run(
        run_claude_headless(
            "write notes.txt",
            base_url=endpoint["url"],
            auth_token=endpoint["key"],
            cwd=project,
            home=tmp_path / "claude-home",
        )
    )
    assert run.result["is_error"] is False, run.result
    assert run.result["result"] == "Wrote notes.txt."
    assert target.read_text() == "from the kernel\n"
    # The in-kernel gateway records usage in the kernel's Jupyter data dir, like the server does.
    usage = kernel.run(
        "from jupyter_cortex_claude.kernel.usage_view import fetch_usage\n"
        "print(json.dumps(fetch_usage(endpoint, '1d', 'client')['groups']))",
    )
    (group,) = json.loads(usage.stdout)
    assert group["client"].startswith("claude-cli/")
    assert group["requests"] == 2
    assert (tmp_path / "home" / "jupyter-data" / "cortex_claude" / "usage.sqlite").is_file()
