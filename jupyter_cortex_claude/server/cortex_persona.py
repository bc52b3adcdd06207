"""The Jupyter AI persona "Claude Code (Cortex)": Claude Code over ACP, on this server's gateway.

Jupyter AI 3.x loads personas from the ``jupyter_ai.personas`` entry point group
(jupyter_ai_persona_manager/persona_manager.py, ``EPG_NAME``); only its persona manager reads that
group, so this module, and with it jupyter-ai, is imported only when jupyter-ai is installed and
running. Jupyter AI's own Claude persona starts the npm adapter ``claude-agent-acp`` with the
server's environment (``env=None``), so it ignores the gateway and asks for ``claude /login``;
:meth:`BaseAcpPersona._init_agent_subprocess` takes an ``env`` (its OpenCode persona passes one),
and this persona passes the environment every agent this project starts gets: the gateway's URL
and key, the model defaults, and none of the server's Snowflake secrets.

The adapter runs Claude Code through claude-agent-sdk, which passes its own environment on to it
(claude-agent-acp 0.23.1, dist/acp-agent.js: ``env: {...process.env, ...}``) and runs the Claude
Code it bundles unless ``CLAUDE_CODE_EXECUTABLE`` names another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any

try:
    from jupyter_ai_acp_client.base_acp_persona import BaseAcpPersona
    from jupyter_ai_persona_manager import PersonaDefaults, PersonaRequirementsUnmet
except ImportError as missing:  # the persona manager without the ACP client (jupyter-ai < 3.2)
    from jupyter_ai_persona_manager import PersonaRequirementsUnmet

    raise PersonaRequirementsUnmet(
        f"Claude Code (Cortex) needs jupyter-ai's ACP client ({missing}): "
        "pip install 'jupyter-cortex-claude[jupyter-ai]'"
    ) from missing

from ..claude_env import agent_environment, claude_model_settings
from ..config import CortexClaude
from ..gateway.model_ids import resolve_model
from .terminals import SERVER_EXTENSION_MODE, local_gateway_url

PERSONA_NAME = "Claude Code (Cortex)"
AVATAR = Path(__file__).with_name("cortex_persona.svg")
SERVICE_SETTING = "cortex_claude_service"


class PersonaSetupError(RuntimeError):
    """What the user must do before the persona can answer; shown in the chat as is."""


def running_serverapp() -> Any:
    """The Jupyter server this persona runs in.

    The persona manager's ``parent`` is not always the extension (``POST /api/ai/message/<name>``
    builds a PersonaManager without one), but there is one ServerApp per process.
    """
    from jupyter_server.serverapp import ServerApp

    if not ServerApp.initialized():
        raise PersonaSetupError("Claude Code (Cortex) runs only inside a Jupyter server.")
    return ServerApp.instance()


def find_adapter(config: CortexClaude, path: str | None = None) -> str | None:
    """The ACP adapter's executable: on PATH, else where the documented install puts it."""
    command = os.path.expanduser(config.acp_adapter_command)
    found = shutil.which(command, path=path)
    if found:
        return found
    installed = Path(os.path.expanduser(config.claude_install_prefix)) / "bin" / Path(command).name
    return str(installed) if os.access(installed, os.X_OK) else None


def adapter_install_hint(config: CortexClaude) -> str:
    return (
        f"{PERSONA_NAME} needs the Claude Code ACP adapter, which was not found "
        f"(`{config.acp_adapter_command}` on the server's PATH or in "
        f"{config.claude_install_prefix}/bin). Install it (Node.js 20+ with npm), then send your "
        f"message again:\n\n```\nnpm install -g --prefix {config.claude_install_prefix} "
        f"{config.acp_adapter_package}\n```"
    )


def root_refusal(environ: dict[str, str] | None = None) -> str | None:
    """Why Claude Code will not start under this server, if it runs as root.

    Claude Code 2.1.83 (in claude-agent-acp 0.23.1) exits at once as root unless IS_SANDBOX=1:
    "--dangerously-skip-permissions cannot be used with root/sudo privileges" (seen here with an
    SDK debug log, DEBUG_CLAUDE_AGENT_SDK=1), even in the default permission mode; the adapter
    then reports only "Internal error". IS_SANDBOX is the operator's statement that the
    container is the sandbox, so it is never set for them.
    """
    environ = os.environ if environ is None else environ
    if hasattr(os, "geteuid") and os.geteuid() == 0 and environ.get("IS_SANDBOX") != "1":
        return (
            f"{PERSONA_NAME} cannot start: this Jupyter server runs as root, and Claude Code "
            "refuses to run as root. Run Jupyter as an ordinary user, or, in a container that is "
            "itself the sandbox, start Jupyter with IS_SANDBOX=1 in its environment."
        )
    return None


