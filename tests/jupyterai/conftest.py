"""A real Jupyter server with Jupyter AI 3.x beside this package's extension, on the emulator.

These tests need jupyter-ai (``pip install '.[test,jupyter-ai]'``) and the pinned ACP adapter
(``npm install @zed-industries/claude-agent-acp@0.23.1``): scripts/test.sh installs both, in a venv
of their own under .cache/ (jupyter-ai's Jupyternaut extra pins python-dateutil below what the
rest of the suite uses), and runs this folder there. A missing part fails the test; nothing skips.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jupyter_cortex_claude.testing import CortexEmulator

from ..conftest import emulator_config

ACP_ADAPTER_VERSION = "0.23.1"
ACP_ADAPTER_PACKAGE = f"@zed-industries/claude-agent-acp@{ACP_ADAPTER_VERSION}"
ACP_ADAPTER_ENV = "CORTEX_CLAUDE_TEST_ACP_ADAPTER"
# Claude Code inside claude-agent-acp 0.23.1 (its exact dependency claude-agent-sdk 0.2.83).
ADAPTER_CLAUDE_CODE_VERSION = "2.1.83"

JUPYTER_AI_EXTENSIONS = {
    "jupyterlab_chat": True,
    "jupyter_ai_router": True,
    "jupyter_ai_persona_manager": True,
    "jupyter_ai_acp_client": True,
    "jupyter_ai_jupyternaut": True,
    # Its MCP server listens on a fixed port (3001) shared by every test run on the machine.
    "jupyter_server_mcp": False,
}


def acp_adapter() -> str:
    """The pinned adapter; missing, it fails the test (a skip would hide a broken CI image)."""
    path = os.environ.get(ACP_ADAPTER_ENV, "")
    if not (path and os.access(path, os.X_OK)):
        pytest.fail(
            f"The Claude Code ACP adapter is needed: run `bash scripts/test.sh`, which installs "
            f"{ACP_ADAPTER_PACKAGE} under .cache/, or set {ACP_ADAPTER_ENV}.",
            pytrace=False,
        )
    return path


@pytest.fixture(autouse=True)
def _jupyter_ai_installed() -> None:
    try:
        import jupyter_ai_acp_client  # noqa: F401
        import jupyter_ai_jupyternaut  # noqa: F401
    except ImportError as missing:
        pytest.fail(
            f"jupyter-ai is needed ({missing}): pip install '.[test,jupyter-ai]' "
            "(scripts/test.sh runs these tests in a venv of their own).",
            pytrace=False,
        )


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator) -> dict[str, Any]:
    return emulator_config(cortex_emulator, acp_adapter_command=acp_adapter())


@pytest.fixture
def jp_server_config(cortex_claude_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {
                "jupyter_cortex_claude": True,
                "jupyter_server_terminals": True,
                **JUPYTER_AI_EXTENSIONS,
            }
        },
        "CortexClaude": cortex_claude_config,
        # Jupyternaut's config file, kept out of the developer's data dir.
        "ConfigManager": {"config_path": str(tmp_path / "jupyter_ai" / "config.json")},
    }


@pytest.fixture(autouse=True)
def _offline_and_root_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    # LiteLLM fetches its model price map from GitHub at import unless told to use its own copy;
    # offline that costs three timed-out retries per server.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if os.geteuid() == 0:
        # CI containers run as root, where Claude Code starts only in a declared sandbox
        # (jupyter_cortex_claude/server/cortex_persona.py, root_refusal).
        monkeypatch.setenv("IS_SANDBOX", "1")
