"""The JupyterLab extension, seen in a real browser: a real `jupyter lab` and headless Chromium.

JupyterLab renders on the client, so the check loads /lab in Chromium with a virtual-time
budget (time only advances while the page is idle, so slow machines still load fully) and
reads the DOM Chromium dumps afterwards.

Needs Chromium (`apt-get install -y chromium`) and the built extension: either installed
(`pip install .` puts it in share/jupyter/labextensions) or built in the source tree
(`cd labextension && jlpm install && jlpm build:prod`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jupyter_core.paths import jupyter_path

import jupyter_cortex_claude

EXTENSION_NAME = "jupyter-cortex-claude"
LAUNCHER_TILE_LABEL = "Claude Code (Cortex)"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_INSTALL_HINT = (
    "This test drives a headless Chromium, and none was found on PATH "
    f"(looked for {', '.join(CHROMIUM_NAMES)}). Install it: "
    "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu)."
)
# Virtual milliseconds Chromium lets the page run before dumping the DOM; the second,
# longer budget is only used if the first did not show JupyterLab's launcher yet.
VIRTUAL_TIME_BUDGETS_MS = (20_000, 60_000)
# Saves a screenshot of the loaded page here when set (useful as a CI artifact).
SCREENSHOT_ENV = "CORTEX_CLAUDE_SCREENSHOT"


@pytest.fixture
def chromium() -> str:
    """Chromium's path; asked for before jupyter lab starts so a missing browser fails fast."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(CHROMIUM_INSTALL_HINT, pytrace=False)


def source_tree_build() -> Path | None:
    """The extension built by `jlpm build:prod` next to the Python package, if present."""
    built = Path(jupyter_cortex_claude.__file__).parent / "labextension"
    if (built / "package.json").is_file() and (built / "static" / "style.js").is_file():
        return built
    return None


def installed_extension() -> Path | None:
    for directory in jupyter_path("labextensions"):
        candidate = Path(directory) / EXTENSION_NAME
        if (candidate / "package.json").is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningLab:
    url: str
    token: str
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def run_jupyter_lab(
    tmp_path: Path,
    root_dir: Path,
    *,
    env: dict[str, str],
    extra_args: Sequence[str] = (),
) -> Iterator[RunningLab]:
    """A real `jupyter lab` on 127.0.0.1 with a token, a fresh config and workspace, and this
    tree's built extension; stopped on exit. ``env`` is the server's environment to start from."""
    data_path = tmp_path / "jupyter-path"
    extensions_dir = data_path / "labextensions"
    extensions_dir.mkdir(parents=True)
    # A build in the source tree is newer than an installed copy while developing; putting
    # it first on JUPYTER_PATH is what `jupyter labextension develop` does with a symlink.
    built = source_tree_build()
    if built is not None:
        (extensions_dir / EXTENSION_NAME).symlink_to(built, target_is_directory=True)
    elif installed_extension() is None:
        pytest.fail(
            f"The {EXTENSION_NAME} JupyterLab extension is neither built nor installed: run "
            "`cd labextension && jlpm install && jlpm build:prod` or `pip install .`.",
            pytrace=False,
        )
    env = {
        **env,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_PATH": os.pathsep.join(filter(None, [str(data_path), env.get("JUPYTER_PATH")])),
    }
    token = secrets.token_hex(16)
    port = free_port()
    log_path = tmp_path / "jupyter-lab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra_args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    lab = RunningLab(url=f"http://127.0.0.1:{port}", token=token, log_path=log_path)
    try:
        wait_until_serving(lab, process)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[RunningLab]:
    """A real `jupyter lab` on 127.0.0.1 with a token, a fresh config and workspace."""
    root_dir = tmp_path / "root"
    root_dir.mkdir()
    with run_jupyter_lab(tmp_path, root_dir, env=dict(os.environ)) as lab:
        yield lab


