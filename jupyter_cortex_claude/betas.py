"""The ``anthropic-beta`` values Cortex's Messages API accepts: the default of the beta allowlist.

Cortex accepts only Bedrock-compatible betas (cortex-api.md, "Messages API details") and answers an
unknown one with a 400; Claude Code sends many more. The list sits at the bottom of the layers so the
settings (:mod:`.config`) can offer it as a default without loading the gateway, whose shaping
(:mod:`.gateway.messages`) drops every flag not allowed.
"""

from __future__ import annotations

DOCUMENTED_BETAS: frozenset[str] = frozenset(
    {
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
    }
)
