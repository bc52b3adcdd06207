"""Start and stop every server the benchmark compares, each in its own process on 127.0.0.1.

Peers (LiteLLM, snowflake-claude-code) live in their own virtual environments, created on demand
under the cache directory, because their pinned dependencies conflict with ours.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PAT = "bench-pat-0123456789abcdef"
ACCOUNT = "benchorg-bench"
USER = "bench"
JUPYTER_TOKEN = "bench-jupyter-token"
LITELLM_KEY = "sk-bench-litellm"
LITELLM_PIN = "litellm[proxy]==1.83.14"
# The model name LiteLLM serves through its `snowflake/` provider (Cortex's inference:complete).
LITELLM_SNOWFLAKE_MODEL = "cortex-complete/claude-sonnet-4-5"
SCC_PIN = "snowflake-claude-code==1.1.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], timeout: float, headers: dict[str, str]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _log_file(workdir: Path, name: str) -> tuple[Path, int]:
    path = workdir / f"{name}.log"
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


# -- the emulator -------------------------------------------------------------------------------


def start_emulator(token_delay: float) -> Server:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.emulator_process",
            "--pat",
            PAT,
            "--token-delay",
            str(token_delay),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("the Cortex emulator process did not start")
    port = json.loads(line)["port"]
    return Server("emulator", process, f"http://127.0.0.1:{port}")


def start_floor(client: str, emulator_url: str) -> Server:
    """A bare tornado relay to the emulator on one upstream client (``benchmarks.floor_relay``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor_relay", "--client", client,
         "--upstream", emulator_url, "--pat", PAT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the {client} floor relay did not start")
    port = json.loads(line)["port"]
    return Server(f"floor-{client}", process, f"http://127.0.0.1:{port}")


# -- our gateway inside Jupyter -------------------------------------------------------------------


def jupyter_command(port: int, root: Path, emulator_port: int, *, extension: bool) -> list[str]:
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1"]
    command += [f"--port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}"]
    command += [f"--IdentityProvider.token={JUPYTER_TOKEN}"]
    if os.geteuid() == 0:  # containers and CI runners often run as root
        command.append("--allow-root")
    if extension:
        command += [
            "--CortexClaude.host=127.0.0.1",
            f"--CortexClaude.port={emulator_port}",
            "--CortexClaude.protocol=http",
            f"--CortexClaude.account={ACCOUNT}",
            f"--CortexClaude.user={USER}",
        ]
    else:
        command += ["--ServerApp.jpserver_extensions=jupyter_cortex_claude=False"]
    return command


def jupyter_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "JUPYTER_"))}
    env["SNOWFLAKE_TOKEN"] = PAT
    env["SNOWFLAKE_HOME"] = str(workdir / "no-snowflake-home")
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / "runtime")
    env["JUPYTER_CONFIG_DIR"] = str(workdir / "jupyter-config")
    env["JUPYTER_DATA_DIR"] = str(workdir / "jupyter-data")
    return env


def start_jupyter(
    workdir: Path,
    emulator_port: int,
    *,
    extension: bool = True,
    checkout: Path | None = None,
    launcher: list[str] | None = None,
) -> Server:
    """``jupyter server`` with our extension; from ``checkout`` (a source tree) when given; run by
    ``launcher`` (say a profiling wrapper: ``[python, script, ...]``) instead of
    ``python -m jupyter_server`` when given."""
    port = free_port()
    root = workdir / "root"
    root.mkdir(exist_ok=True)
    log_path, log_fd = _log_file(workdir, f"jupyter-{port}")
    env = jupyter_env(workdir)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    command = jupyter_command(port, root, emulator_port, extension=extension)
    if launcher is not None:  # [python, -m, jupyter_server, ...] -> [*launcher, ...]
        command = [*launcher, *command[3:]]
    process = subprocess.Popen(
        command,
        # Not the caller's directory: `python -m` puts the working directory first on sys.path, so
        # started from a source tree, the server would import the package from there and
        # `checkout` (PYTHONPATH) would be ignored.
        cwd=root,
        env=env,
        stdout=log_fd,
        stderr=log_fd,
        stdin=subprocess.DEVNULL,
    )
    os.close(log_fd)
    url = f"http://127.0.0.1:{port}"
    server = Server("jupyter" if checkout is None else "jupyter-other", process, url, log_path)
    try:
        _wait_ready(f"{url}/api/status", process, 60, {"Authorization": f"token {JUPYTER_TOKEN}"})
        if extension:
            key_file = workdir / "runtime" / f"cortex-claude-gateway-{process.pid}.json"
            deadline = time.monotonic() + 20
            while not key_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            server.extra["key"] = json.loads(key_file.read_text())["key"]
    except BaseException:
        server.stop()
        raise
    return server


# -- our standalone gateway -----------------------------------------------------------------------


def standalone_available() -> str | None:
    """None when the standalone gateway can run, else the reason it cannot."""
    if importlib.util.find_spec("jupyter_cortex_claude.cli") is None:
        return "jupyter_cortex_claude.cli does not exist in this checkout"
    return None


def start_standalone(workdir: Path, emulator_port: int) -> Server:
    """``cortex-claude serve``: the same handlers in a bare tornado app; it prints its key."""
    port = free_port()
    config_path = workdir / "standalone-config.json"
    config_path.write_text(
        json.dumps(
            {
                "CortexClaude": {
                    "host": "127.0.0.1",
                    "port": emulator_port,
                    "protocol": "http",
                    "account": ACCOUNT,
                    "user": USER,
                }
            }
        )
    )
    log_path, log_fd = _log_file(workdir, "standalone")
    code = "import sys; from jupyter_cortex_claude.cli import main; sys.exit(main())"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--config",
            str(config_path),
        ],
        env=jupyter_env(workdir),
        stdout=subprocess.PIPE,
        stderr=log_fd,
        stdin=subprocess.DEVNULL,
    )
    os.close(log_fd)
    server = Server("standalone", process, f"http://127.0.0.1:{port}", log_path)
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode().strip()
            if line.startswith("key:"):
                server.extra["key"] = line.split(":", 1)[1].strip()
                break
        else:
            raise RuntimeError(
                f"cortex-claude serve exited without printing its key; see {log_path}"
            )
        _wait_ready(
            f"{server.url}/cortex-claude/health",
            process,
            30,
            {"Authorization": f"Bearer {server.extra['key']}"},
        )
    except BaseException:
        server.stop()
        raise
    return server


# -- peers ------------------------------------------------------------------------------------------


def peer_venv(cache_dir: Path, name: str, requirement: str, override: str | None) -> Path:
    """A virtual environment with ``requirement`` installed (made once, then reused)."""
    if override:
        return Path(override)
    target = cache_dir / name
    marker = target / ".installed"
    if marker.exists() and marker.read_text() == requirement:
        return target
    print(f"[bench] creating {target} with {requirement} (once; takes a minute)", flush=True)
    shutil.rmtree(target, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(target)
    subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "-q", requirement], check=True
    )
    marker.write_text(requirement)
    return target


