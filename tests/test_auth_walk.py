"""Nobody spends the team's credits without Jupyter's auth or the gateway key, the key opens nothing
else, a browser page cannot borrow a user's cookie, and no secret shows where others can see it."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from jupyter_server.utils import url_path_join

from jupyter_cortex_claude.standalone import start_gateway_server

from .battery import assert_error_shape
from .conftest import TEST_PAT, RunningGateway

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def extension_routes(serverapp: Any) -> list[tuple[str, type]]:
    """(path, handler class) of every route whose pattern mentions cortex-claude, found by
    walking the server's routers (so a handler added later is walked too)."""
    found: list[tuple[str, type]] = []

    def walk(router: Any) -> None:
        for rule in getattr(router, "rules", []):
            target = rule.target
            if hasattr(target, "rules"):
                walk(target)
                continue
            regex = getattr(rule.matcher, "regex", None)
            if regex is not None and "cortex-claude" in regex.pattern:
                path = rule.matcher.reverse()
                assert path is not None, f"a cortex-claude route with arguments: {regex.pattern}"
                found.append((path, target))

    walk(serverapp.web_app.default_router)
    return found


def test_the_walk_finds_every_endpoint_the_extension_declares(
    running_gateway: RunningGateway,
) -> None:
    from jupyter_cortex_claude.server.handlers import ENDPOINTS

    paths = {path for path, _ in extension_routes(running_gateway.serverapp)}
    base = urlsplit(running_gateway.server_url).path
    for pattern, _endpoint in ENDPOINTS:
        assert url_path_join(base, pattern) in {p.replace("%40", "@") for p in paths} | paths, (
            pattern
        )


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"Authorization": "Bearer not-the-key"},
        {"x-api-key": "not-the-key"},
        {"Authorization": "token not-the-token"},
        {"Cookie": "username-localhost=forged; _xsrf=forged", "X-XSRFToken": "forged"},
    ],
    ids=["nothing", "wrong-bearer", "wrong-x-api-key", "wrong-token", "forged-cookie"],
)
async def test_every_extension_route_refuses_the_unauthenticated_and_calls_no_one(
    running_gateway: RunningGateway, credentials: dict[str, str]
) -> None:
    routes = extension_routes(running_gateway.serverapp)
    assert len(routes) >= 8
    origin = f"http://{urlsplit(running_gateway.server_url).netloc}"
    async with httpx.AsyncClient(timeout=30) as client:
        for path, handler in routes:
            dialect = getattr(handler, "error_dialect", "anthropic")
            for method in METHODS:
                response = await client.request(
                    method,
                    origin + path,
                    headers={**credentials, "content-type": "application/json"},
                    content=b'{"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []}',
                )
                assert response.status_code in (401, 403), (path, method, response.status_code)
                assert_error_shape(dialect, response.json())
                assert "access-control-allow-origin" not in response.headers
    assert running_gateway.emulator.requests == []


JUPYTER_APIS = [
    "api/contents",
    "api/kernels",
    "api/terminals",
    "api/sessions",
    "api/me",
    "api/kernelspecs",
    "api/config/notebook",
    "api/nbconvert",
    "files/x.txt",
]


@pytest.mark.parametrize("how", ["bearer", "token", "x-api-key", "query"])
async def test_the_gateway_key_opens_none_of_jupyters_other_apis(
    running_gateway: RunningGateway, how: str
) -> None:
    key = running_gateway.key
    headers = {
        "bearer": {"Authorization": f"Bearer {key}"},
        "token": {"Authorization": f"token {key}"},
        "x-api-key": {"x-api-key": key},
        "query": {},
    }[how]
    async with httpx.AsyncClient(timeout=30) as client:
        for path in JUPYTER_APIS:
            url = running_gateway.url(path) + (f"?token={key}" if how == "query" else "")
            for method in ("GET", "POST"):
                response = await client.request(
                    method, url, headers=headers, json={"type": "notebook"}
                )
                if response.status_code == 302:  # a page: sent to the login form
                    assert "login" in response.headers["location"], response.headers
                    continue
                assert response.status_code in (401, 403, 404, 405), (
                    path,
                    method,
                    response.status_code,
                )
                if response.status_code == 404:  # not found must not mean "found, but empty"
                    assert "content" not in response.text.lower() or path == "files/x.txt"
        # The same request with the Jupyter token does open them: the refusals above mean something.
        opened = await client.get(
            running_gateway.url("api/contents"),
            headers={"Authorization": f"token {running_gateway.jupyter_token}"},
        )
        assert opened.status_code == 200


async def log_in(browser: httpx.AsyncClient, gateway: RunningGateway) -> None:
    """The browser logs in once with the token: it then holds Jupyter's login and _xsrf cookies."""
    await browser.get(gateway.url("lab") + f"?token={gateway.jupyter_token}")
    await browser.get(gateway.url("api/status"))
    assert any(name.startswith("username-") for name in browser.cookies), dict(browser.cookies)
    assert "_xsrf" in browser.cookies, dict(browser.cookies)


def small(stream: bool = False) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }


