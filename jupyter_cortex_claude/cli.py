"""``cortex-claude``: Claude Code on Snowflake Cortex without Jupyter.

    cortex-claude [options] [-- claude arguments]   start the gateway, run claude, stop with it
    cortex-claude codex [options] [-- codex args]   the same with the Codex CLI
    cortex-claude serve [options]                   run only the gateway; print its URL and key
    cortex-claude demo [options] [-- lab args]      JupyterLab with the extension, offline emulator
    cortex-claude settings                          every c.CortexClaude setting, default and help

Settings, first match wins: command-line flags; a ``--config`` file (traitlets, ``c.CortexClaude``);
``SNOWFLAKE_*`` environment variables; ``connections.toml``; built-in defaults. With no account
anywhere, the offline demo emulator answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from .claude_binary import find_claude, install_hint
from .claude_env import STANDALONE_MODE, agent_environment
from .claude_settings import claude_settings_arguments
from .codex_home import write_codex_home
from .config import CortexClaude
from .service import GatewayService
from .standalone import start_gateway_server

log = logging.getLogger("jupyter_cortex_claude")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
COMMANDS = ("launch", "codex", "serve", "demo", "settings")

# flag → CortexClaude trait; --model also becomes Claude Code's starting model (terminal_model).
FLAG_TRAITS = {
    "connection": "connection_name",
    "account": "account",
    "user": "user",
    "role": "role",
    "token": "token",
    "token_file": "token_file_path",
    "private_key_file": "private_key_file",
    "model": "default_model",
    "claude": "claude_command",
    "codex": "codex_command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cortex-claude",
        description=(
            "Run Claude Code (or any Anthropic/OpenAI client) on Snowflake Cortex through a local "
            "gateway on 127.0.0.1. Arguments after `--` go to claude (or, for `demo`, to "
            "jupyter lab)."
        ),
        epilog=(
            "Precedence: flags > --config file > SNOWFLAKE_* environment variables > "
            "connections.toml (SNOWFLAKE_HOME, ~/.snowflake, ~/.config/snowflake) > defaults. "
            "Without any account the offline demo emulator answers."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=COMMANDS,
        default="launch",
        help="launch (default): gateway + claude; codex: gateway + Codex CLI; serve: gateway "
        "only; demo: JupyterLab demo; settings: list every c.CortexClaude setting",
    )
    parser.add_argument("--connection", help="connections.toml section to use")
    parser.add_argument("--account", help="Snowflake account identifier (SNOWFLAKE_ACCOUNT)")
    parser.add_argument("--user", help="Snowflake user (SNOWFLAKE_USER)")
    parser.add_argument("--role", help="Snowflake role, for information")
    parser.add_argument(
        "--token",
        help="programmatic access token (prefer SNOWFLAKE_TOKEN or connections.toml: a flag "
        "is visible to other local users in the process list)",
    )
    parser.add_argument("--token-file", help="file holding a PAT")
    parser.add_argument("--private-key-file", help="PEM key for key-pair (JWT) auth")
    parser.add_argument("--model", help="model Claude Code starts with, e.g. claude-opus-4-6")
    parser.add_argument("--claude", help="command that starts Claude Code (default: claude)")
    parser.add_argument("--codex", help="command that starts the Codex CLI (default: codex)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--config", help="traitlets config file (.py or .json) with c.CortexClaude")
    parser.add_argument("--demo", action="store_true", help="use the built-in Cortex emulator")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging on stderr")
    return parser


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def load_config(args: argparse.Namespace) -> CortexClaude:
    config = Config()
    if args.config:
        path = Path(args.config).expanduser().resolve()
        loader_class = JSONFileConfigLoader if path.suffix == ".json" else PyFileConfigLoader
        config.merge(loader_class(path.name, path=str(path.parent)).load_config())
    for flag, trait in FLAG_TRAITS.items():
        value = getattr(args, flag, None)
        if value:
            config.CortexClaude[trait] = value
    if args.model:
        config.CortexClaude.terminal_model = args.model
    if args.demo:
        config.CortexClaude.demo = True
    return CortexClaude(config=config)


def configure_logging(verbose: bool, quiet_level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("cortex-claude %(levelname)s: %(message)s"))
    for name in ("jupyter_cortex_claude", "tornado"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG if verbose else quiet_level)
        logger.propagate = False


def warn_if_exposed(host: str) -> None:
    if host not in LOOPBACK_HOSTS:
        log.warning(
            "The gateway listens on %s, reachable from other machines: anyone who has the key "
            "can spend this Snowflake account's credits. Prefer 127.0.0.1.",
            host,
        )


# -- cortex-claude [-- claude args] --------------------------------------------------------------


async def launch(
    config: CortexClaude, args: argparse.Namespace, agent_args: list[str], *, agent: str = "claude"
) -> int:
    """Start the gateway, run the agent (``claude`` or ``codex``) on it, stop with it."""
    if agent == "codex":
        words: list[str] | None = shlex.split(config.codex_command) or ["codex"]
        if shutil.which(words[0]) is None:
            print(
                f"cortex-claude: `{words[0]}` was not found. Install it with "
                f"`npm install -g {config.codex_package}` (or pass --codex PATH).",
                file=sys.stderr,
            )
            return 127
    else:
        words = find_claude(config)
        if words is None:
            print(f"cortex-claude: {install_hint(config)} Or pass --claude PATH.", file=sys.stderr)
            return 127
        words = [*words, *claude_settings_arguments(config)]
    service = GatewayService(config, logger=log)
    running = await start_gateway_server(service, host=args.host, port=args.port)
    # Codex reads its provider from a config.toml: a CODEX_HOME of this run's own, removed after.
    codex_home = (
        tempfile.TemporaryDirectory(prefix="cortex-claude-codex-") if agent == "codex" else None
    )
    try:
        if service.error:
            print(f"cortex-claude: {service.error}", file=sys.stderr)
            return 2
        if service.demo:
            print("cortex-claude: offline demo, answers come from the emulator.", file=sys.stderr)
        codex_folder = None
        if codex_home is not None:
            codex_folder = str(write_codex_home(config, running.gateway_url, Path(codex_home.name)))
        environment = agent_environment(
            config,
            gateway_url=running.gateway_url,
            key=running.key,
            mode=STANDALONE_MODE,
            catalogue=service.catalogue,
            model=args.model,  # the flag beats the user's ANTHROPIC_MODEL
            codex_home=codex_folder,  # `cortex-claude codex` asked for this gateway
        )
        return await run_until_exit([*words, *agent_args], environment)
    finally:
        await running.stop()
        if codex_home is not None:
            codex_home.cleanup()


async def run_until_exit(argv: list[str], environment: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(*argv, env=environment)
    loop = asyncio.get_running_loop()
    forwarded = [signal.SIGTERM, signal.SIGHUP]
    # On a terminal Ctrl-C already reaches claude (same process group), and a second SIGINT
    # would make it quit; without a terminal nobody else tells it.
    if not sys.stdin.isatty():
        forwarded.append(signal.SIGINT)
    else:
        loop.add_signal_handler(signal.SIGINT, lambda: None)
    for sig in forwarded:
        loop.add_signal_handler(sig, _forward, process, sig)
    try:
        returncode = await process.wait()
    finally:
        for sig in (*forwarded, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 128 - returncode if returncode < 0 else returncode


def _forward(process: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


# -- cortex-claude serve -----------------------------------------------------------------------


async def serve(config: CortexClaude, args: argparse.Namespace) -> int:
    service = GatewayService(config, logger=log)
    running = await start_gateway_server(service, host=args.host, port=args.port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stopped.set)
    try:
        if service.error:
            print(f"cortex-claude: {service.error}", file=sys.stderr)
            return 2
        # The key goes to stdout only, for the person who started the command; never to a log.
        print(
            "cortex-claude gateway"
            + (" (offline demo: answers come from the emulator)" if service.demo else "")
            + f"\n  url:                {running.gateway_url}"
            + f"\n  anthropic base url: {running.anthropic_url}"
            + f"\n  openai base url:    {running.openai_url}"
            + f"\n  key:                {running.key}"
            + "\n\nexport ANTHROPIC_BASE_URL="
            + shlex.quote(running.anthropic_url)
            + " ANTHROPIC_AUTH_TOKEN="
            + shlex.quote(running.key)
            + "\nexport OPENAI_BASE_URL="
            + shlex.quote(running.openai_url)
            + " OPENAI_API_KEY="
            + shlex.quote(running.key)
            + "\n\nPress Ctrl-C to stop.",
            flush=True,
        )
        await stopped.wait()
        return 0
    finally:
        await running.stop()


# -- cortex-claude demo ------------------------------------------------------------------------


def demo_argv(args: argparse.Namespace, lab_args: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "jupyterlab", "--CortexClaude.demo=True", f"--ip={args.host}"]
    if args.port:
        argv.append(f"--port={args.port}")
    for flag, trait in FLAG_TRAITS.items():
        value = getattr(args, flag, None)
        if value and flag != "token":  # the demo needs no credential; keep it off argv
            argv.append(f"--CortexClaude.{trait}={value}")
    if args.model:
        argv.append(f"--CortexClaude.terminal_model={args.model}")
    return argv + lab_args


# -- cortex-claude settings ---------------------------------------------------------------------


def settings_listing() -> str:
    """Every ``CortexClaude`` setting with its type, default and help (traitlets' own listing).

    ``jupyter server --help-all`` cannot show them: it lists the server's classes before any
    extension is loaded."""
    return (
        "Settings of jupyter-cortex-claude: `c.CortexClaude.<name> = ...` in "
        "jupyter_server_config.py (or a `cortex-claude --config` file), or "
        "`--CortexClaude.<name>=...` on the jupyter command line.\n\n"
        + CortexClaude.class_get_help()
    )


# -- entry point -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    own_args, passthrough = split_passthrough(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(own_args)
    if args.command == "settings":
        print(settings_listing())
        return 0
    configure_logging(args.verbose, logging.ERROR if args.command == "launch" else logging.WARNING)
    warn_if_exposed(args.host)
    if args.command == "demo":
        command = demo_argv(args, passthrough)
        os.execv(command[0], command)  # jupyter lab takes over this process, and its exit code
    config = load_config(args)
    if args.command == "serve":
        return asyncio.run(serve(config, args))
    return asyncio.run(
        launch(
            config, args, passthrough, agent=args.command if args.command == "codex" else "claude"
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
