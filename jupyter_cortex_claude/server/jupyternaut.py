"""Jupyternaut (Jupyter AI's LiteLLM persona) on Cortex: offered in the log, seeded on consent.

Jupyternaut calls LiteLLM with a model id and parameters from its config file
(``<jupyter data dir>/jupyter_ai/config.json``, jupyter_ai_jupyternaut/config/config_manager.py):
``custom_models`` (shown at the top of its model picker, each with ``params`` such as
``api_base`` and ``api_key``) and a default model (``model_provider_id`` with its ``fields``).
LiteLLM's ``anthropic/<model>`` sends Anthropic Messages to ``<api_base>/v1/messages`` with the
key as ``x-api-key``: our Anthropic endpoint, on the Claude path to Cortex.

Writing another extension's config file is the user's decision: it happens only when
``c.CortexClaude.jupyternaut_model`` is set, and then at every start, because ``api_base``
carries this server's port, which may change between starts. The key is the persistent key
(server/gateway_key.py), since the gateway key changes at every start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from typing import Any

from ..claude_env import anthropic_url
from ..gateway_key import GatewayKey
from .terminals import local_gateway_url

log = logging.getLogger("jupyter_cortex_claude.jupyternaut")

CONFIG_MANAGER_SETTING = "jupyternaut.config_manager"  # set by jupyter_ai_jupyternaut's extension
LITELLM_PREFIX = "anthropic/"
# Jupyternaut's custom-model ids are "custom-<uuid>/<model id>"; a fixed uuid makes ours the same
# entry at every start (updated, never duplicated).
_OUR_UUID = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/jupyter-cortex-claude/jupyternaut")

OFFER = (
    "Jupyternaut (Jupyter AI) has no model configured. To run it on Snowflake Cortex through "
    "this gateway, add `c.CortexClaude.jupyternaut_model = 'claude-sonnet-4-6'` to "
    "jupyter_server_config.py and restart (docs/jupyter-ai.md)."
)


def custom_model_id(model: str) -> str:
    return f"custom-{_OUR_UUID}/{LITELLM_PREFIX}{model}"


def model_parameters(serverapp: Any, key: GatewayKey) -> dict[str, str]:
    """LiteLLM parameters for our Anthropic endpoint on this server."""
    return {"api_base": anthropic_url(local_gateway_url(serverapp)), "api_key": key.value}


def offer_or_seed_jupyternaut(serverapp: Any, service: Any) -> str | None:
    """Seed Jupyternaut's config when the user asked for it, else offer it when it has no model.

    Returns the id of the custom model written, or None.
    """
    manager = serverapp.web_app.settings.get(CONFIG_MANAGER_SETTING)
    model = service.config.jupyternaut_model
    if manager is None:
        if model:
            log.warning(
                "c.CortexClaude.jupyternaut_model is set but Jupyternaut is not running: "
                "pip install 'jupyter-cortex-claude[jupyter-ai]' and restart."
            )
        return None
    if not model:
        if not manager.chat_model and not manager.custom_models:
            log.info(OFFER)
        return None
    if service.persistent_key is None:
        return None  # unreadable key file: the extension already logged why
    return seed_jupyternaut(manager, model, model_parameters(serverapp, service.persistent_key))


def seed_jupyternaut(manager: Any, model: str, params: dict[str, str]) -> str:
    """Our custom model first in Jupyternaut's picker; Jupyternaut's default if it has none."""
    from jupyter_ai_jupyternaut.config.config_models import CustomModel, UpdateConfigRequest

    ours = CustomModel(
        id=custom_model_id(model),
        name=f"{model} (Cortex)",
        description="Snowflake Cortex, through this Jupyter server's cortex-claude gateway",
        model_id=LITELLM_PREFIX + model,
        params=params,
    )
    others = [m for m in manager.custom_models if not m.id.startswith(f"custom-{_OUR_UUID}/")]
    update = UpdateConfigRequest(custom_models=[ours, *others])
    if not manager.chat_model:
        update.model_provider_id = ours.model_id
        update.fields = {ours.model_id: params}
    elif manager.chat_model == ours.model_id:
        update.fields = {ours.model_id: params}  # a restart on another port: follow it
    manager.update_config(update)
    # The file now holds a key to this user's Cortex credits; Jupyternaut writes it with the
    # default umask, and keeps the mode on later writes (it truncates, never recreates).
    with contextlib.suppress(OSError):
        os.chmod(manager.config_path, 0o600)
    log.info("cortex-claude: Jupyternaut has the Cortex model %s (%s)", model, ours.id)
    return ours.id
