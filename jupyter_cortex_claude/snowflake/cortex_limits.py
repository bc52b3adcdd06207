"""When Cortex is stricter than configured: learn from its 400, retry that request once.

An account or a model can have a lower output ceiling than the documented 16,384 (cortex-api.md,
"Messages API details"), or refuse a beta or a field the documentation allows. Each Claude Code
request would then fail with a 400 and no hint. When Cortex's refusal names what it refused, the
Cortex client asks :meth:`CortexLimits.repair` for a corrected request and sends it once more
(a refused request was not processed, so re-sending it is safe); what was learned holds for the
life of the server, so later requests are right the first time:

- a ceiling (``max_tokens: 16384 > 8192, which is the maximum allowed number of output tokens for
  M``, Anthropic's documented wording; Cortex's own is not documented, so any "``> N``" or "limit
  of N" after the field's name counts) lowers the model's ceiling in the catalogue, which every
  later request is clamped to by the gateway's shaping;
- a beta named in the refusal (``invalid beta flag(s) in anthropic-beta: X``) is dropped from the
  ``anthropic-beta`` header, from now on, for that model;
- a top-level field named as not permitted (``#: extraneous key [X] is not permitted``,
  ``unsupported request field(s): X``) is removed from the body, from now on, for that model; the
  fields that carry the request itself (model, messages, tools...) are never removed.

Never a loop: one repair per request, and only when it changes something.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .models import ModelCatalogue

log = logging.getLogger("jupyter_cortex_claude.cortex")

MESSAGES_LIMIT_FIELD = "max_tokens"
CHAT_LIMIT_FIELD = "max_completion_tokens"
# Fields without which the request means something else: a refusal naming them is reported.
KEPT_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "stream", "system", "tools"}
)
_CEILING = re.compile(
    r"(?P<field>max_completion_tokens|max_tokens)\b[^0-9;]{0,40}?(?P<asked>\d+)\s*"
    r"(?:>\s*|exceeds[^0-9;]{0,40}?limit of\s*)(?P<ceiling>\d+)",
    re.IGNORECASE,
)
_EXTRANEOUS_KEY = re.compile(r"#: extraneous key \[(?P<keys>[^\]]+)\]")
_UNSUPPORTED_FIELDS = re.compile(r"unsupported request fields?(?:\(s\))?:\s*(?P<keys>[\w, ]+)")
_BETA_WORDS = re.compile(r"beta", re.IGNORECASE)


@dataclass
class Repair:
    content: bytes
    headers: dict[str, str]
    learned: list[str] = field(default_factory=list)  # for the log: what changed, no prompt text


class CortexLimits:
    """What this account's Cortex refuses that the configuration allows, learned from its 400s."""

    def __init__(self, catalogue: ModelCatalogue | None = None) -> None:
        self.catalogue = catalogue or ModelCatalogue()
        self.refused_betas: dict[str, set[str]] = {}  # model → betas
        self.refused_fields: dict[str, set[str]] = {}  # model → top-level fields
        self.learned_ceilings: dict[str, int] = {}  # model → ceiling

    def describe(self) -> dict[str, Any]:
        """For ``cortex-claude/health``: what was learned, per model."""
        return {
            "output_ceilings": dict(self.learned_ceilings),
            "refused_betas": {m: sorted(b) for m, b in self.refused_betas.items()},
            "refused_fields": {m: sorted(f) for m, f in self.refused_fields.items()},
        }

    def prepare(
        self, content: bytes, headers: Mapping[str, str], model: str
    ) -> tuple[bytes, Mapping[str, str]]:
        """The request without what Cortex refused before for ``model`` (as is when nothing)."""
        betas = self.refused_betas.get(model)
        if betas and headers.get("anthropic-beta"):
            headers = _without_betas(headers, betas)
        fields = self.refused_fields.get(model)
        if fields:
            body = _json_object(content)
            if body is not None and fields & body.keys():
                content = _dumps({k: v for k, v in body.items() if k not in fields})
        return content, headers

    def repair(
        self, status: int, message: str, content: bytes, headers: Mapping[str, str], model: str
    ) -> Repair | None:
        """A corrected request when Cortex's 400 ``message`` names something it can do without,
        remembered for ``model``; None when there is nothing to learn."""
        if status != 400 or not message:
            return None
        body = _json_object(content)
        if body is None:
            return None
        repair = Repair(content, dict(headers))
        changed = dict(body)
        self._lower_ceiling(message, changed, model, repair)
        self._drop_betas(message, repair, model)
        self._drop_fields(message, changed, model, repair)
        if not repair.learned:
            return None
        if changed != body:
            repair.content = _dumps(changed)
        log.warning(
            "Cortex refused a request for %s: %s. Learned for the life of the server; "
            "retrying it once.",
            model,
            "; ".join(repair.learned),
        )
        return repair

    def _lower_ceiling(
        self, message: str, body: dict[str, Any], model: str, repair: Repair
    ) -> None:
        match = _CEILING.search(message)
        if match is None:
            return
        name = match.group("field").lower()
        ceiling = int(match.group("ceiling"))
        sent = body.get(name)
        if not isinstance(sent, int) or ceiling < 1 or sent <= ceiling:
            return  # nothing to lower: the refusal is about something else
        body[name] = ceiling
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int):
            budget = thinking["budget_tokens"]
            if budget >= ceiling:
                # A budget must stay below max_tokens (gateway/thinking.py: under 1,024, none).
                if ceiling - 1 >= 1024:
                    body["thinking"] = {**thinking, "budget_tokens": ceiling - 1}
                else:
                    body.pop("thinking")
        self.catalogue.learn_output_ceiling(model, ceiling)
        self.learned_ceilings[model] = ceiling
        repair.learned.append(
            f"{name} {sent} is above its output ceiling of {ceiling}, which is used from now on "
            f"(c.CortexClaude.model_output_ceilings = {{{model!r}: {ceiling}}} skips this)"
        )

    def _drop_betas(self, message: str, repair: Repair, model: str) -> None:
        sent = [b.strip() for b in repair.headers.get("anthropic-beta", "").split(",") if b.strip()]
        if not sent or not _BETA_WORDS.search(message):
            return
        named = {beta for beta in sent if beta in message}
        if not named:
            return
        self.refused_betas.setdefault(model, set()).update(named)
        repair.headers = dict(_without_betas(repair.headers, named))
        repair.learned.append(f"beta {', '.join(sorted(named))} refused, no longer sent")

    def _drop_fields(self, message: str, body: dict[str, Any], model: str, repair: Repair) -> None:
        named: set[str] = set()
        for pattern in (_EXTRANEOUS_KEY, _UNSUPPORTED_FIELDS):
            for match in pattern.finditer(message):
                named.update(key.strip() for key in match.group("keys").split(","))
        droppable = {key for key in named if key in body and key not in KEPT_FIELDS}
        if not droppable:
            return
        for key in droppable:
            body.pop(key)
        self.refused_fields.setdefault(model, set()).update(droppable)
        repair.learned.append(f"field {', '.join(sorted(droppable))} refused, no longer sent")


def _without_betas(headers: Mapping[str, str], betas: set[str]) -> dict[str, str]:
    kept = [
        beta.strip()
        for beta in headers.get("anthropic-beta", "").split(",")
        if beta.strip() and beta.strip() not in betas
    ]
    result = {k: v for k, v in headers.items() if k.lower() != "anthropic-beta"}
    if kept:
        result["anthropic-beta"] = ",".join(kept)
    return result


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
