"""How code in a kernel finds a gateway to talk to.

In order:
1. ``CORTEX_CLAUDE_GATEWAY_URL`` + ``CORTEX_CLAUDE_GATEWAY_KEY`` in the environment (a terminal of
   ours, or a process started by ``cortex-claude``);
2. the key file of the Jupyter server that started this kernel,
   ``<jupyter runtime dir>/cortex-claude-gateway-<server pid>.json`` (0600, written by the server
   extension), found through ``JPY_PARENT_PID`` (jupyter_server's kernel launcher sets it), else the
   newest such file whose server process id is alive; either is used only once its gateway answered
   with that key (a file left by a killed server may name a reused process id);
3. a gateway started inside this kernel (Snowflake Notebooks, VS Code, a Jupyter server without the
   extension): :func:`.inkernel.start_in_kernel_gateway`.

The server never puts its key into a kernel's environment: only the user who owns the runtime
directory can read the file, which is exactly who may use the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ..claude_env import GATEWAY_KEY_VAR, GATEWAY_MODE_VAR, GATEWAY_URL_VAR
from .endpoint import (
    IN_KERNEL,
    SERVER_EXTENSION,
    STANDALONE,
    GatewayEndpoint,
    endpoint_from_gateway_url,
)
from .inkernel import start_in_kernel_gateway

__all__ = [
    "IN_KERNEL",
    "SERVER_EXTENSION",
    "STANDALONE",
    "GatewayEndpoint",
    "GatewayNotFound",
    "endpoint_from_gateway_url",
    "find_gateway",
    "gateway_endpoint",
]

KEY_FILE_PREFIX = "cortex-claude-gateway-"
# A live gateway on this machine answers at once; a dead one refuses at once. The limit is for a
# port taken over by something that accepts and never answers.
KEY_CHECK_TIMEOUT = 3.0

# Key files already seen answering with their key, so a cell pays for the check once per server.
_verified: set[tuple[str, str]] = set()


class GatewayNotFound(RuntimeError):
    """No gateway is reachable from this kernel; the message says how to get one."""


def runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_key_file(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("url") and data.get("key"):
            return data
    return None


def _key_file_pid(path: Path) -> int | None:
    digits = path.stem.removeprefix(KEY_FILE_PREFIX)
    return int(digits) if digits.isdigit() else None


def key_file_candidates(
    environ: Mapping[str, str] | None = None, directory: Path | None = None
) -> list[Path]:
    """The parent server's key file first, then the others whose server process is alive, newest
    first."""
    environ = os.environ if environ is None else environ
    directory = runtime_dir() if directory is None else directory
    ordered: list[Path] = []
    parent = environ.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        own = directory / f"{KEY_FILE_PREFIX}{parent}.json"
        if own.is_file():
            ordered.append(own)
    others = []
    for path in directory.glob(f"{KEY_FILE_PREFIX}*.json"):
        pid = _key_file_pid(path)
        if path not in ordered and pid is not None and _pid_alive(pid):
            with contextlib.suppress(OSError):
                others.append((path.stat().st_mtime, path))
    return ordered + [path for _, path in sorted(others, reverse=True)]


def answers_with_key(endpoint: GatewayEndpoint, timeout: float = KEY_CHECK_TIMEOUT) -> bool:
    """Whether a gateway answers at ``endpoint`` and accepts its key.

    A live process id proves little: after the server that wrote a key file was killed, its id may
    belong to any process, even another Jupyter server with another key. ``HEAD`` on the
    Anthropic base path costs no Cortex call.
    """
    try:
        response = httpx.head(
            endpoint.anthropic_url,
            headers={"Authorization": f"Bearer {endpoint.key}"},
            timeout=timeout,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def find_key_file(
    environ: Mapping[str, str] | None = None, directory: Path | None = None
) -> Path | None:
    """The first key file whose gateway answers with its key (see :func:`key_file_candidates`)."""
    for path in key_file_candidates(environ, directory):
        data = _read_key_file(path)
        if data is None:
            continue
        endpoint = endpoint_from_gateway_url(str(data["url"]), str(data["key"]), SERVER_EXTENSION)
        token = (str(path), endpoint.key)
        if token in _verified or answers_with_key(endpoint):
            _verified.add(token)
            return path
    return None


def jupyter_server_info(
    environ: Mapping[str, str] | None = None, directory: Path | None = None
) -> dict[str, Any] | None:
    """``url``, ``base_url`` and ``root_dir`` of the Jupyter server that started this kernel.

    From its ``jpserver-<pid>.json`` runtime file; the token in that file is left out.
    """
    environ = os.environ if environ is None else environ
    parent = environ.get("JPY_PARENT_PID", "")
    if not parent.isdigit():
        return None
    directory = runtime_dir() if directory is None else directory
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((directory / f"jpserver-{parent}.json").read_text())
        return {name: data.get(name) for name in ("url", "base_url", "root_dir")}
    return None


def find_gateway(
    start_in_kernel: bool = True,
    *,
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> GatewayEndpoint:
    environ = os.environ if environ is None else environ
    url, key = environ.get(GATEWAY_URL_VAR), environ.get(GATEWAY_KEY_VAR)
    if url and key:
        return endpoint_from_gateway_url(url, key, environ.get(GATEWAY_MODE_VAR) or STANDALONE)

    key_file = find_key_file(environ, directory)
    if key_file is not None:
        data = _read_key_file(key_file)
        if data is not None:
            return endpoint_from_gateway_url(str(data["url"]), str(data["key"]), SERVER_EXTENSION)

    if start_in_kernel:
        return start_in_kernel_gateway()
    raise GatewayNotFound(
        "No cortex-claude gateway found: this kernel was not started by a Jupyter server with the "
        "jupyter_cortex_claude extension, and CORTEX_CLAUDE_GATEWAY_URL/_KEY are not set."
    )


def gateway_endpoint() -> GatewayEndpoint | None:
    """The gateway to talk to (server extension, or one started in this kernel), or None after
    saying why on stderr (for the magics)."""
    try:
        return find_gateway(start_in_kernel=True)
    except Exception as error:
        print(f"cortex-claude: no gateway available: {error}", file=sys.stderr)
        return None
