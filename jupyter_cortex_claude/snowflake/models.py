"""The model catalogue: one place that knows what each Cortex model can do.

Facts come from Snowflake's Cortex REST API documentation ("Models and limits"). Cortex documents
a single output ceiling, 16,384 tokens, for every listed model; Claude Code asks for up to 128,000,
which Bedrock-backed Claude refuses, so the gateway clamps to the ceiling the catalogue reports.
Accounts that are allowed more can raise it by configuration.

Pure data: no I/O. The models an account may really use come from Cortex's
``GET /api/v2/cortex/models``; the caller hands them to :meth:`ModelCatalogue.update_available`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

# Documented for every model Cortex lists, on both inference endpoints.
DOCUMENTED_OUTPUT_CEILING = 16_384

MODEL_FAMILIES = ("claude", "openai", "llama", "mistral", "deepseek", "snowflake", "other")


@dataclass(frozen=True)
class ModelInfo:
    """What the gateway needs to know about one Cortex model."""

    name: str
    family: str
    context_window: int
    max_output_tokens: int = DOCUMENTED_OUTPUT_CEILING
    supports_tools: bool = False
    supports_images: bool = False
    # Claude: extended thinking with budget_tokens. OpenAI reasoning models: reasoning on/off.
    supports_thinking: bool = False
    # thinking {"type": "adaptive"}: documented for claude-opus-4-6; claude-sonnet-4-6 shares it.
    supports_adaptive_thinking: bool = False
    # Claude: output_config.effort. OpenAI reasoning models: reasoning_effort.
    supports_effort: bool = False

    @property
    def is_claude(self) -> bool:
        return self.family == "claude"


def _claude(
    name: str, *, thinking: bool = True, adaptive: bool = False, effort: bool = False
) -> ModelInfo:
    return ModelInfo(
        name=name,
        family="claude",
        context_window=200_000,
        supports_tools=True,
        supports_images=True,
        supports_thinking=thinking,
        supports_adaptive_thinking=adaptive,
        supports_effort=effort,
    )


def _openai(name: str, context_window: int, *, reasoning: bool, images: bool = True) -> ModelInfo:
    return ModelInfo(
        name=name,
        family="openai",
        context_window=context_window,
        supports_tools=True,
        supports_images=images,
        supports_thinking=reasoning,
        supports_effort=reasoning,
    )


def _text_only(name: str, family: str, context_window: int) -> ModelInfo:
    # Cortex: for Llama, Mistral, DeepSeek and Snowflake models `tools` and images are errors.
    return ModelInfo(name=name, family=family, context_window=context_window)


BUILTIN_MODELS: tuple[ModelInfo, ...] = (
    _claude("claude-sonnet-4-6", adaptive=True, effort=True),
    _claude("claude-opus-4-6", adaptive=True, effort=True),
    _claude("claude-sonnet-4-5"),
    _claude("claude-opus-4-5", effort=True),
    _claude("claude-haiku-4-5"),
    _claude("claude-4-sonnet"),
    _claude("claude-4-opus"),
    _claude("claude-3-7-sonnet"),
    _claude("claude-3-5-sonnet", thinking=False),
    _openai("openai-gpt-4.1", 1_047_576, reasoning=False),
    _openai("openai-gpt-5", 272_000, reasoning=True),
    _openai("openai-gpt-5-mini", 272_000, reasoning=True),
    _openai("openai-gpt-5-nano", 272_000, reasoning=True),
    _openai("openai-gpt-5-chat", 128_000, reasoning=False),
    _openai("openai-gpt-oss-120b", 128_000, reasoning=True, images=False),
    _text_only("llama4-maverick", "llama", 128_000),
    _text_only("llama3.1-8b", "llama", 128_000),
    _text_only("llama3.1-70b", "llama", 128_000),
    _text_only("llama3.1-405b", "llama", 128_000),
    # deepseek-r1 always reasons; Cortex offers no knob for it, so no supports_thinking.
    _text_only("deepseek-r1", "deepseek", 32_768),
    _text_only("mistral-7b", "mistral", 32_000),
    _text_only("mistral-large", "mistral", 32_000),
    _text_only("mistral-large2", "mistral", 128_000),
    _text_only("snowflake-llama-3.3-70b", "snowflake", 128_000),
)

_OPENAI_REASONING = re.compile(r"^openai-(gpt-5(?!.*-chat)|o\d|gpt-oss)")


def infer_model(name: str) -> ModelInfo:
    """A best guess for a model the catalogue does not list, from its name alone.

    New Claude ids get tools, images and budget thinking (which every Claude since 3.7 takes) but
    not adaptive thinking or effort: the gateway then turns ``adaptive`` into a budget, which is
    safe. A fine-tuned model (``database.schema.model``) gets nothing: no tools, no images.
    """
    lowered = name.lower()
    if lowered.count(".") >= 2:
        return _text_only(name, "other", 32_768)
    if lowered.startswith("claude"):
        return _claude(name)
    if lowered.startswith("openai-"):
        return _openai(name, 128_000, reasoning=bool(_OPENAI_REASONING.match(lowered)))
    if lowered.startswith("snowflake-"):
        return _text_only(name, "snowflake", 128_000)
    if lowered.startswith("llama"):
        return _text_only(name, "llama", 128_000)
    if lowered.startswith(("mistral", "mixtral")):
        return _text_only(name, "mistral", 32_000)
    if lowered.startswith("deepseek"):
        return _text_only(name, "deepseek", 32_768)
    return _text_only(name, "other", 32_768)


class ModelCatalogue:
    """The models the gateway knows, their limits, and which ones the account may use.

    Output ceiling of a model, first match wins: ``model_output_ceilings[name]``; the model's own
    ``max_output_tokens`` when it is not the documented 16,384 (a model given its own limit keeps
    it); otherwise ``output_ceiling``, the account-wide setting (default: the documented 16,384).
    """

    def __init__(
        self,
        models: Iterable[ModelInfo] = BUILTIN_MODELS,
        *,
        output_ceiling: int = DOCUMENTED_OUTPUT_CEILING,
        model_output_ceilings: Mapping[str, int] | None = None,
    ) -> None:
        if output_ceiling < 1:
            raise ValueError(f"output_ceiling must be positive, got {output_ceiling}")
        self._output_ceiling = output_ceiling
        self._overrides = {
            name.lower(): value for name, value in (model_output_ceilings or {}).items()
        }
        for name, value in self._overrides.items():
            if value < 1:
                raise ValueError(f"output ceiling for {name} must be positive, got {value}")
        self._models: dict[str, ModelInfo] = {}
        for info in models:
            self._models[info.name.lower()] = self._with_ceiling(info)
        self._builtin_names = list(self._models)
        self._available: list[str] | None = None

    def _with_ceiling(self, info: ModelInfo) -> ModelInfo:
        ceiling = self._overrides.get(info.name.lower())
        if ceiling is None:
            if info.max_output_tokens != DOCUMENTED_OUTPUT_CEILING:
                return info
            ceiling = self._output_ceiling
        return (
            info if ceiling == info.max_output_tokens else replace(info, max_output_tokens=ceiling)
        )

    def get(self, name: str) -> ModelInfo:
        """The model's info; an unknown name gets an inferred one (see :func:`infer_model`)."""
        known = self._models.get(name.lower())
        if known is not None:
            return known
        return self._with_ceiling(infer_model(name))

    def knows(self, name: str) -> bool:
        return name.lower() in self._models

    def is_claude(self, name: str) -> bool:
        return self.get(name).is_claude

    def names(self) -> list[str]:
        return [self._models[key].name for key in self._models]

    def available(self) -> list[ModelInfo]:
        """The builtin models, or after :meth:`update_available` only those the account reported."""
        keys = self._builtin_names if self._available is None else self._available
        return [self._models[key] for key in keys]

    @property
    def has_account_list(self) -> bool:
        """Whether Cortex said which models the account has (:meth:`update_available`)."""
        return self._available is not None

    def update_available(self, names: Iterable[str]) -> None:
        """Record the models Cortex's ``GET /api/v2/cortex/models`` reported for this account.

        Names the catalogue did not list are added with inferred capabilities, so a model Snowflake
        releases later is usable at once.
        """
        available: list[str] = []
        for name in names:
            if not isinstance(name, str) or not name.strip():
                continue
            key = name.strip().lower()
            if key not in self._models:
                self._models[key] = self._with_ceiling(infer_model(name.strip()))
            if key not in available:
                available.append(key)
        self._available = available

    def output_ceiling(self, name: str) -> int:
        return self.get(name).max_output_tokens

    def learn_output_ceiling(self, name: str, ceiling: int) -> None:
        """Cortex refused more than ``ceiling`` output tokens for ``name``: use it from now on, as
        if ``model_output_ceilings`` said so (snowflake/cortex_limits.py)."""
        key = name.lower()
        self._overrides[key] = ceiling
        if key in self._models:
            self._models[key] = replace(self._models[key], max_output_tokens=ceiling)