def wait_until_serving(lab: RunningLab, process: subprocess.Popen[bytes]) -> None:
    request = urllib.request.Request(
        f"{lab.url}/api/status", headers={"Authorization": f"token {lab.token}"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer /api/status:\n{lab.log_tail()}")


def chromium_command(chromium: str, profile_dir: Path, budget_ms: int) -> list[str]:
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        "--window-size=1280,800",
        f"--virtual-time-budget={budget_ms}",
    ]


@dataclass
class RenderedElement:
    classes: set[str]
    attributes: dict[str, str]
    text: str = ""


class ElementsByClass(HTMLParser):
    """Collects the elements carrying any of the wanted classes, with their text."""

    VOID_TAGS = frozenset({"br", "img", "input", "meta", "link", "hr", "source", "wbr"})

    def __init__(self, wanted_classes: set[str]) -> None:
        super().__init__()
        self.wanted_classes = wanted_classes
        self.found: list[RenderedElement] = []
        self._open: list[RenderedElement | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID_TAGS:
            return
        attributes = {name: value or "" for name, value in attrs}
        classes = set(attributes.get("class", "").split())
        element = RenderedElement(classes, attributes) if classes & self.wanted_classes else None
        if element is not None:
            self.found.append(element)
        self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID_TAGS and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in self._open:
            if element is not None:
                element.text += data

    def with_class(self, name: str) -> list[RenderedElement]:
        return [element for element in self.found if name in element.classes]


def load_lab_in_chromium(chromium: str, lab: RunningLab, tmp_path: Path) -> ElementsByClass:
    page_url = f"{lab.url}/lab?token={lab.token}"
    parsed = ElementsByClass({"jp-LauncherCard-label", "jp-CortexClaude-statusItem"})
    for attempt, budget_ms in enumerate(VIRTUAL_TIME_BUDGETS_MS):
        profile_dir = tmp_path / f"chromium-profile-{attempt}"
        result = subprocess.run(
            [*chromium_command(chromium, profile_dir, budget_ms), "--dump-dom", page_url],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"chromium failed:\n{result.stderr[-3000:]}"
        parsed = ElementsByClass({"jp-LauncherCard-label", "jp-CortexClaude-statusItem"})
        parsed.feed(result.stdout)
        if parsed.with_class("jp-LauncherCard-label"):
            break
    screenshot = os.environ.get(SCREENSHOT_ENV)
    if screenshot:
        subprocess.run(
            [
                *chromium_command(chromium, tmp_path / "chromium-profile-shot", budget_ms),
                f"--screenshot={screenshot}",
                page_url,
            ],
            capture_output=True,
            timeout=300,
            check=False,
        )
    return parsed


def test_jupyterlab_shows_the_claude_code_launcher_tile_and_cortex_status(
    chromium: str, jupyter_lab: RunningLab, tmp_path: Path
) -> None:
    page = load_lab_in_chromium(chromium, jupyter_lab, tmp_path)

    tile_labels = [element.text.strip() for element in page.with_class("jp-LauncherCard-label")]
    assert tile_labels, (
        "JupyterLab's launcher did not render in Chromium; server log:\n" + jupyter_lab.log_tail()
    )
    assert LAUNCHER_TILE_LABEL in tile_labels, (
        f"no launcher tile {LAUNCHER_TILE_LABEL!r} among {tile_labels}; is the "
        f"{EXTENSION_NAME} extension built and enabled? Server log:\n{jupyter_lab.log_tail()}"
    )

    status_items = page.with_class("jp-CortexClaude-statusItem")
    assert len(status_items) == 1, "the Cortex status bar item is missing"
    status = status_items[0]
    assert status.text.strip().startswith("Cortex: ")
    # The first health request has been answered (or failed): any of the three states
    # the status bar shows, with a hover text explaining it.
    assert status.attributes.get("data-level") in {"ok", "demo", "error"}
    assert status.attributes.get("title")


def test_the_status_bar_says_when_snowflake_cannot_be_reached(
    chromium: str, tmp_path: Path
) -> None:
    """The account host refuses connections: the start-up probe finds it, and the status bar item
    says so (not "ok"), with the reason in its hover text."""
    root_dir = tmp_path / "root"
    root_dir.mkdir()
    port = free_port()  # nothing listens there
    settings = [
        "--CortexClaude.account=testorg-testaccount",
        "--CortexClaude.host=127.0.0.1",
        f"--CortexClaude.port={port}",
        "--CortexClaude.protocol=http",
        "--CortexClaude.token=test-pat-0123456789",
    ]
    with run_jupyter_lab(tmp_path, root_dir, env=dict(os.environ), extra_args=settings) as lab:
        page = load_lab_in_chromium(chromium, lab, tmp_path)
        log = lab.log_tail()
    status_items = page.with_class("jp-CortexClaude-statusItem")
    assert len(status_items) == 1, "the Cortex status bar item is missing"
    status = status_items[0]
    assert status.text.strip() == "Cortex: unreachable", log
    assert status.attributes.get("data-level") == "error"
    assert f"Could not reach Snowflake at 127.0.0.1:{port}" in status.attributes["title"]
    assert "gateway ready" not in log
    assert f"Could not reach Snowflake at 127.0.0.1:{port}" in log
