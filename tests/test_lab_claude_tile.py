"""The launcher tile, clicked in a real browser: Claude Code answers from Cortex in a terminal.

A real `jupyter lab` (with this package's server extension, against the Cortex emulator) and
headless Chromium driven by Playwright. The user's story: open JupyterLab, see the Cortex model
in the status bar, click "Claude Code (Cortex)", type a question into the terminal that opens,
and read the answer, which came from Cortex through the gateway.

Needs Chromium at /usr/bin/chromium (`apt-get install -y chromium`), Playwright for Python
(`pip install playwright`; its bundled driver is enough, no `playwright install`), the built
extension (see test_labextension_browser.py) and the pinned Claude Code CLI (tests/clients.py).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import CLAUDE_CODE_VERSION
from .conftest import TEST_PAT
from .test_labextension_browser import LAUNCHER_TILE_LABEL, RunningLab, run_jupyter_lab

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A ceiling over the bounded waits below (jupyter lab's start alone may take a minute on CI).
pytestmark = pytest.mark.timeout(240)

ANSWER = "Hello from the Cortex emulator in a terminal"
QUESTION = "say hi"
SCREENSHOT_DIR_ENV = "CORTEX_CLAUDE_SCREENSHOT_DIR"
CLAUDE_BANNER = f"Claude Code v{CLAUDE_CODE_VERSION}"
CLAUDE_ENV = "CORTEX_CLAUDE_TEST_CLAUDE"
# Where scripts/test.sh installs the pinned Claude Code CLI.
DEFAULT_CLAUDE = "/tmp/cc/node_modules/.bin/claude"
# Playwright waits, in milliseconds; each bounded so a broken page fails instead of hanging.
LAB_LOAD_MS = 60_000
STATUS_MS = 20_000
TERMINAL_OPEN_MS = 20_000
# Seconds for Claude Code to start in the terminal and for its answer to appear.
CLAUDE_READY_S = 30
ECHO_S = 10
ANSWER_S = 30


@pytest.fixture
def playwright_sync() -> Any:
    """Playwright's sync API; missing Playwright or Chromium fails the test, it never skips."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright for Python is needed: `pip install playwright` (the test extra).",
            pytrace=False,
        )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is needed at {CHROMIUM}: `apt-get update && apt-get install -y chromium`.",
            pytrace=False,
        )
    return sync_playwright


@pytest.fixture
def emulator() -> Iterator[CortexEmulator]:
    with CortexEmulator() as running:
        # Every request gets the answer: besides the user's question, Claude Code may ask the
        # model for side jobs (a conversation title) whose order is its own business.
        running.responder = lambda body: Reply.text(ANSWER)
        yield running


def pinned_claude() -> Path:
    """The pinned CLI; missing, it fails the test (a skip would hide a broken CI image)."""
    claude = Path(os.environ.get(CLAUDE_ENV) or DEFAULT_CLAUDE)
    if not os.access(claude, os.X_OK):
        pytest.fail(
            f"The Claude Code CLI is needed at {claude}: run `bash scripts/test.sh`, which "
            f"installs @anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}, or set {CLAUDE_ENV}.",
            pytrace=False,
        )
    return claude


def lab_user_settings(settings_dir: Path) -> None:
    """JupyterLab user settings: a terminal whose text is in the DOM, and no news pop-up.

    xterm.js paints on a canvas; its screen-reader mode mirrors the rows as text, which is how
    a test (or a screen reader) reads what the user sees. The news question would cover the
    terminal in the screenshot (and fetching news needs the internet).
    """
    for plugin, values in {
        "terminal-extension/plugin": {"screenReaderMode": True},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def trusting_claude_home(home: Path, project: Path) -> None:
    """A HOME where Claude Code was used before: onboarding done and the project folder trusted.

    A fresh HOME shows the theme picker and the folder-trust dialog first; that is Claude Code's
    own first-run flow, not this package's, so the test starts from a returning user.
    """
    home.mkdir(parents=True, exist_ok=True)
    state = {
        "hasCompletedOnboarding": True,
        "projects": {str(project): {"hasTrustDialogAccepted": True}},
    }
    (home / ".claude.json").write_text(json.dumps(state))


@dataclass
class LabWithCortex:
    lab: RunningLab
    emulator: CortexEmulator


@pytest.fixture
def lab_with_cortex(
    tmp_path: Path, emulator: CortexEmulator, playwright_sync: Any
) -> Iterator[LabWithCortex]:
    """A real `jupyter lab` whose cortex-claude gateway talks to the emulator with a PAT."""
    root_dir = tmp_path / "root"
    root_dir.mkdir()
    home = tmp_path / "home"
    trusting_claude_home(home, root_dir.resolve())
    claude = pinned_claude()
    settings_dir = tmp_path / "lab-user-settings"
    lab_user_settings(settings_dir)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "SNOWFLAKE_", "CLAUDE_"))
    }
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(claude.parent), env.get("PATH", "/usr/bin:/bin")]),
        SHELL="/bin/bash",
        SNOWFLAKE_TOKEN=TEST_PAT,
        JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
    )
    cortex_args = [
        "--CortexClaude.host=127.0.0.1",
        f"--CortexClaude.port={emulator.port}",
        "--CortexClaude.protocol=http",
        "--CortexClaude.account=testorg-testaccount",
        "--CortexClaude.user=testuser",
        f"--CortexClaude.claude_command={claude}",
    ]
    with run_jupyter_lab(tmp_path, root_dir, env=env, extra_args=cortex_args) as lab:
        yield LabWithCortex(lab=lab, emulator=emulator)