async def test_a_cross_site_page_cannot_spend_a_logged_in_users_credits(
    running_gateway: RunningGateway,
) -> None:
    url = running_gateway.url("cortex-claude/anthropic/v1/messages")
    origin = f"http://{urlsplit(running_gateway.server_url).netloc}"
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as browser:
        await log_in(browser, running_gateway)
        # A form or fetch() from another site carries the cookie but cannot read the _xsrf one.
        no_xsrf = await browser.post(url, json=small())
        assert no_xsrf.status_code == 403, no_xsrf.text
        assert_error_shape("anthropic", no_xsrf.json())
        foreign = await browser.post(
            url,
            json=small(),
            headers={"Origin": "https://evil.example", "X-XSRFToken": browser.cookies["_xsrf"]},
        )
        assert foreign.status_code in (403, 404), foreign.text
        assert running_gateway.emulator.inference_requests() == []
        # JupyterLab itself (same origin, with the header) is served: the refusals mean something.
        own = await browser.post(
            url, json=small(), headers={"Origin": origin, "X-XSRFToken": browser.cookies["_xsrf"]}
        )
        assert own.status_code == 200, own.text
    assert len(running_gateway.emulator.inference_requests()) == 1


async def test_a_cors_preflight_from_another_site_is_not_allowed(
    running_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for path in (
            "cortex-claude/anthropic/v1/messages",
            "cortex-claude/openai/v1/chat/completions",
        ):
            response = await client.options(
                running_gateway.url(path),
                headers={
                    "Origin": "https://evil.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type,x-api-key",
                },
            )
            assert "access-control-allow-origin" not in response.headers, response.headers
            assert response.status_code >= 400


# -- secrets where others can see them -------------------------------------------------------


def secrets_of(gateway: RunningGateway) -> list[str]:
    return [gateway.key, gateway.jupyter_token, TEST_PAT, *gateway.service.secrets()]


async def test_no_secret_in_health_usage_or_any_error_body(running_gateway: RunningGateway) -> None:
    key = running_gateway.key
    texts = []
    async with httpx.AsyncClient(timeout=30) as client:
        for path in (
            "cortex-claude/health",
            "cortex-claude/usage",
            "cortex-claude/anthropic/v1/models",
        ):
            response = await client.get(running_gateway.url(path), headers={"x-api-key": key})
            texts.append(response.text)
        for headers in ({}, {"x-api-key": key[:-1]}, {"Authorization": f"Bearer {key}x"}):
            response = await client.post(
                running_gateway.url("cortex-claude/anthropic/v1/messages"),
                headers=headers,
                json=small(),
            )
            texts.append(response.text)
        running_gateway.emulator.revoke(TEST_PAT)
        refused = await client.post(
            running_gateway.url("cortex-claude/openai/v1/chat/completions"),
            headers={"x-api-key": key},
            json=small(),
        )
        assert refused.status_code == 401
        texts.append(refused.text)
    everything = "\n".join(texts)
    for secret in secrets_of(running_gateway):
        assert secret not in everything, f"a secret leaked: {secret[:4]}..."
    assert key[:-1] not in everything  # not even the almost-right key the client sent


def test_the_gateway_key_file_is_readable_by_its_owner_only(
    running_gateway: RunningGateway,
) -> None:
    path = running_gateway.service.key.path
    assert path is not None
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["key"] == running_gateway.key


def command_lines(pids: list[int]) -> dict[int, str]:
    lines = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                lines[pid] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return lines


async def test_no_secret_in_the_process_titles_of_the_server_terminals_or_claude(
    running_gateway: RunningGateway,
) -> None:
    token = {"Authorization": f"token {running_gateway.jupyter_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        plain = await client.post(running_gateway.url("api/terminals"), headers=token)
        assert plain.status_code == 200, plain.text
        claude = await client.post(
            running_gateway.url("cortex-claude/terminals"), headers=token, json={"prompt": "hi"}
        )
        assert claude.status_code == 200, claude.text
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # sample while the shells start what they were told to
        seen.update(
            command_lines(
                [os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))]
            )
        )
        await asyncio.sleep(0.1)
    assert len(seen) >= 3, seen  # this process and at least the two terminals' shells
    for pid, line in seen.items():
        for secret in secrets_of(running_gateway):
            assert secret not in line, f"process {pid} shows a secret: {line[:80]}"


# -- the standalone gateway ------------------------------------------------------------------


def test_the_standalone_gateway_binds_loopback_unless_told_otherwise() -> None:
    from jupyter_cortex_claude.cli import build_parser

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    assert inspect.signature(start_gateway_server).parameters["host"].default == "127.0.0.1"


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
async def test_the_standalone_gateway_warns_when_it_listens_beyond_this_machine(
    host: str, warned: bool, tmp_path: Any
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env["SNOWFLAKE_HOME"] = str(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-u",  # unbuffered: the key line arrives while the server runs
        "-m",
        "jupyter_cortex_claude.cli",
        "serve",
        "--demo",
        "--host",
        host,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        while True:  # until it says it serves (prints its key)
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, "cortex-claude serve exited early"
            if line.strip().startswith(b"key:"):
                break
        listening = {
            conn.laddr.ip
            for conn in psutil.Process(process.pid).net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN
        }
        assert host in listening, listening
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert ("reachable from other machines" in stderr.decode()) is warned, stderr.decode()[-500:]
