"""The model catalogue and the mapping of client model ids to Cortex model ids."""

from __future__ import annotations

import pytest

from jupyter_cortex_claude.gateway.model_ids import (
    DEFAULT_FAMILY_MODELS,
    DEFAULT_MODEL,
    normalize_model_id,
    resolve_model,
)
from jupyter_cortex_claude.snowflake.models import (
    BUILTIN_MODELS,
    DOCUMENTED_OUTPUT_CEILING,
    ModelCatalogue,
    ModelInfo,
)

# Every model named in cortex-api.md "Models and limits".
DOCUMENTED_MODELS = [
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
]


def resolve(requested: str, **overrides: object) -> str:
    options: dict[str, object] = {
        "model_map": {},
        "family_models": DEFAULT_FAMILY_MODELS,
        "default_model": DEFAULT_MODEL,
        "catalogue": ModelCatalogue(),
    }
    options.update(overrides)
    return resolve_model(requested, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        # Claude Code 2.1.330's default model is not a Cortex name: it goes by family.
        ("claude-opus-5-5", "claude-opus-4-6"),
        ("claude-sonnet-5", "claude-sonnet-4-6"),
        ("claude-opus-4-1", "claude-opus-4-6"),
        ("claude-haiku-5-0-20270101", "claude-haiku-4-5"),
        # Dated ids of older CLIs and the SDKs.
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-sonnet-4-5-latest", "claude-sonnet-4-5"),
        # Context suffix.
        ("claude-opus-4-6[1m]", "claude-opus-4-6"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"),
        # Claude Code's aliases.
        ("sonnet", "claude-sonnet-4-6"),
        ("opus", "claude-opus-4-6"),
        ("haiku", "claude-haiku-4-5"),
        ("Opus", "claude-opus-4-6"),
        # Anthropic's naming of the Claude 4 models → Cortex's.
        ("claude-sonnet-4-20250514", "claude-4-sonnet"),
        ("claude-sonnet-4-0", "claude-4-sonnet"),
        ("claude-opus-4-0", "claude-4-opus"),
        ("claude-opus-4-20250514", "claude-4-opus"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        # Bedrock and Vertex ids.
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        # Cortex ids as they are.
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-4-sonnet", "claude-4-sonnet"),
        ("openai-gpt-4.1", "openai-gpt-4.1"),
        ("llama3.1-70b", "llama3.1-70b"),
        ("CLAUDE-HAIKU-4-5", "claude-haiku-4-5"),
        # Unknown non-Claude ids pass through untouched, for Cortex to judge.
        ("db.schema.ft", "db.schema.ft"),
        ("MYDB.PUBLIC.My-Finetune", "MYDB.PUBLIC.My-Finetune"),
        ("llama3.3-70b", "llama3.3-70b"),
        # A Claude id without a family word, and nothing at all: the default model.
        ("claude-next", DEFAULT_MODEL),
        ("", DEFAULT_MODEL),
        ("   ", DEFAULT_MODEL),
    ],
)
def test_client_model_ids_reach_a_cortex_model(requested: str, expected: str) -> None:
    assert resolve(requested) == expected


def test_the_users_model_map_wins_on_the_raw_id_and_on_the_normalized_id() -> None:
    model_map = {"claude-opus-5-5": "claude-opus-4-5", "claude-haiku-4-5": "llama3.1-8b"}
    assert resolve("claude-opus-5-5", model_map=model_map) == "claude-opus-4-5"
    # Not an exact raw match, but the normalized id is mapped.
    assert resolve("claude-haiku-4-5-20251001", model_map=model_map) == "llama3.1-8b"
    assert resolve("haiku", model_map={"haiku": "claude-3-5-sonnet"}) == "claude-3-5-sonnet"
    assert resolve("opus", model_map=model_map) == "claude-opus-4-6"


def test_family_models_and_default_model_are_configurable() -> None:
    families = {
        "opus": "claude-opus-4-5",
        "sonnet": "claude-sonnet-4-5",
        "haiku": "claude-haiku-4-5",
    }
    assert resolve("claude-opus-5-5", family_models=families) == "claude-opus-4-5"
    assert resolve("sonnet", family_models=families) == "claude-sonnet-4-5"
    assert resolve("", default_model="claude-4-sonnet") == "claude-4-sonnet"


def test_a_model_the_account_reports_is_used_as_is() -> None:
    catalogue = ModelCatalogue()
    assert resolve("claude-opus-4-7", catalogue=catalogue) == "claude-opus-4-6"
    catalogue.update_available(["claude-opus-4-7", "claude-sonnet-4-6"])
    assert resolve("claude-opus-4-7", catalogue=catalogue) == "claude-opus-4-7"
    assert resolve("claude-opus-4-7-20270101", catalogue=catalogue) == "claude-opus-4-7"


def test_normalize_model_id_strips_only_what_is_not_part_of_the_name() -> None:
    assert normalize_model_id(" Claude-Sonnet-4-5-20250929[1M] ") == "claude-sonnet-4-5"
    assert normalize_model_id("eu.anthropic.claude-haiku-4-5-20251001-v1:0") == "claude-haiku-4-5"
    assert normalize_model_id("openai-gpt-5-mini") == "openai-gpt-5-mini"


def test_the_catalogue_lists_every_documented_model_with_the_documented_ceiling() -> None:
    catalogue = ModelCatalogue()
    assert sorted(catalogue.names()) == sorted(DOCUMENTED_MODELS)
    assert [info.name for info in catalogue.available()] == [info.name for info in BUILTIN_MODELS]
    for name in DOCUMENTED_MODELS:
        assert catalogue.knows(name)
        assert catalogue.output_ceiling(name) == DOCUMENTED_OUTPUT_CEILING == 16_384


def test_model_capabilities_follow_the_cortex_documentation() -> None:
    catalogue = ModelCatalogue()
    opus_4_6 = catalogue.get("claude-opus-4-6")
    assert opus_4_6.is_claude and opus_4_6.family == "claude"
    assert opus_4_6.supports_adaptive_thinking and opus_4_6.supports_effort
    assert catalogue.get("claude-sonnet-4-6").supports_adaptive_thinking
    opus_4_5 = catalogue.get("claude-opus-4-5")
    assert opus_4_5.supports_effort and not opus_4_5.supports_adaptive_thinking
    sonnet_4_5 = catalogue.get("claude-sonnet-4-5")
    assert sonnet_4_5.supports_thinking and not sonnet_4_5.supports_effort
    assert not catalogue.get("claude-3-5-sonnet").supports_thinking
    assert catalogue.get("openai-gpt-5").supports_effort
    assert not catalogue.get("openai-gpt-4.1").supports_thinking
    for name in ("llama3.1-70b", "mistral-large2", "deepseek-r1", "snowflake-llama-3.3-70b"):
        info = catalogue.get(name)
        assert not info.supports_tools and not info.supports_images and not info.is_claude
    assert catalogue.is_claude("claude-haiku-4-5")
    assert not catalogue.is_claude("openai-gpt-5")


def test_output_ceilings_can_be_raised_globally_and_per_model() -> None:
    catalogue = ModelCatalogue(
        output_ceiling=32_000, model_output_ceilings={"claude-sonnet-4-6": 64_000}
    )
    assert catalogue.output_ceiling("claude-sonnet-4-6") == 64_000
    assert catalogue.get("claude-sonnet-4-6").max_output_tokens == 64_000
    assert catalogue.output_ceiling("claude-opus-4-6") == 32_000
    assert catalogue.output_ceiling("db.schema.ft") == 32_000
    # A model given its own limit keeps it under the global setting.
    own = ModelInfo(name="tiny", family="other", context_window=8_000, max_output_tokens=2_048)
    assert ModelCatalogue([own], output_ceiling=32_000).output_ceiling("tiny") == 2_048
    with pytest.raises(ValueError, match="output_ceiling"):
        ModelCatalogue(output_ceiling=0)


@pytest.mark.parametrize(
    ("name", "family", "tools"),
    [
        ("claude-opus-4-7", "claude", True),
        ("openai-gpt-5.4", "openai", True),
        ("llama3.3-70b", "llama", False),
        ("mistral-small", "mistral", False),
        ("deepseek-v3", "deepseek", False),
        ("snowflake-arctic", "snowflake", False),
        ("mydb.myschema.my-finetune", "other", False),
        ("gemma-7b", "other", False),
    ],
)
def test_an_unknown_model_gets_capabilities_inferred_from_its_name(
    name: str, family: str, tools: bool
) -> None:
    catalogue = ModelCatalogue()
    info = catalogue.get(name)
    assert not catalogue.knows(name)
    assert (info.name, info.family, info.supports_tools) == (name, family, tools)
    assert info.max_output_tokens == 16_384
    # Never adaptive: the gateway turns adaptive thinking into a budget, which every Claude accepts.
    assert not info.supports_adaptive_thinking


def test_update_available_limits_the_list_and_adds_new_models() -> None:
    catalogue = ModelCatalogue()
    catalogue.update_available(["claude-sonnet-4-6", "claude-opus-4-7", "", "claude-sonnet-4-6"])
    assert [info.name for info in catalogue.available()] == ["claude-sonnet-4-6", "claude-opus-4-7"]
    assert catalogue.knows("claude-opus-4-7")
    assert catalogue.get("claude-opus-4-7").is_claude
    # Models the account does not report stay known (their limits are still facts).
    assert catalogue.knows("claude-opus-4-6")
