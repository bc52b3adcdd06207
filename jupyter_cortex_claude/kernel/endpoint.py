"""A gateway as seen from a kernel: where it answers and with which key."""

from __future__ import annotations

from dataclasses import dataclass

from ..claude_env import IN_KERNEL_MODE, SERVER_EXTENSION_MODE, STANDALONE_MODE

SERVER_EXTENSION = SERVER_EXTENSION_MODE
STANDALONE = STANDALONE_MODE
IN_KERNEL = IN_KERNEL_MODE
_ANTHROPIC_SUFFIX = "/anthropic"
_GATEWAY_SUFFIX = "/cortex-claude"


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
