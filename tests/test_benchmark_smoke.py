"""The benchmark still runs end to end (tiny counts, no peers, nothing timed), so it cannot rot."""

from __future__ import annotations

import os
import pstats
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_smoke_run_prints_the_tables_with_ratios_to_the_straight_path() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| straight: Cortex Messages |" in out
    jupyter_row = next(
        line for line in out.splitlines() if "| ours in Jupyter, gateway key |" in line
    )
    assert "×" in jupyter_row  # a ratio to the straight path, not a dash
    assert "## Concurrent streams" in out
    assert "| ours in Jupyter, gateway key | 10 | 10 | 0 |" in out  # every stream completed
    assert "added by the extension" in out
    assert "standalone gateway not measured" not in out, out[-2000:]
    floor_row = next(line for line in out.splitlines() if "| floor: tornado + aiohttp |" in line)
    assert "×" in floor_row  # the bare relay per client was measured beside ours


def test_upstream_client_benchmark_runs_and_compares_with_httpx() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "upstream_client.py"),
            "--requests",
            "5",
            "--rounds",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| httpx | " in result.stdout and "×1.00" in result.stdout
    assert "| aiohttp | " in result.stdout
    assert "| httpx + aiohttp transport | " in result.stdout


def test_server_cpu_benchmark_prints_ours_and_the_floor_and_profiles(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    script = str(REPO / "benchmarks" / "server_cpu.py")
    result = subprocess.run(
        [sys.executable, script, "--requests", "3", "--rounds", "1", "--compare", str(REPO)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for name in ("floor ", "ours  ", "before"):
        for kind in ("json  ", "stream"):
            assert any(line.startswith(f"{name} {kind} cpu/req") for line in lines), lines
    profile = tmp_path / "ours.prof"
    result = subprocess.run(
        [sys.executable, script, "--requests", "3", "--profile", str(profile)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    functions = {name for _, _, name in pstats.Stats(str(profile)).stats}
    assert "serve_inference" in functions  # the gateway's handler ran under the profile
