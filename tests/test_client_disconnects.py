"""A client that hangs up, at any stage, closes the upstream request and leaves nothing behind:
no asyncio task, no busy connection in the gateway's pool to Cortex.

Nothing here asserts a duration: the time from the client's hang-up to Cortex seeing the request
closed is recorded for docs/reliability.md (CORTEX_CLAUDE_RELIABILITY_TABLE) but not judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Fault, Reply

from .battery import ENDPOINT_OF, captured_log, record_row
from .conftest import RunningGateway, emulator_config

DIALECTS = ["anthropic", "openai"]
GUARD_SECONDS = 20.0  # how long to wait for something that must happen (a deadlock guard)


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator) -> Any:
    return emulator_config(cortex_emulator, read_timeout=120.0)


# What asyncio logs for a task or future the relay left behind: none of it may appear.
ASYNCIO_NOISE = (
    "Future exception was never retrieved",
    "Task was destroyed",
    "Exception in callback",
)


@pytest.fixture(autouse=True)
def no_asyncio_noise(running_gateway: RunningGateway) -> Iterator[None]:
    with captured_log(running_gateway.serverapp.log) as log:
        yield
        gc.collect()  # what the test left behind is collected, and logged, now
    noise = [
        line
        for line in log.getvalue().splitlines()
        if line.startswith("ERROR") or any(alarm in line for alarm in (*ASYNCIO_NOISE, "Traceback"))
    ]
    assert noise == [], log.getvalue()[-3000:]


def body_for(dialect: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    if dialect == "anthropic":
        body["max_tokens"] = 1000
    return body


def busy_upstream_connections(gateway: RunningGateway) -> int:
    return gateway.service._cortex.busy_connections()


async def settle(condition: Any) -> bool:
    deadline = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


async def warm_up(gateway: RunningGateway, client: httpx.AsyncClient, dialect: str) -> int:
    """One complete request, so pools and caches exist; then the task count to come back to."""
    response = await client.post(
        gateway.url(ENDPOINT_OF[dialect]),
        headers={"Authorization": f"Bearer {gateway.key}"},
        json=body_for(dialect),
    )
    assert response.status_code == 200, response.text
    await settle(lambda: busy_upstream_connections(gateway) == 0)
    await asyncio.sleep(0.05)
    return len(asyncio.all_tasks())


async def assert_nothing_left(gateway: RunningGateway, tasks_before: int) -> None:
    assert await settle(lambda: busy_upstream_connections(gateway) == 0), (
        "a busy upstream connection"
    )
    assert await settle(lambda: len(asyncio.all_tasks()) <= tasks_before), [
        task.get_coro() for task in asyncio.all_tasks()
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_hanging_up_before_cortex_answers_closes_the_upstream_request(
    running_gateway: RunningGateway, dialect: str
) -> None:
    emulator = running_gateway.emulator
    async with httpx.AsyncClient(timeout=60) as warm:
        tasks_before = await warm_up(running_gateway, warm, dialect)
    emulator.fail_next(Fault.stall_before_first_byte(300))  # Cortex is thinking for a long time
    sent = len(emulator.inference_requests())
    client = httpx.AsyncClient(timeout=60)
    request = client.build_request(
        "POST",
        running_gateway.url(ENDPOINT_OF[dialect]),
        headers={"Authorization": f"Bearer {running_gateway.key}"},
        json=body_for(dialect),
    )
    waiting = asyncio.ensure_future(client.send(request, stream=True))
    assert await settle(lambda: len(emulator.inference_requests()) > sent)
    hung_up = time.monotonic()
    waiting.cancel()  # the user pressed Esc while the model was still thinking
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await client.aclose()
    assert await settle(lambda: emulator.requests_dropped >= 1), "Cortex was never told"
    closed_after_ms = (time.monotonic() - hung_up) * 1000
    await assert_nothing_left(running_gateway, tasks_before)
    record_row(
        "client hangs up before the first byte",
        dialect,
        f"upstream closed {closed_after_ms:.0f} ms later; no task or connection left",
        "pass",
    )


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_hanging_up_mid_stream_closes_the_upstream_request(
    running_gateway: RunningGateway, dialect: str
) -> None:
    emulator = running_gateway.emulator
    async with httpx.AsyncClient(timeout=60) as warm:
        tasks_before = await warm_up(running_gateway, warm, dialect)
    emulator.token_delay = 0.02
    emulator.script(Reply.text(" ".join(f"word{i}" for i in range(1000))))
    client = httpx.AsyncClient(timeout=60)
    async with client.stream(
        "POST",
        running_gateway.url(ENDPOINT_OF[dialect]),
        headers={"Authorization": f"Bearer {running_gateway.key}"},
        json=body_for(dialect),
    ) as response:
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > 500:
                break  # Ctrl-C after the first words
    hung_up = time.monotonic()
    await client.aclose()
    assert await settle(lambda: emulator.requests_dropped >= 1), "Cortex was never told"
    closed_after_ms = (time.monotonic() - hung_up) * 1000
    assert emulator.streams_abandoned + emulator.requests_dropped >= 1
    await assert_nothing_left(running_gateway, tasks_before)
    # The usage view still counts the interrupted answer, marked as the client's hang-up.
    ledger = running_gateway.service.ledger
    assert ledger.flush()
    last = ledger.rows()[-1]
    assert (last["status"], last["error"]) == (499, "client disconnected"), last
    if dialect == "anthropic":  # Claude's message_start carries the input tokens
        assert last["input_tokens"] > 0, last
    assert [row["errors"] for row in ledger.aggregate()] == [0]  # a hang-up is not an error
    record_row(
        "client hangs up mid-stream",
        dialect,
        f"upstream closed {closed_after_ms:.0f} ms later; no task or connection left",
        "pass",
    )


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_hanging_up_after_the_stream_leaves_nothing_behind(
    running_gateway: RunningGateway, dialect: str
) -> None:
    emulator = running_gateway.emulator
    async with httpx.AsyncClient(timeout=60) as warm:
        tasks_before = await warm_up(running_gateway, warm, dialect)
    for _ in range(20):
        client = httpx.AsyncClient(timeout=60)
        response = await client.post(
            running_gateway.url(ENDPOINT_OF[dialect]),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
            json=body_for(dialect),
        )
        assert response.status_code == 200
        await client.aclose()
    assert emulator.requests_dropped == 0
    await assert_nothing_left(running_gateway, tasks_before)
    record_row(
        "client hangs up after the stream (×20)", dialect, "nothing to close; no leak", "pass"
    )


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_many_hang_ups_mid_stream_leave_nothing_behind(
    running_gateway: RunningGateway, dialect: str
) -> None:
    emulator = running_gateway.emulator
    async with httpx.AsyncClient(timeout=60) as warm:
        tasks_before = await warm_up(running_gateway, warm, dialect)
    emulator.token_delay = 0.01
    emulator.responder = lambda body: Reply.text(" ".join(f"w{i}" for i in range(500)))

    async def one_impatient_user() -> None:
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream(
                "POST",
                running_gateway.url(ENDPOINT_OF[dialect]),
                headers={"Authorization": f"Bearer {running_gateway.key}"},
                json=body_for(dialect),
            ) as response,
        ):
            async for _chunk in response.aiter_bytes():
                break

    await asyncio.gather(*(one_impatient_user() for _ in range(30)))
    assert await settle(lambda: emulator.requests_dropped >= 30)
    await assert_nothing_left(running_gateway, tasks_before)
    record_row(
        "30 clients hang up mid-stream at once", dialect, "30 upstream closed; no leak", "pass"
    )


async def test_a_client_that_stops_reading_holds_the_stream_back_not_the_gateways_memory(
    running_gateway: RunningGateway,
) -> None:
    """A client that stops reading mid-stream: the gateway stops reading Cortex's answer (the
    upstream request stays open) instead of buffering all of it; once the client reads again,
    the rest arrives whole."""
    emulator = running_gateway.emulator
    async with httpx.AsyncClient(timeout=60) as warm:
        tasks_before = await warm_up(running_gateway, warm, "anthropic")
    words = 800  # of 50 kB each: 40 MB, far more than the sockets between them can hold
    emulator.script(Reply.text(" ".join(["x" * 50_000] * words)))
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream(
            "POST",
            running_gateway.url(ENDPOINT_OF["anthropic"]),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
            json=body_for("anthropic"),
        ) as response,
    ):
        chunks = response.aiter_bytes()
        received = [await chunks.__anext__()]
        await asyncio.sleep(2.0)  # the client is busy: the sockets fill, the gateway must wait
        assert busy_upstream_connections(running_gateway) == 1, "the gateway read it all"
        async for chunk in chunks:
            received.append(chunk)
    stream = b"".join(received)
    assert stream.count(b"x" * 1000) >= words * 50
    assert stream.rstrip().endswith(b'data: {"type":"message_stop"}'), stream[-200:]
    await assert_nothing_left(running_gateway, tasks_before)