def terminal_text(page: Any) -> str:
    """The rows xterm.js shows in the active terminal (DOM renderer or screen-reader tree)."""
    # xterm's accessibility rows hold no-break spaces where the screen shows blanks.
    return str(
        page.evaluate(
            """() => {
                const terminal = document.querySelector('.jp-MainAreaWidget:not(.lm-mod-hidden) .jp-Terminal')
                    || document.querySelector('.jp-Terminal');
                if (!terminal) return '';
                const rows = terminal.querySelector('.xterm-accessibility-tree')
                    || terminal.querySelector('.xterm-rows');
                return rows ? rows.innerText : '';
            }"""
        )
    ).replace("\xa0", " ")


def wait_for_terminal_text(page: Any, wanted: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if wanted in terminal_text(page):
            return True
        page.wait_for_timeout(250)
    return False


def gateway_default_model(lab: RunningLab) -> str:
    request = urllib.request.Request(
        f"{lab.url}/cortex-claude/health", headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        health = json.load(response)
    assert health.get("status") == "ok", health
    return str(health["default_model"])


def save_screenshot(page: Any) -> Path:
    directory = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cortex-claude-lab-tile.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def test_clicking_the_claude_tile_opens_a_terminal_where_claude_answers_from_cortex(
    lab_with_cortex: LabWithCortex, playwright_sync: Any
) -> None:
    lab, emulator = lab_with_cortex.lab, lab_with_cortex.emulator
    default_model = gateway_default_model(lab)
    with playwright_sync() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(20_000)
            page.goto(f"{lab.url}/lab?token={lab.token}", timeout=LAB_LOAD_MS)
            try:
                tile = page.locator(".jp-LauncherCard", has_text=LAUNCHER_TILE_LABEL)
                tile.first.wait_for(state="visible", timeout=LAB_LOAD_MS)

                status = page.locator(".jp-CortexClaude-statusItem")
                page.wait_for_function(
                    "() => document.querySelector('.jp-CortexClaude-statusItem')"
                    "?.getAttribute('data-level') === 'ok'",
                    timeout=STATUS_MS,
                )
                assert status.inner_text().strip() == f"Cortex: {default_model}"

                tile.first.click()
                page.locator(".jp-Terminal").first.wait_for(
                    state="visible", timeout=TERMINAL_OPEN_MS
                )
                if not wait_for_terminal_text(page, CLAUDE_BANNER, CLAUDE_READY_S):
                    pytest.fail(
                        "Claude Code did not start in the terminal; it shows:\n"
                        + terminal_text(page)
                        + "\nserver log:\n"
                        + lab.log_tail()
                    )
                # Claude Code names the terminal tab (an xterm title escape) once it runs.
                page.locator(".lm-TabBar-tab", has_text="Claude Code").first.wait_for(
                    state="visible", timeout=TERMINAL_OPEN_MS
                )
                page.locator(".jp-Terminal").first.click()
                page.keyboard.type(QUESTION)
                # Enter only once the prompt box shows the question: keys typed while Claude
                # Code was still starting would be lost and Enter would send an empty prompt.
                assert wait_for_terminal_text(page, f"❯ {QUESTION}", ECHO_S), terminal_text(page)
                page.keyboard.press("Enter")

                answered = wait_for_terminal_text(page, ANSWER, ANSWER_S)
                shown = terminal_text(page)
            finally:
                save_screenshot(page)
        finally:
            browser.close()

    assert answered, f"the terminal never showed Cortex's answer; it shows:\n{shown}"
    asked = [
        request
        for request in emulator.inference_requests()
        if QUESTION in json.dumps(request.body.get("messages", []))
    ]
    assert asked, "the emulator received no inference request carrying the typed question"
    assert asked[0].headers.get("Authorization") == f"Bearer {TEST_PAT}"
