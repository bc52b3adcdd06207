"""Which Cortex API serves a route: its preferred one, or Chat Completions once Cortex said it has none.

Two routes prefer an API that not every Cortex deployment has, and can serve the same request
through Chat Completions instead: Claude through the Messages API (``c.CortexClaude.claude_upstream``)
and OpenAI models on the Responses endpoint through Cortex's preview Responses API
(``c.CortexClaude.responses_upstream``). Each keeps one :class:`ChatFallback`.

Cortex answers an unknown model with a 400, never a 404 (``cortex-api.md``), so a 404 from the
preferred endpoint means the endpoint itself is missing: the route switches to Chat Completions for
the rest of the process, and says so once in the log. Asking again on every turn would only add
latency.
"""

from __future__ import annotations

import logging

from ..errors import GatewayError

log = logging.getLogger(__name__)


class ChatFallback:
    """``mode`` is the setting's value: ``preferred`` (the API at ``path``) or ``"chat"``; ``what``
    names what the route serves, for the log."""

    def __init__(self, *, setting: str, mode: str, preferred: str, path: str, what: str) -> None:
        modes = (preferred, "chat")
        if mode not in modes:
            raise ValueError(f"{setting} must be one of {modes}, got {mode!r}")
        self.setting = setting
        self.mode = mode
        self.preferred = preferred
        self.path = path
        self.what = what
        self.missing = False

    def use_chat(self) -> bool:
        return self.mode == "chat" or self.missing

    def means_missing(self, error: GatewayError) -> bool:
        """True when ``error`` says Cortex has no such API here (and we may fall back)."""
        return error.status == 404 and self.mode == self.preferred

    def fall_back(self, error: GatewayError) -> None:
        """Remember that Chat Completions serves from now on; log it the first time."""
        if self.missing:
            return
        self.missing = True
        log.warning(
            "Cortex answered 404 on %s%s: serving %s through Chat Completions from now on. "
            "Set c.CortexClaude.%s = 'chat' to skip this probe.",
            self.path,
            f" (Snowflake request id {error.request_id})" if error.request_id else "",
            self.what,
            self.setting,
        )
