"""What the extension adds to Jupyter server start-up, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .measure import cpu_seconds, median
from .servers import JUPYTER_TOKEN, free_port, jupyter_command, jupyter_env


def time_to_status(workdir: Path, emulator_port: int, *, extension: bool) -> tuple[float, float]:
    """Wall seconds from launching ``jupyter server`` until ``/api/status`` answers 200, and the
    CPU seconds the server used by then (steadier than wall time on a busy machine)."""
    port = free_port()
    root = workdir / "root"
    root.mkdir(exist_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        jupyter_command(port, root, emulator_port, extension=extension),
        env=jupyter_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/status"
    headers = {"Authorization": f"token {JUPYTER_TOKEN}"}
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter server exited with {process.returncode}")
            try:
                if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                    return time.perf_counter() - started, cpu_seconds(process.pid)
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 90:
                raise RuntimeError("jupyter server did not start within 90 s")
            time.sleep(0.01)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def startup_cost(workdir: Path, emulator_port: int, repeats: int) -> dict[str, Any]:
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    time_to_status(workdir, emulator_port, extension=True)  # warm the page cache once
    for _ in range(repeats):  # alternate, so drift in the machine's load hits both alike
        for extension in (False, True):
            runs[extension].append(time_to_status(workdir, emulator_port, extension=extension))

    def wall(extension: bool) -> float:
        return median([run[0] for run in runs[extension]]) * 1000

    def cpu(extension: bool) -> float:
        return median([run[1] for run in runs[extension]]) * 1000

    return {
        "with_ms": wall(True),
        "without_ms": wall(False),
        "added_ms": wall(True) - wall(False),
        "with_cpu_ms": cpu(True),
        "without_cpu_ms": cpu(False),
        "added_cpu_ms": cpu(True) - cpu(False),
        "repeats": repeats,
    }


def _import_seconds() -> float:
    # In one process, after jupyter_server: only what the extension itself adds is timed.
    code = (
        "import time, jupyter_server.serverapp; t = time.perf_counter(); "
        "import jupyter_cortex_claude.server.app; print(time.perf_counter() - t)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip())


def import_cost(repeats: int) -> dict[str, float]:
    """Import time of the extension on top of jupyter_server (what start-up pays for it)."""
    _import_seconds()  # warm the page cache
    return {"added_import_ms": median([_import_seconds() for _ in range(repeats)]) * 1000}
