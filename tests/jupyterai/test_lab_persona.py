"""Jupyter AI's chat panel in a real browser: the Cortex persona is offered, and answers.

A real `jupyter lab` with Jupyter AI and this package (against the Cortex emulator), driven by
headless Chromium through Playwright, as tests/test_lab_claude_tile.py does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Reply

from ..conftest import TEST_PAT
from ..test_lab_claude_tile import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAB_LOAD_MS,
    SCREENSHOT_DIR_ENV,
    lab_user_settings,
    playwright_sync,  # noqa: F401 - a fixture
)
from ..test_labextension_browser import RunningLab, run_jupyter_lab
from .conftest import acp_adapter

pytestmark = pytest.mark.timeout(300)

PERSONA = "Claude Code (Cortex)"
ANSWER = "Hello from Snowflake Cortex, in Jupyter AI's chat"
QUESTION = "Say hello"
ANSWER_MS = 120_000  # the adapter and Claude Code start on the first message
PERSONA_BUTTON = "[title='Choose which persona to message']"


@pytest.fixture
def emulator() -> Iterator[CortexEmulator]:
    with CortexEmulator() as running:
        running.responder = lambda body: Reply.text(ANSWER)
        yield running


@pytest.fixture
def lab_with_jupyter_ai(tmp_path: Path, emulator: CortexEmulator) -> Iterator[RunningLab]:
    root_dir = tmp_path / "root"
    root_dir.mkdir()
    (root_dir / "cortex.chat").write_text("")
    settings_dir = tmp_path / "lab-user-settings"
    lab_user_settings(settings_dir)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "SNOWFLAKE_", "CLAUDE_"))
    }
    env.update(
        HOME=str(tmp_path / "home"),
        SNOWFLAKE_TOKEN=TEST_PAT,
        JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
    )
    cortex_args = [
        "--CortexClaude.host=127.0.0.1",
        f"--CortexClaude.port={emulator.port}",
        "--CortexClaude.protocol=http",
        "--CortexClaude.account=testorg-testaccount",
        "--CortexClaude.user=testuser",
        f"--CortexClaude.acp_adapter_command={acp_adapter()}",
        # Jupyter AI's MCP server listens on 3001 unless told otherwise: any free port here.
        "--MCPExtensionApp.mcp_port=0",
    ]
    with run_jupyter_lab(tmp_path, root_dir, env=env, extra_args=cortex_args) as lab:
        yield lab


def save_screenshot(page: Any, name: str) -> Path:
    directory = Path(os.environ.get(SCREENSHOT_DIR_ENV) or "/tmp")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def test_the_chat_panel_offers_the_cortex_persona_and_it_answers(
    lab_with_jupyter_ai: RunningLab,
    emulator: CortexEmulator,
    playwright_sync: Any,  # noqa: F811 - the fixture imported above
) -> None:
    lab = lab_with_jupyter_ai
    with playwright_sync() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(30_000)
            page.goto(f"{lab.url}/lab/tree/cortex.chat?token={lab.token}", timeout=LAB_LOAD_MS)
            try:
                page.locator(PERSONA_BUTTON).first.wait_for(state="visible", timeout=LAB_LOAD_MS)
                page.locator(PERSONA_BUTTON).first.click()
                choice = page.get_by_role("menuitem").filter(has_text=PERSONA)
                choice.first.wait_for(state="visible")
                page.wait_for_timeout(500)  # the menu fades in
                save_screenshot(page, "jupyter-ai-persona-list.png")
                choice.first.click()
                assert PERSONA in page.locator(PERSONA_BUTTON).first.inner_text()

                box = page.locator(".jp-chat-input-container textarea").first
                box.fill(QUESTION)
                box.press("Enter")
                page.get_by_text(ANSWER).first.wait_for(state="visible", timeout=ANSWER_MS)
            finally:
                save_screenshot(page, "jupyter-ai-persona-answer.png")
        finally:
            browser.close()

    asked = [r for r in emulator.inference_requests() if QUESTION in str(r.body.get("messages"))]
    assert asked, "Cortex received no request carrying the question"
    assert asked[0].headers["authorization"] == f"Bearer {TEST_PAT}"
