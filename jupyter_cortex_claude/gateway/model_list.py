"""The models the account may use, for ``/anthropic/v1/models`` and ``/openai/v1/models``.

Cortex's ``GET /api/v2/cortex/models`` says which models this account and role may call. The
answer is cached (ten minutes) because clients ask for the list often and it changes rarely; when
Cortex does not answer (older deployments, a network hiccup) the builtin catalogue stands, so the
list is never empty because of a failed refresh.

Both lists include every available model: non-Claude models work on the Anthropic side too, through
:mod:`.route_anthropic_chat`. The aliases of ``c.CortexClaude.model_map`` are listed as well, so a
client that offers a model picker (Cursor, Claude Code's gateway discovery) can pick them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import GatewayError
from ..snowflake.cortex import MODELS_PATH

if TYPE_CHECKING:
    from ..snowflake.cortex import CortexClient
    from ..snowflake.models import ModelCatalogue

log = logging.getLogger("jupyter_cortex_claude.gateway")

REFRESH_SECONDS = 600.0
# Fixed timestamps: Cortex reports no release dates, and clients only display them.
_CREATED_AT = "2025-01-01T00:00:00Z"
_CREATED = 1735689600


def model_names(payload: Any) -> list[str] | None:
    """The names in Cortex's answer, ``{"models": ["name", ...]}`` or ``{"models": [{"name": ...}]}``.

    The documentation's example is a list of strings; objects with a ``name`` (or ``id``) are
    accepted too. ``None`` when the answer has neither shape.
    """
    models = payload.get("models") if isinstance(payload, Mapping) else None
    if not isinstance(models, list):
        return None
    names: list[str] = []
    for entry in models:
        if isinstance(entry, Mapping):
            entry = entry.get("name") or entry.get("id")
        if isinstance(entry, str) and entry.strip():
            names.append(entry.strip())
    return names


class ModelAvailability:
    """Refreshes the catalogue's available models from Cortex at most every ``max_age`` seconds."""

    def __init__(
        self,
        cortex: CortexClient,
        catalogue: ModelCatalogue,
        *,
        max_age: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cortex = cortex
        self.catalogue = catalogue
        self.max_age = max_age
        self.clock = clock
        self.checked_at: float | None = None
        self._lock = asyncio.Lock()

    def is_fresh(self) -> bool:
        return self.checked_at is not None and self.clock() - self.checked_at < self.max_age

    async def refresh(self) -> None:
        """Ask Cortex unless the last answer (or failure) is recent; never raises."""
        if self.is_fresh():
            return
        async with self._lock:
            if self.is_fresh():
                return
            # A failed refresh also waits max_age: an account without the endpoint is not asked on
            # every /models call.
            self.checked_at = self.clock()
            try:
                payload = await self.cortex.get_json(MODELS_PATH)
            except (GatewayError, httpx.HTTPError, ValueError) as exc:
                log.debug("model list refresh failed, keeping the catalogue: %s", exc)
                return
            names = model_names(payload)
            if not names:
                log.debug("model list refresh: Cortex listed no models, keeping the catalogue")
                return
            self.catalogue.update_available(names)
            log.debug("model list refreshed: %d models available", len(names))


def listed_ids(catalogue: ModelCatalogue, aliases: Mapping[str, str]) -> list[str]:
    """Available model names, then the aliases whose target is available."""
    ids = [model.name for model in catalogue.available()]
    available = {name.lower() for name in ids}
    for alias, target in aliases.items():
        if alias not in ids and target.lower() in available:
            ids.append(alias)
    return ids


def anthropic_model_page(ids: list[str]) -> dict[str, Any]:
    data = [
        {"type": "model", "id": name, "display_name": name, "created_at": _CREATED_AT}
        for name in ids
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def openai_model_list(ids: list[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": _CREATED, "owned_by": "snowflake-cortex"}
            for name in ids
        ],
    }
