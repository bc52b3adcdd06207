"""How code in a kernel finds a gateway to talk to.

In order:
1. ``CORTEX_CLAUDE_GATEWAY_URL`` + ``CORTEX_CLAUDE_GATEWAY_KEY`` in the environment (a terminal of
   ours, or a process started by ``cortex-claude``);
2. the key file of the Jupyter server that started this kernel,
   ``<jupyter runtime dir>/cortex-claude-gateway-<server pid>.json`` (0600, written by the server
   extension), found through ``JPY_PARENT_PID`` (jupyter_server's kernel launcher sets it), else the
   newest such file whose server is still alive;
3. a gateway started inside this kernel (Snowflake Notebooks, VS Code, a Jupyter server without the
   extension): :func:`.inkernel.start_in_kernel_gateway`.

The server never puts its key into a kernel's environment: only the user who owns the runtime
directory can read the file, which is exactly who may use the key.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..claude_env import GATEWAY_KEY_VAR, GATEWAY_MODE_VAR, GATEWAY_URL_VAR

SERVER_EXTENSION = "server-extension"
STANDALONE = "standalone"
IN_KERNEL = "in-kernel"
KEY_FILE_PREFIX = "cortex-claude-gateway-"
_ANTHROPIC_SUFFIX = "/anthropic"
_GATEWAY_SUFFIX = "/cortex-claude"


class GatewayNotFound(RuntimeError):
    """No gateway is reachable from this kernel; the message says how to get one."""


@dataclass
class GatewayEndpoint:
    anthropic_url: str
    openai_url: str
    key: str
    mode: str  # "server-extension" | "standalone" | "in-kernel"
    server_url: str | None  # the Jupyter server (or standalone origin) that serves the gateway

    @property
    def gateway_url(self) -> str:
        """The ``.../cortex-claude`` root (``health``, ``usage`` live under it)."""
        return self.anthropic_url.rstrip("/").removesuffix(_ANTHROPIC_SUFFIX)

    def __repr__(self) -> str:  # never show the key
        return (
            f"GatewayEndpoint(anthropic_url={self.anthropic_url!r}, mode={self.mode!r}, "
            f"server_url={self.server_url!r}, key=<hidden>)"
        )


def endpoint_from_gateway_url(url: str, key: str, mode: str) -> GatewayEndpoint:
    """An endpoint from the gateway root, also accepting its Anthropic URL."""
    root = url.rstrip("/").removesuffix(_ANTHROPIC_SUFFIX)
    server = root.removesuffix(_GATEWAY_SUFFIX) + "/" if root.endswith(_GATEWAY_SUFFIX) else None
    return GatewayEndpoint(
        anthropic_url=root + _ANTHROPIC_SUFFIX,
        openai_url=root + "/openai/v1",
        key=key,
        mode=mode,
        server_url=server,
    )


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


def find_key_file(
    environ: Mapping[str, str] | None = None, directory: Path | None = None
) -> Path | None:
    """The parent server's key file, else the newest one whose server is alive."""
    environ = os.environ if environ is None else environ
    directory = runtime_dir() if directory is None else directory
    parent = environ.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        own = directory / f"{KEY_FILE_PREFIX}{parent}.json"
        if own.is_file():
            return own
    candidates = []
    for path in directory.glob(f"{KEY_FILE_PREFIX}*.json"):
        pid = _key_file_pid(path)
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(OSError):
                candidates.append((path.stat().st_mtime, path))
    return max(candidates)[1] if candidates else None


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
        try:
            from .inkernel import start_in_kernel_gateway
        except ImportError as exc:
            raise GatewayNotFound(
                "No cortex-claude gateway found, and this version cannot start one inside the "
                f"kernel ({exc}). Run it under a Jupyter server with the extension enabled "
                "(`jupyter server extension enable jupyter_cortex_claude`) or start "
                "`cortex-claude serve` and set CORTEX_CLAUDE_GATEWAY_URL/_KEY."
            ) from None
        endpoint: GatewayEndpoint = start_in_kernel_gateway()
        return endpoint
    raise GatewayNotFound(
        "No cortex-claude gateway found: this kernel was not started by a Jupyter server with the "
        "jupyter_cortex_claude extension, and CORTEX_CLAUDE_GATEWAY_URL/_KEY are not set."
    )
