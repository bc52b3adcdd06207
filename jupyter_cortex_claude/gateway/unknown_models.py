"""A model id this account does not have is refused before Cortex, naming a few it has.

Without this, ``claude --model gpt-nonexistent`` was told "cannot call tools on Cortex" (the
catalogue infers a tool-less model for a name it does not know) and a request without tools got
Cortex's bare "unknown model". Cortex's model list (``GET /api/v2/cortex/models``, cached by
:class:`.model_list.ModelAvailability`) says what the account has; only ids the builtin catalogue
does not know are checked against it, so a known model is never refused on a stale list, and a
fine-tuned ``database.schema.model`` (which the list may not show) is left to Cortex.

A 400 ``invalid_request_error``: Claude Code 2.1.330 shows its message as is (a 404 would be
replaced by its own "There's an issue with the selected model" without our list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import GatewayError
from .json_bodies import is_large, off_loop, parse_request_body

if TYPE_CHECKING:
    from ..snowflake.models import ModelCatalogue
    from .router import Gateway

SHOWN = 5
T = TypeVar("T")


class ShapedRequest(Protocol):
    """What the check reads of a shaped Messages or Chat Completions request."""

    client_model: str
    cortex_model: str
    body: dict[str, Any]


async def for_known_model(
    gateway: Gateway,
    raw_body: bytes,
    shaping: Awaitable[T],
    shaped_of: Callable[[T], ShapedRequest] | None = None,
) -> T:
    """``shaping``'s result, unless the request names a model the account does not have: then a
    400 naming a few it has, before anything is sent to Cortex.

    Checked after shaping (which resolves the id), and also when shaping refused the request's
    tools: for an id the catalogue does not know, that refusal ("cannot call tools") would hide
    that the model does not exist. Only that failure path parses the body a second time.
    """
    try:
        result = await shaping
    except GatewayError as refusal:
        if refusal.param != "tools":
            raise
        body = await off_loop(is_large(raw_body), parse_request_body, raw_body)
        model = body.get("model")
        if isinstance(model, str) and model.strip():
            resolved = gateway.chat_policy.resolve(model)
            await refuse_unknown_model(gateway, model, resolved, wants_tools=True)
        raise
    shaped: ShapedRequest = shaped_of(result) if shaped_of else result  # type: ignore[assignment]
    wants_tools = bool(shaped.body.get("tools"))
    await refuse_unknown_model(
        gateway, shaped.client_model, shaped.cortex_model, wants_tools=wants_tools
    )
    return result


async def refuse_unknown_model(
    gateway: Gateway, client_model: str, cortex_model: str, *, wants_tools: bool
) -> None:
    """Raise a 400 naming models the account has when ``cortex_model`` is not one of them."""
    catalogue = gateway.catalogue
    if catalogue.knows(cortex_model) or cortex_model.count(".") >= 2:
        return
    await gateway.model_availability.refresh()  # cached; never raises
    if catalogue.knows(cortex_model) or not catalogue.has_account_list:
        return
    raise GatewayError(
        400, unknown_model_message(client_model, catalogue, wants_tools=wants_tools), param="model"
    )


def unknown_model_message(requested: str, catalogue: ModelCatalogue, *, wants_tools: bool) -> str:
    models = catalogue.available()
    with_tools = [m.name for m in models if m.supports_tools]
    if wants_tools:
        candidates, kind = with_tools, "that can call tools, as Claude Code needs"
    else:
        candidates = with_tools + [m.name for m in models if not m.supports_tools]
        kind = "for example"
    shown = candidates[:SHOWN]
    more = len(candidates) - len(shown)
    listing = ", ".join(shown) if shown else "none"
    if more > 0:
        listing += f" and {more} more (GET cortex-claude/anthropic/v1/models lists them)"
    return (
        f"unknown model {requested[:256]}: it is not a model this Snowflake account has on "
        f"Cortex. Models it has, {kind}: {listing}. If the model exists in another region, an "
        "account admin can enable cross-region inference (ALTER ACCOUNT SET "
        "CORTEX_ENABLED_CROSS_REGION = 'ANY_REGION')."
    )
