"""How a kernel picks a gateway from the key files in Jupyter's runtime directory.

A key file outlives a killed server, and its process id may by then belong to any process: the
file is used only once its gateway answered with its key. The gateways are real ones
(``standalone.start_gateway_server``, what ``cortex-claude serve`` and the in-kernel gateway run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.kernel import discovery
from jupyter_cortex_claude.kernel.discovery import GatewayNotFound, find_gateway
from jupyter_cortex_claude.service import GatewayService
from jupyter_cortex_claude.standalone import RunningGatewayServer, start_gateway_server
from jupyter_cortex_claude.testing import CortexEmulator

from .conftest import emulator_config


@contextlib.asynccontextmanager
async def gateway(emulator: CortexEmulator) -> AsyncIterator[RunningGatewayServer]:
    service = GatewayService(CortexClaude(**emulator_config(emulator, usage_db_path=":none:")))
    running = await start_gateway_server(service)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def live_pids() -> Iterator[list[int]]:
    """Process ids that are alive and are no gateway: what a reused id looks like."""
    processes = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(2)
    ]
    try:
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_key_file(directory: Path, pid: int, url: str, key: str, mtime: float) -> Path:
    path = directory / f"cortex-claude-gateway-{pid}.json"
    path.write_text(json.dumps({"url": url, "key": key}))
    os.utime(path, (mtime, mtime))
    return path


async def discover(environ: dict[str, str], directory: Path) -> discovery.GatewayEndpoint:
    # find_gateway is synchronous (a kernel calls it from a cell): off this loop, which serves
    # the gateway it checks.
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: find_gateway(start_in_kernel=False, environ=environ, directory=directory)
    )


async def test_a_key_file_of_a_dead_server_is_not_taken_for_a_live_one(
    cortex_emulator: CortexEmulator, tmp_path: Path, live_pids: list[int]
) -> None:
    discovery._verified.clear()
    nobody = f"http://127.0.0.1:{free_port()}/cortex-claude/anthropic"
    # The parent server's own file, left behind when it was killed; its id is now another process.
    write_key_file(tmp_path, live_pids[0], nobody, "cortex-claude-stale-key", mtime=2_000_000_000)
    with pytest.raises(GatewayNotFound):
        await discover({"JPY_PARENT_PID": str(live_pids[0])}, tmp_path)

    async with gateway(cortex_emulator) as running:
        # A newer stale file names a live gateway, but with a key that gateway never had.
        write_key_file(
            tmp_path, live_pids[1], running.anthropic_url, "cortex-claude-other", 2_000_000_100
        )
        with pytest.raises(GatewayNotFound):
            await discover({}, tmp_path)

        # The file whose gateway answers with its key is found, older than the stale ones.
        own = write_key_file(tmp_path, os.getpid(), running.anthropic_url, running.key, 1e9)
        endpoint = await discover({"JPY_PARENT_PID": str(live_pids[0])}, tmp_path)
        assert endpoint.key == running.key
        assert endpoint.anthropic_url == running.anthropic_url
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, discovery.find_key_file, {}, tmp_path) == own
    assert cortex_emulator.inference_requests() == []  # the check costs no Cortex call