def cortex_model_label(value: str, display: str, service: Any) -> tuple[str, str]:
    """Name and description for one of Claude Code's model choices: the Cortex model it runs.

    Claude Code lists its own choices ("Default (recommended)", "Sonnet (1M context)", "haiku",
    the ANTHROPIC_MODEL id) with Anthropic's prices; on Cortex each is one Cortex model, the one
    the gateway's model mapping picks (gateway/model_ids.py).
    """
    config = service.config
    requested = claude_model_settings(config)["ANTHROPIC_MODEL"] if value == "default" else value
    cortex = resolve_model(
        requested,
        model_map=dict(config.model_map),
        family_models=dict(config.family_models),
        default_model=config.default_model,
        catalogue=service.catalogue,
    )
    if value == "default":
        return f"{cortex} on Cortex (default)", f"Snowflake Cortex model {cortex}"
    return f"{cortex} on Cortex", f"Claude Code's '{display}', served by Snowflake Cortex {cortex}"


def adapter_environment(
    serverapp: Any, service: Any, environ: dict[str, str] | None = None
) -> dict[str, str]:
    """The adapter's environment: the server's, pointed at the gateway, without Snowflake secrets.

    Built by the one function every launched agent gets its environment from
    (:func:`~jupyter_cortex_claude.claude_env.agent_environment`). Unlike a terminal, the persona's
    name promises Cortex: the connection variables are this gateway's even when the server's
    environment has others (``own_connection=True``).
    """
    config = service.config
    env = agent_environment(
        config,
        gateway_url=local_gateway_url(serverapp),
        key=service.key.value,
        mode=SERVER_EXTENSION_MODE,
        catalogue=service.catalogue,
        inherited=os.environ if environ is None else environ,
        own_connection=True,
    )
    if config.acp_claude_code_executable:
        env["CLAUDE_CODE_EXECUTABLE"] = os.path.expanduser(config.acp_claude_code_executable)
    return env


class ClaudeCodeCortexPersona(BaseAcpPersona):
    """Claude Code in Jupyter AI's chat, answering from Snowflake Cortex through the gateway."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The executable is decided when the adapter starts (prepare), from the server's settings.
        super().__init__(*args, executable=[], **kwargs)

    @property
    def defaults(self) -> PersonaDefaults:
        return PersonaDefaults(
            name=PERSONA_NAME,
            description=(
                "Claude Code as an ACP agent, on Snowflake Cortex models through this Jupyter "
                "server's cortex-claude gateway: no Anthropic account or key."
            ),
            avatar_path=str(AVATAR),
            system_prompt="unused",  # Claude Code brings its own
        )

    def _service(self) -> Any:
        service = running_serverapp().web_app.settings.get(SERVICE_SETTING)
        if service is None:
            raise PersonaSetupError(
                f"{PERSONA_NAME} needs the jupyter_cortex_claude server extension, which is not "
                "enabled: `jupyter server extension enable jupyter_cortex_claude`, then restart."
            )
        return service

    async def prepare(self) -> None:
        service = self._service()
        await service.start()  # no-op once started; the service reports its own errors
        adapter = find_adapter(service.config)
        if adapter is None:
            raise PersonaSetupError(adapter_install_hint(service.config))
        refusal = root_refusal()
        if refusal is not None:
            raise PersonaSetupError(refusal)
        self._executable = [adapter]
        await super().prepare()

    async def _init_agent_subprocess(self, env: dict[str, str] | None = None) -> Any:
        serverapp = running_serverapp()
        service = serverapp.web_app.settings[SERVICE_SETTING]
        return await super()._init_agent_subprocess(env=adapter_environment(serverapp, service))

    def update_acp_config_options(self, config_options: Any) -> None:
        """The adapter's options, with each model choice named after the Cortex model it runs."""
        service = running_serverapp().web_app.settings.get(SERVICE_SETTING)
        for option in config_options or []:
            if service is None or getattr(option, "category", None) != "model":
                continue
            for choice in getattr(option, "options", None) or []:
                if hasattr(choice, "value"):
                    choice.name, choice.description = cortex_model_label(
                        choice.value, choice.name, service
                    )
        super().update_acp_config_options(config_options)

    async def handle_uncaught_exception(self, exc: Exception) -> None:
        if isinstance(exc, PersonaSetupError):
            self.send_message(str(exc))
            return
        await super().handle_uncaught_exception(exc)


async def stop_adapter(timeout: float = 5.0) -> None:
    """Stop the adapter (and the Claude Code it runs) with the server.

    Jupyter AI shares one adapter per persona class across chats and stops it when the last chat
    closes; a message posted to ``/api/ai/message/<name>`` uses a chat that never closes, and the
    adapter runs in a session of its own (``start_new_session``), so without this it would
    outlive the server and the gateway key it holds. Called from the extension's stop hook.
    """
    persona = ClaudeCodeCortexPersona
    started = persona.__dict__.get("_subprocess_future")
    client = persona.__dict__.get("_client_future")
    if client is not None and client.done() and not client.cancelled() and not client.exception():
        # Jupyter AI's own teardown order (BaseAcpPersona._shutdown): the ACP connection first,
        # so its reader tasks end now rather than on a closed event loop.
        with contextlib.suppress(Exception):
            await (await client.result().get_connection()).close()
    for name in ("_before_subprocess_future", "_subprocess_future", "_client_future"):
        future = persona.__dict__.get(name)
        if future is not None and not future.done():
            future.cancel()
        setattr(persona, name, None)
    if started is None or not started.done() or started.cancelled() or started.exception():
        return
    process = started.result()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # the adapter leads its own process group
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
