"""Gateway requests in Jupyter's access log and its request metric, whatever the log level.

The gateway skips building Jupyter's access line for a success when no handler of the server's
logger would show it (server/access_log.py): the metric must still count every request, a debug
handler must still see the line, and a failure must still be logged at the server's level.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
from prometheus_client import REGISTRY

from jupyter_cortex_claude.server.access_log import would_show

from .battery import captured_log
from .conftest import RunningGateway

MESSAGES = "cortex-claude/anthropic/v1/messages"
BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def requests_counted(status: int) -> float:
    """How many POSTs to the messages endpoint Jupyter's metric holds with this status."""
    labels = {
        "method": "POST",
        "handler": "jupyter_cortex_claude.server.handlers.AnthropicMessagesHandler",
        "status_code": str(status),
    }
    return REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0.0


async def post(gateway: RunningGateway, key: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            gateway.url(MESSAGES), headers={"x-api-key": key}, json={**BODY, "stream": True}
        )


@contextlib.contextmanager
def at_info_level(logger: logging.Logger) -> Iterator[logging.Logger]:
    """The server's logger as ``jupyter server`` leaves it by default: the logger at DEBUG, its
    handlers at INFO, not propagating. Entered in the test itself: pytest adds its capturing
    handlers (at NOTSET) to the logger after the fixtures ran."""
    levels = [(handler, handler.level) for handler in logger.handlers]
    level, propagate = logger.level, logger.propagate
    for handler, _ in levels:
        handler.setLevel(logging.INFO)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger
    finally:
        for handler, handler_level in levels:
            handler.setLevel(handler_level)
        logger.setLevel(level)
        logger.propagate = propagate


async def test_a_success_is_counted_when_its_access_line_would_be_dropped(
    running_gateway: RunningGateway,
) -> None:
    before = requests_counted(200)
    with at_info_level(running_gateway.serverapp.log) as server_log:
        assert not would_show(server_log, logging.DEBUG)
        response = await post(running_gateway, running_gateway.key)
    assert response.status_code == 200, response.text
    assert requests_counted(200) == before + 1


async def test_a_debug_handler_still_sees_the_access_line_of_a_success(
    running_gateway: RunningGateway,
) -> None:
    before = requests_counted(200)
    with (
        at_info_level(running_gateway.serverapp.log) as server_log,
        captured_log(server_log, level=logging.DEBUG) as log,
    ):
        response = await post(running_gateway, running_gateway.key)
    assert response.status_code == 200, response.text
    assert re.search(f"200 POST /.*{MESSAGES} \\(cortex-claude-gateway-key@", log.getvalue())
    assert requests_counted(200) == before + 1


async def test_a_refused_request_is_logged_at_the_servers_level(
    running_gateway: RunningGateway,
) -> None:
    before = requests_counted(401)
    with (
        at_info_level(running_gateway.serverapp.log) as server_log,
        captured_log(server_log, level=logging.INFO) as log,
    ):
        response = await post(running_gateway, "not-the-key")
    assert response.status_code == 401
    assert re.search(f"401 POST /.*{MESSAGES} ", log.getvalue())
    assert requests_counted(401) == before + 1


# -- would_show: the check Logger.callHandlers makes ------------------------------------------------


def logger_with(*handler_levels: int, level: int = logging.DEBUG, propagate: bool = False) -> Any:
    logger = logging.Logger("test-access-log", level)
    logger.propagate = propagate
    for handler_level in handler_levels:
        handler = logging.NullHandler()
        handler.setLevel(handler_level)
        logger.addHandler(handler)
    return logger


def test_would_show_follows_the_handlers_levels() -> None:
    assert not would_show(logger_with(logging.INFO, logging.WARNING), logging.DEBUG)
    assert would_show(logger_with(logging.INFO, logging.DEBUG), logging.DEBUG)
    assert would_show(logger_with(logging.INFO, logging.NOTSET), logging.DEBUG)
    assert would_show(logger_with(logging.INFO), logging.INFO)
    assert not would_show(logger_with(logging.DEBUG, level=logging.INFO), logging.DEBUG)


def test_would_show_follows_propagation_and_the_last_resort() -> None:
    parent = logger_with(logging.DEBUG)
    child = logger_with(logging.INFO, propagate=True)
    child.parent = parent
    assert would_show(child, logging.DEBUG)
    lone = logger_with()
    assert not would_show(lone, logging.DEBUG)  # logging.lastResort shows WARNING and above
    assert would_show(lone, logging.WARNING)
