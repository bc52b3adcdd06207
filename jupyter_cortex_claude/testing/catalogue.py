"""The emulator's own small model table (deliberately independent of the gateway's catalogue).

Names and features from Snowflake's Cortex REST API page (cross-region table, Messages API notes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_MODELS = (
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
    "claude-haiku-4-5",
    "claude-4-sonnet",
    "claude-4-opus",
    "claude-3-7-sonnet",
    "claude-3-5-sonnet",
    "openai-gpt-4.1",
    "openai-gpt-5",
    "openai-gpt-5-mini",
    "openai-gpt-5-nano",
    "openai-gpt-5-chat",
    "openai-gpt-oss-120b",
    "llama4-maverick",
    "llama3.1-8b",
    "llama3.1-70b",
    "llama3.1-405b",
    "deepseek-r1",
    "mistral-7b",
    "mistral-large",
    "mistral-large2",
    "snowflake-llama-3.3-70b",
)

# Adaptive thinking with effort is documented for claude-opus-4-6; Sonnet 4.6 and Opus 4.5 take
# effort too (Anthropic's model pages).
ADAPTIVE_THINKING_MODELS = frozenset({"claude-opus-4-6", "claude-sonnet-4-6"})
EFFORT_MODELS = frozenset({"claude-opus-4-5", "claude-opus-4-6", "claude-sonnet-4-6"})


def model_family(name: str) -> str:
    if name.startswith("claude-"):
        return "claude"
    if name.startswith("openai-"):
        return "openai"
    if name.startswith("snowflake-"):
        return "snowflake"
    for family in ("llama", "mistral", "deepseek"):
        if name.startswith(family):
            return family
    return "other"  # fine-tuned `database.schema.model` names and the like


@dataclass(frozen=True)
class EmulatedModel:
    name: str
    family: str
    output_ceiling: int

    @property
    def is_claude(self) -> bool:
        return self.family == "claude"

    @property
    def can_call_tools(self) -> bool:
        # Cortex: tools (and images) are an error for Llama, Mistral, DeepSeek and Snowflake models.
        return self.family in ("claude", "openai")

    @property
    def accepts_images(self) -> bool:
        return self.family in ("claude", "openai")


class ModelTable:
    def __init__(
        self,
        models: Iterable[str] | None,
        output_ceiling: int,
        model_output_ceilings: Mapping[str, int] | None,
    ) -> None:
        overrides = dict(model_output_ceilings or {})
        self._models = {
            name: EmulatedModel(name, model_family(name), overrides.get(name, output_ceiling))
            for name in (DEFAULT_MODELS if models is None else tuple(models))
        }

    def get(self, name: object) -> EmulatedModel | None:
        return self._models.get(name) if isinstance(name, str) else None

    def names(self) -> list[str]:
        return list(self._models)
