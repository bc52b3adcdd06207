"""Two users on one real JupyterHub: each reaches Cortex as themselves, and only through their own
server (the hub's proxy, configurable-http-proxy, in front; the Cortex emulator with two PATs)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import run_claude_headless
from .jupyterhub_fixture import HubUser, RunningHub, running_hub

PATS = {"alice": "pat-of-alice-0123456789", "bob": "pat-of-bob-9876543210"}
MODELS = {"alice": "claude-haiku-4-5", "bob": "claude-sonnet-4-6"}
BOB_BUDGET = 5.0


@pytest.fixture
def emulator(cortex_emulator_factory: Any) -> CortexEmulator:
    """One Snowflake account that knows both users' PATs and records which one each request sent."""
    made: CortexEmulator = cortex_emulator_factory(pats=list(PATS.values()))
    return made


@pytest.fixture
def hub(emulator: CortexEmulator, tmp_path: Path) -> Iterator[RunningHub]:
    shared = {
        "SNOWFLAKE_ACCOUNT": "testorg-testaccount",
        "SNOWFLAKE_HOST": emulator.host,
        "SNOWFLAKE_PORT": str(emulator.port),
        "SNOWFLAKE_PROTOCOL": "http",
    }
    identities = {
        name: {"SNOWFLAKE_USER": name.upper(), "SNOWFLAKE_TOKEN": pat} for name, pat in PATS.items()
    }
    # A budget set by the admin for one user, through the spawner's environment.
    identities["bob"]["CORTEX_CLAUDE_CREDIT_BUDGET"] = str(BOB_BUDGET)
    with running_hub(tmp_path / "hub", identities, shared) as running:
        yield running


def get(url: str, token: str) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def open_terminal(hub: RunningHub, user: HubUser) -> dict[str, str]:
    """A terminal in the user's server, as JupyterLab opens one; returns its shell's environment."""
    server = hub.server_process(user.name)
    before = {child.pid for child in server.children()}
    response = httpx.post(
        user.url(hub, "api/terminals"),
        headers={"Authorization": f"token {user.token}"},
        json={},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    shells = [child for child in server.children() if child.pid not in before]
    assert len(shells) == 1, shells
    environment: dict[str, str] = shells[0].environ()
    return environment


def ledger_models(user: HubUser) -> list[str]:
    """The Cortex models in the user's own ledger file (their server's default location)."""
    path = user.home / ".local/share/jupyter/cortex_claude/usage.sqlite"
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT cortex_model FROM usage")]


async def test_two_users_on_jupyterhub_each_reach_cortex_as_themselves_and_only_there(
    hub: RunningHub, emulator: CortexEmulator, tmp_path: Path
) -> None:
    users = hub.users

    # The terminals of each server carry that server's gateway key, and no Snowflake secret.
    terminals = {name: open_terminal(hub, user) for name, user in users.items()}
    keys = {name: env["ANTHROPIC_AUTH_TOKEN"] for name, env in terminals.items()}
    assert keys["alice"] != keys["bob"]
    for name, env in terminals.items():
        assert env["ANTHROPIC_BASE_URL"].endswith(f"/user/{name}/cortex-claude/anthropic")
        assert "SNOWFLAKE_TOKEN" not in env
        assert not any(pat in value for value in env.values() for pat in PATS.values())

    # Each user's Claude Code, through the hub's proxy, reaches Cortex with that user's PAT.
    for name, user in users.items():
        seen = len(emulator.inference_requests())
        emulator.script(Reply.text(f"Hello {name}."))
        project = tmp_path / f"project-{name}"
        project.mkdir()
        run = await run_claude_headless(
            "say hello",
            base_url=user.url(hub, "cortex-claude/anthropic"),
            auth_token=keys[name],
            cwd=project,
            home=tmp_path / f"claude-home-{name}",
            max_turns=2,
            extra_args=("--model", MODELS[name]),
            timeout=120,
        )
        assert run.result["is_error"] is False, run.result
        assert run.result["result"] == f"Hello {name}."
        requests = emulator.inference_requests()[seen:]
        assert requests, "Claude Code's request did not reach Cortex"
        assert {r.headers["Authorization"] for r in requests} == {f"Bearer {PATS[name]}"}
        assert {r.body["model"] for r in requests} == {MODELS[name]}

    # One user's gateway key and hub token open nothing on the other's server (both open their own).
    seen = len(emulator.inference_requests())
    for name, user in users.items():
        for credential in (keys[name], user.token):
            assert get(user.url(hub, "cortex-claude/usage"), credential).status_code == 200
    for owner, other in (("alice", "bob"), ("bob", "alice")):
        for credential in (keys[owner], users[owner].token):
            answer = httpx.post(
                users[other].url(hub, "cortex-claude/anthropic/v1/messages"),
                headers={"Authorization": f"Bearer {credential}"},
                json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": []},
                timeout=30,
            )
            assert answer.status_code in (401, 403), (owner, other, answer.text)
            assert get(users[other].url(hub, "cortex-claude/usage"), credential).status_code in (
                401,
                403,
            )
    assert len(emulator.inference_requests()) == seen

    # Each server's ledger and /usage hold only its own user's requests.
    for name, user in users.items():
        usage = get(user.url(hub, "cortex-claude/usage?group_by=model"), keys[name])
        assert usage.status_code == 200, usage.text
        assert [group["model"] for group in usage.json()["groups"]] == [MODELS[name]]
        assert set(ledger_models(user)) == {MODELS[name]}

    # The admin's budget reached bob's server only, through the spawner's environment.
    health = {
        name: get(user.url(hub, "cortex-claude/health"), keys[name]).json()
        for name, user in users.items()
    }
    assert health["alice"]["budget"] is None
    assert health["bob"]["budget"]["credits"] == BOB_BUDGET
    assert {name: h["user"] for name, h in health.items()} == {"alice": "ALICE", "bob": "BOB"}
