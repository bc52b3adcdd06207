"""A real JupyterHub on 127.0.0.1 for tests: configurable-http-proxy, the dummy authenticator, and
SimpleLocalProcessSpawner (one single-user server per user, each with its own home directory),
all started and stopped by the test, with the hub's database and cookie secret in a temp dir.

Each user's single-user server gets its own Snowflake identity from the spawner's environment
(``pre_spawn_hook``), as docs/jupyterhub.md tells an admin to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

CHP_VERSION = "5.3.0"
REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 120.0


def chp_executable() -> str:
    """The pinned configurable-http-proxy that scripts/test.sh installs; missing fails, never skips."""
    candidates = [
        os.environ.get("CORTEX_CLAUDE_TEST_CHP"),
        str(
            REPO
            / f".cache/configurable-http-proxy-{CHP_VERSION}/node_modules/.bin/configurable-http-proxy"
        ),
        shutil.which("configurable-http-proxy"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(
        "configurable-http-proxy is needed: run `bash scripts/test.sh`, which installs "
        f"configurable-http-proxy@{CHP_VERSION} into .cache/, or set CORTEX_CLAUDE_TEST_CHP."
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CONFIG_TEMPLATE = """
# Written by tests/jupyterhub_fixture.py: a hub on 127.0.0.1 only.
import json

c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{work}/jupyterhub.pid"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{work}/proxy.pid"
# Answer "spawn pending" at once, so both users' servers start side by side.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{work}/home/{{username}}"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
# --allow-root: CI containers run as root; harmless otherwise.
c.Spawner.args = ["--allow-root"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = json.loads({shared_environment!r})

IDENTITIES = json.loads({identities!r})


def snowflake_identity(spawner):
    # Each user's server gets only that user's credential (in production: a Kubernetes secret,
    # or the OAuth token from the hub's login; see docs/jupyterhub.md).
    spawner.environment = {{**spawner.environment, **IDENTITIES[spawner.user.name]}}


c.Spawner.pre_spawn_hook = snowflake_identity
c.JupyterHub.services = [{{"name": "cortex-test", "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "cortex-test",
        "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"],
        "services": ["cortex-test"],
    }}
]
"""


@dataclass
class HubUser:
    name: str
    token: str  # a hub API token of this user (access to their own server)
    home: Path

    def url(self, hub: RunningHub, *parts: str) -> str:
        return "/".join([hub.public_url, "user", self.name, *parts])


@dataclass
class RunningHub:
    public_url: str  # the proxy: what a browser or a client outside the hub talks to
    work: Path
    process: subprocess.Popen[bytes]
    service_token: str
    users: dict[str, HubUser] = field(default_factory=dict)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.public_url}/hub/api/{path}",
            headers={"Authorization": f"token {self.service_token}"},
            timeout=30,
            **kwargs,
        )

    def log(self) -> str:
        return (self.work / "hub.log").read_text(errors="replace")[-6000:]

    def server_process(self, user: str) -> psutil.Process:
        """The single-user server the hub spawned for ``user``."""
        for process in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "jupyterhub.singleuser" in " ".join(process.cmdline()) and (
                    process.environ().get("JUPYTERHUB_USER") == user
                ):
                    return process
        raise AssertionError(f"no single-user server process for {user}")


def _wait(condition: Any, what: str, hub: RunningHub | None = None) -> Any:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            value = condition()
            if value:
                return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{hub.log()}" if hub else ""))


@contextlib.contextmanager
def running_hub(
    work: Path,
    identities: Mapping[str, Mapping[str, str]],
    shared_environment: Mapping[str, str],
) -> Iterator[RunningHub]:
    """Start the hub, create the users and spawn their servers; stop everything afterwards."""
    work.mkdir(parents=True, exist_ok=True)
    service_token = secrets.token_hex(32)
    config = work / "jupyterhub_config.py"
    config.write_text(
        CONFIG_TEMPLATE.format(
            public_port=(public_port := free_port()),
            hub_port=free_port(),
            proxy_api_port=free_port(),
            work=work,
            chp=chp_executable(),
            python=sys.executable,
            shared_environment=json.dumps(dict(shared_environment)),
            identities=json.dumps({name: dict(env) for name, env in identities.items()}),
            service_token=service_token,
        )
    )
    with (work / "hub.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    hub = RunningHub(f"http://127.0.0.1:{public_port}", work, process, service_token)
    try:
        _wait(lambda: hub.api("GET", "").status_code == 200, "the hub to answer", hub)
        for name in identities:
            assert hub.api("POST", f"users/{name}").status_code in (201, 409), hub.log()
            response = hub.api("POST", f"users/{name}/server")
            assert response.status_code in (201, 202), response.text
        for name in identities:

            def ready(name: str = name) -> bool:
                servers = hub.api("GET", f"users/{name}").json().get("servers", {})
                return bool(servers.get("", {}).get("ready"))

            _wait(ready, f"{name}'s single-user server", hub)
            token = hub.api(
                "POST",
                f"users/{name}/tokens",
                json={"note": "cortex-claude test", "scopes": [f"access:servers!user={name}"]},
            ).json()["token"]
            hub.users[name] = HubUser(name, token, work / "home" / name)
        yield hub
    finally:
        descendants = _children(process.pid)  # servers, their terminals, the proxy
        process.terminate()  # the hub stops the single-user servers and the proxy it started
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for child in descendants:  # only what this hub started, by pid
            with contextlib.suppress(psutil.Error):
                child.kill()


def _children(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []
