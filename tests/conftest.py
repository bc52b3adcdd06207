"""Shared arrangements: a real Jupyter server with the extension, pointed at a real Cortex emulator."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pytest
from jupyter_server.utils import url_path_join

from jupyter_cortex_claude.testing import CortexEmulator

EMULATOR_PLUGIN = "jupyter_cortex_claude.testing.pytest_plugin"
# The emulator's fixtures are an opt-in plugin (no pytest11 entry point: a user's own pytest runs
# must not import the emulator); this is the line a project adds to use them. An environment
# installed before the entry point was removed still registers it until reinstalled (pytest
# refuses the same plugin twice), so then it is not named again.
_installed_plugins = {entry.value for entry in entry_points(group="pytest11")}
pytest_plugins = [
    "pytest_jupyter.jupyter_server",
    *([] if EMULATOR_PLUGIN in _installed_plugins else [EMULATOR_PLUGIN]),
    "tests.canned_server",
]

# tests/jupyterai needs jupyter-ai, whose Jupyternaut extra holds python-dateutil below what the rest
# of the suite installs: scripts/test.sh runs that folder in a venv of its own (.cache/jupyter-ai-*).
JUPYTER_AI_INSTALLED = importlib.util.find_spec("jupyter_ai_persona_manager") is not None
collect_ignore = [] if JUPYTER_AI_INSTALLED else ["jupyterai"]


def pytest_report_header() -> str | None:
    if JUPYTER_AI_INSTALLED:
        return None
    return (
        "tests/jupyterai not collected: jupyter-ai is not installed here (scripts/test.sh runs it)"
    )


TEST_PAT = "test-pat-0123456789"


@pytest.fixture(autouse=True)
def _no_ambient_snowflake_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Tests never pick up a developer's real Snowflake configuration."""
    for name in list(os.environ):
        if name.startswith("SNOWFLAKE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SNOWFLAKE_HOME", str(tmp_path / "no-snowflake-home"))
    # A GatewayService built outside pytest-jupyter's environment writes its ledger here, not in ~.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))


def emulator_config(emulator: CortexEmulator, **overrides: Any) -> dict[str, Any]:
    """``c.CortexClaude`` settings that point the gateway at the emulator with a PAT."""
    return {
        "account": "testorg-testaccount",
        "user": "testuser",
        "host": emulator.host,
        "port": emulator.port,
        "protocol": "http",
        "token": TEST_PAT,
        "max_retries": 2,
        "retry_backoff": 0.01,
        **overrides,
    }


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator) -> dict[str, Any]:
    """Override in a test module to change the gateway's configuration."""
    return emulator_config(cortex_emulator)


@pytest.fixture
def jp_server_config(cortex_claude_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_cortex_claude": True, "jupyter_server_terminals": True}
        },
        "CortexClaude": cortex_claude_config,
    }


class SdkClients:
    """The ``anthropic`` / ``openai`` async clients a test opens, closed on the test's own loop.

    An async SDK client left open closes itself when it is garbage-collected, by scheduling
    ``aclose()`` on whatever loop runs *then*: a later test's loop, where the dead test's sockets
    raise "Event loop is closed" into that test's log."""

    def __init__(self) -> None:
        self._open: list[Any] = []

    def anthropic(self, base_url: str, api_key: str, **kwargs: Any) -> Any:
        import anthropic

        kwargs.setdefault("max_retries", 0)
        return self._track(anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key, **kwargs))

    def openai(self, base_url: str, api_key: str, **kwargs: Any) -> Any:
        import openai

        kwargs.setdefault("max_retries", 0)
        return self._track(openai.AsyncOpenAI(base_url=base_url, api_key=api_key, **kwargs))

    def _track(self, client: Any) -> Any:
        self._open.append(client)
        return client

    async def close_all(self) -> None:
        for client in self._open:
            await client.close()
        self._open.clear()


@pytest.fixture
def sdk_clients(jp_asyncio_loop: Any) -> Iterator[SdkClients]:
    clients = SdkClients()
    yield clients
    jp_asyncio_loop.run_until_complete(clients.close_all())


@dataclass
class RunningGateway:
    serverapp: Any
    emulator: CortexEmulator
    server_url: str  # http://localhost:<port><base_url>
    sdk_clients: SdkClients

    @property
    def service(self) -> Any:
        return self.serverapp.web_app.settings["cortex_claude_service"]

    @property
    def key(self) -> str:
        return self.service.key.value

    @property
    def jupyter_token(self) -> str:
        return self.serverapp.identity_provider.token

    @property
    def anthropic_url(self) -> str:
        return url_path_join(self.server_url, "cortex-claude/anthropic")

    def url(self, *parts: str) -> str:
        return url_path_join(self.server_url, *parts)

    def anthropic(self, api_key: str | None = None, **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` on the gateway, closed when the test ends."""
        return self.sdk_clients.anthropic(self.anthropic_url, api_key or self.key, **kwargs)

    def openai(self, api_key: str | None = None, **kwargs: Any) -> Any:
        """An ``openai.AsyncOpenAI`` on the gateway's OpenAI endpoint, closed when the test ends."""
        return self.sdk_clients.openai(
            self.url("cortex-claude/openai/v1"), api_key or self.key, **kwargs
        )


@pytest.fixture
def running_gateway(
    jp_serverapp: Any,
    http_server_client: Any,  # starts the HTTP server that listens on jp_http_port
    jp_http_port: int,
    jp_base_url: str,
    cortex_emulator: CortexEmulator,
    jp_asyncio_loop: Any,
    sdk_clients: SdkClients,
) -> Iterator[RunningGateway]:
    # pytest-jupyter's server never starts its loop, so it never runs the extensions' start hooks
    # (the gateway service, the terminal environment); `jupyter server` runs them: so do we.
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    jp_serverapp.write_server_info_file()
    yield RunningGateway(
        serverapp=jp_serverapp,
        emulator=cortex_emulator,
        server_url=f"http://localhost:{jp_http_port}{jp_base_url}",
        sdk_clients=sdk_clients,
    )