def start_litellm(workdir: Path, venv_dir: Path, emulator_url: str) -> Server:
    port = free_port()
    api_base = f"{emulator_url}/api/v2/cortex/v1"
    # JSON is YAML: no YAML writer needed. The `openai/` route to Cortex's Chat Completions is the
    # recipe users copy; its `snowflake/` provider posts to the older inference:complete with the
    # PAT given as `pat/<token>` (peers.md), served as LITELLM_SNOWFLAKE_MODEL.
    openai_route = [
        {
            "model_name": name,
            "litellm_params": {"model": f"openai/{name}", "api_base": api_base, "api_key": PAT},
        }
        for name in ("claude-sonnet-4-5", "openai-gpt-4.1")
    ]
    snowflake_route = {
        "model_name": LITELLM_SNOWFLAKE_MODEL,
        "litellm_params": {
            "model": "snowflake/claude-sonnet-4-5",
            "api_base": f"{emulator_url}/api/v2",
            "api_key": f"pat/{PAT}",
        },
    }
    config = {
        "model_list": [*openai_route, snowflake_route],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False},
    }
    config_path = workdir / "litellm.yaml"
    config_path.write_text(json.dumps(config, indent=1))
    env = dict(os.environ)
    env.update(
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES="true",
        NO_DOCKER="1",
    )
    log_path, log_fd = _log_file(workdir, "litellm")
    process = subprocess.Popen(
        [
            str(venv_dir / "bin" / "litellm"),
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log_fd,
        stderr=log_fd,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
    )
    os.close(log_fd)
    url = f"http://127.0.0.1:{port}"
    server = Server("litellm", process, url, log_path, {"key": LITELLM_KEY})
    try:
        _wait_ready(f"{url}/health/liveliness", process, 120, {})
    except BaseException:
        server.stop()
        raise
    return server


# What the launcher below runs inside snowflake-claude-code's own venv. The proxy has no base-URL
# option: its `auth.connect` calls `snowflake.connector.connect(account, user, password=<PAT>)`, so
# the launcher wraps that function to add the emulator's host, port and protocol="http", then does
# what its CLI does before launching `claude` (log in, `create_app`, uvicorn on 127.0.0.1) minus the
# model discovery (`SHOW CORTEX BASE MODELS`, a SQL query the emulator does not serve; the CLI falls
# back to its built-in list then too) and minus launching Claude Code.
SCC_LAUNCHER = """\
import functools
import sys

import snowflake.connector
import uvicorn

host, port, listen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
_connect = snowflake.connector.connect


@functools.wraps(_connect)
def connect(*args, **kwargs):
    kwargs.update(host=host, port=port, protocol="http")
    return _connect(*args, **kwargs)


snowflake.connector.connect = connect

from snowflake_claude_code.auth import ConnectionManager  # noqa: E402
from snowflake_claude_code.config import Config  # noqa: E402
from snowflake_claude_code.proxy import create_app  # noqa: E402

config = Config.load(port=listen)
config.validate()
manager = ConnectionManager(config)
manager.open()  # the connector's login: /session/v1/login-request with the PAT as password
app = create_app(manager=manager, model=config.model)
try:
    uvicorn.run(app, host="127.0.0.1", port=listen, log_level="warning")
finally:
    manager.close()
"""


def start_snowflake_claude_code(workdir: Path, venv_dir: Path, emulator: Server) -> Server:
    """snowflake-claude-code 1.1.0's proxy, logged in to the emulator with the real connector.

    It logs in with the PAT as its password (Snowflake, and so the emulator, accepts that) and
    then calls Cortex's older ``inference:complete`` through ``snowflake.core`` with the session
    token.
    """
    port = free_port()
    launcher = workdir / "snowflake_claude_code_launcher.py"
    launcher.write_text(SCC_LAUNCHER)
    home = workdir / "scc-home"  # no ~/.snowflake-claude-code/config.toml, no connector caches
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env.update(
        HOME=str(home),
        SNOWFLAKE_HOME=str(home / ".snowflake"),
        SNOWFLAKE_ACCOUNT=ACCOUNT,
        SNOWFLAKE_USER=USER,
        SNOWFLAKE_TOKEN=PAT,
        SNOWFLAKE_MODEL="claude-sonnet-4-5",
    )
    emulator_host, emulator_port = emulator.url.rsplit("/", 1)[1].split(":")
    log_path, log_fd = _log_file(workdir, "snowflake-claude-code")
    process = subprocess.Popen(
        [
            str(venv_dir / "bin" / "python"),
            str(launcher),
            emulator_host,
            emulator_port,
            str(port),
        ],
        env=env,
        stdout=log_fd,
        stderr=log_fd,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
    )
    os.close(log_fd)
    url = f"http://127.0.0.1:{port}"
    server = Server("snowflake-claude-code", process, url, log_path)
    try:
        _wait_ready(f"{url}/v1/health", process, 120, {})
    except RuntimeError as exc:
        server.stop()
        tail = log_path.read_text(errors="replace")[-600:].strip()
        raise RuntimeError(f"{exc}; its log ends: {tail}") from None
    except BaseException:
        server.stop()
        raise
    return server


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="cortex-claude-bench-"))
