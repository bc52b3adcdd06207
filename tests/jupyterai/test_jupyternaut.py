"""Jupyternaut (Jupyter AI's LiteLLM persona) on Cortex, with the user's consent in one setting."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_cortex_claude.gateway_key import (
    load_or_create_persistent_key,
    persistent_key_path,
    read_persistent_key,
)
from jupyter_cortex_claude.server.jupyternaut import custom_model_id, seed_jupyternaut
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from ..conftest import TEST_PAT, RunningGateway, emulator_config
from .conftest import acp_adapter
from .test_cortex_persona import ask

ANSWER = "Hello from Cortex, says Jupyternaut"
MODEL = "claude-sonnet-4-6"


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator) -> dict[str, Any]:
    return emulator_config(
        cortex_emulator, acp_adapter_command=acp_adapter(), jupyternaut_model=MODEL
    )


def jupyternaut_config(running_gateway: RunningGateway) -> tuple[Path, dict[str, Any]]:
    manager = running_gateway.serverapp.web_app.settings["jupyternaut.config_manager"]
    path = Path(manager.config_path)
    return path, json.loads(path.read_text())


async def test_jupyternaut_answers_from_cortex(
    running_gateway: RunningGateway, jp_fetch: Any
) -> None:
    running_gateway.emulator.responder = lambda body: Reply.text(ANSWER)

    answer = await ask(jp_fetch, "Jupyternaut", "say hi")

    assert ANSWER in answer
    requests = running_gateway.emulator.inference_requests()
    assert requests, "Cortex saw no request"
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {TEST_PAT}"
        assert request.body["model"] == MODEL
        assert request.body["max_tokens"] <= 16384


async def test_jupyternaut_is_seeded_with_the_persistent_key(
    running_gateway: RunningGateway, jp_fetch: Any
) -> None:
    key = read_persistent_key(persistent_key_path())
    assert key is not None
    assert stat.S_IMODE(persistent_key_path().stat().st_mode) == 0o600

    path, config = jupyternaut_config(running_gateway)
    params = {
        "api_base": running_gateway.anthropic_url.replace("localhost", "127.0.0.1"),
        "api_key": key.value,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it now holds a key to Cortex credits
    assert config["custom_models"][0]["id"] == custom_model_id(MODEL)
    assert config["custom_models"][0]["model_id"] == f"anthropic/{MODEL}"
    assert config["custom_models"][0]["params"] == params
    assert config["model_provider_id"] == f"anthropic/{MODEL}"  # Jupyternaut had no default
    assert config["fields"][f"anthropic/{MODEL}"] == params

    # The key opens the gateway and nothing else of Jupyter.
    models = await jp_fetch(
        "cortex-claude", "anthropic", "v1", "models", headers={"x-api-key": key.value}
    )
    assert models.code == 200
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("api", "contents", headers={"Authorization": f"token {key.value}"})
    assert refused.value.code in (401, 403)


def test_the_persistent_key_survives_restarts(tmp_path: Path) -> None:
    path = tmp_path / "cortex_claude" / "persistent-key"
    first = load_or_create_persistent_key(path)
    again = load_or_create_persistent_key(path)  # the next server start
    assert again.value == first.value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    path.chmod(0o644)
    with pytest.raises(OSError, match="chmod 600"):
        read_persistent_key(path)


def test_a_restart_on_another_port_updates_the_seeded_model(tmp_path: Path) -> None:
    import logging

    from jupyter_ai_jupyternaut.config.config_manager import ConfigManager

    manager = ConfigManager(
        log=logging.getLogger("test"), defaults={}, config_path=str(tmp_path / "config.json")
    )
    for port in (8888, 8889):
        params = {"api_base": f"http://127.0.0.1:{port}/cortex-claude/anthropic", "api_key": "k"}
        seed_jupyternaut(manager, MODEL, params)

    models = manager.custom_models
    assert [m.id for m in models] == [custom_model_id(MODEL)]
    assert models[0].params["api_base"].endswith(":8889/cortex-claude/anthropic")
    assert manager.chat_model_args["api_base"].endswith(":8889/cortex-claude/anthropic")
