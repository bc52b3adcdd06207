"""The README's commands, run as written, on a machine without Node.js (issue 15).

A copy of this source tree, a fresh venv made by the README's own install line with `node`/`npm`
hidden from PATH, then the commands the README and docs list. Slow the first time (pip downloads
JupyterLab and friends, ~2 min here); pip's cache makes later runs take well under a minute.
Select with `-m readme`, skip with `-m "not readme"`; CI runs it (scripts/test.sh runs everything).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.readme, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
NODE_TOOLS = {"node", "nodejs", "npm", "npx", "corepack", "yarn", "yarnpkg", "pnpm"}
# Left out of the copy: what a fresh clone does not have.
NOT_IN_A_CLONE = {".git", ".venv", ".cache", "node_modules", "__pycache__", ".pytest_cache"}


def readme_block_after(heading: str) -> str:
    """The first ```bash block after a README heading."""
    section = README[README.index(heading) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"no bash block after {heading!r}"
    return match.group(1).strip()


def path_without_node(shadow_root: Path) -> str:
    """PATH with every folder that has node/npm replaced by a folder of links to the rest."""
    folders = []
    for number, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        folder = Path(entry)
        if not folder.is_dir():
            continue
        if not any((folder / tool).exists() for tool in NODE_TOOLS):
            folders.append(entry)
            continue
        shadow = shadow_root / f"path{number}"
        shadow.mkdir(parents=True)
        for item in folder.iterdir():
            if item.name not in NODE_TOOLS:
                (shadow / item.name).symlink_to(item)
        folders.append(str(shadow))
    return os.pathsep.join(folders)


def copy_source_tree(target: Path) -> None:
    """The files a clone would have (git's view when there is one; the worktree's edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            source = REPO / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
    else:  # an exported tree without git
        shutil.copytree(
            REPO,
            target,
            dirs_exist_ok=True,
            ignore=lambda _folder, names: [
                name
                for name in names
                if name in NOT_IN_A_CLONE
                or (name == "labextension" and _folder.endswith("jupyter_cortex_claude"))
            ],
        )
    assert not (target / "jupyter_cortex_claude" / "labextension").exists()  # never prebuilt


@dataclass
class FreshInstall:
    source: Path
    env: dict[str, str]  # PATH without node, the venv active, Jupyter's folders under tmp
    install_seconds: float

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """A command in the venv, as a user types it after `. .venv/bin/activate`."""
        return subprocess.run(
            ["bash", "-c", f". .venv/bin/activate && {command}"],
            cwd=self.source,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshInstall]:
    root = tmp_path_factory.mktemp("readme")
    source = root / "jupyter-cortex-claude"
    source.mkdir()
    copy_source_tree(source)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
        and not name.startswith(("JUPYTER", "SNOWFLAKE_", "IPYTHON"))
    }
    env["PATH"] = path_without_node(root / "no-node")
    for name, folder in {
        "JUPYTER_CONFIG_DIR": "jupyter-config",
        "JUPYTER_DATA_DIR": "jupyter-data",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
        "IPYTHONDIR": "ipython",
        "SNOWFLAKE_HOME": "no-snowflake-home",  # the offline demo, not a developer's account
    }.items():
        env[name] = str(root / folder)
    assert shutil.which("node", path=env["PATH"]) is None
    assert shutil.which("npm", path=env["PATH"]) is None

    # The README's line as written, less `jupyter lab` (which would run until stopped).
    line = readme_block_after("## Set up")
    assert line.endswith(" && jupyter lab"), line
    install = line.removesuffix(" && jupyter lab")
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", install],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-5000:])
    yield FreshInstall(source, env, seconds)


def test_the_readme_install_line_succeeds_without_node_and_gives_every_feature(
    fresh_install: FreshInstall,
) -> None:
    print(f"README install line took {fresh_install.install_seconds:.0f} s")
    listed = fresh_install.run("jupyter server extension list")
    assert listed.returncode == 0, listed.stderr
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # colours
    assert re.search(r"jupyter_cortex_claude\s+enabled", output), output
    assert re.search(r"jupyter_cortex_claude [\d.]+ OK", output), output
    assert re.search(r"jupyter_server_terminals\s+enabled", output), output

    # The features the README names: chat widget, every Snowflake login, the usage plot.
    probe = fresh_install.run(
        "python -c 'import ipywidgets, snowflake.connector, matplotlib; "
        "from importlib.metadata import distribution, entry_points; "
        'print(sorted(e.value for e in entry_points(group="pytest11")))\''
    )
    assert probe.returncode == 0, probe.stderr
    assert "jupyter_cortex_claude" not in probe.stdout  # the emulator plugin is opt-in
    # Built without Node: no JupyterLab extension, by design (hatch_build.py).
    labextensions = fresh_install.source / ".venv" / "share" / "jupyter" / "labextensions"
    assert not (labextensions / "jupyter-cortex-claude").exists()
    assert (fresh_install.source / ".venv" / "bin" / "cortex-claude").exists()


def test_the_settings_command_the_readme_gives_lists_the_settings(
    fresh_install: FreshInstall,
) -> None:
    match = re.search(r"`(cortex-claude settings \| grep -A3 read_timeout)`", README)
    assert match, "the README names the settings command"
    listed = fresh_install.run(match.group(1))
    assert listed.returncode == 0, listed.stderr
    assert "--CortexClaude.read_timeout=<Float>" in listed.stdout
    assert "Default: 300.0" in listed.stdout
    everything = fresh_install.run("cortex-claude settings")
    for name in ("account", "connection_name", "model_map", "usage_db_path", "beta_allowlist"):
        assert f"--CortexClaude.{name}=" in everything.stdout


def test_load_ext_as_documented_loads_quietly_although_the_startup_file_already_did(
    fresh_install: FreshInstall,
) -> None:
    assert "%load_ext jupyter_cortex_claude" in (REPO / "docs" / "jupyterlab.md").read_text()
    loaded = fresh_install.run(
        "ipython --no-banner -c '%load_ext jupyter_cortex_claude' && "
        "ipython --no-banner -c '%cortex_claude help'"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "already loaded" not in loaded.stdout + loaded.stderr
    assert loaded.stdout.startswith("%cortex_claude "), loaded.stdout  # %load_ext printed nothing
    assert "%cortex_claude status" in loaded.stdout


def test_the_server_without_its_jupyterlab_extension_says_so_and_how_to_add_it(
    fresh_install: FreshInstall,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = "readme-test-token"
    as_root = " --allow-root" if os.geteuid() == 0 else ""  # CI containers run as root
    log_path = fresh_install.source / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                "bash",
                "-c",
                ". .venv/bin/activate && exec jupyter server --no-browser "
                f"--port={port} --ServerApp.token={token} --ServerApp.ip=127.0.0.1{as_root}",
            ],
            cwd=fresh_install.source,
            env=fresh_install.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        health = None
        deadline = time.monotonic() + 120
        while health is None and time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/cortex-claude/health",
                    headers={"Authorization": f"token {token}"},
                    timeout=5,
                )
                health = answer.json() if answer.status_code == 200 else None
            except httpx.HTTPError:
                pass
            if health is None:
                time.sleep(0.5)
        assert health is not None, log_path.read_text()[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=60)
    server_log = log_path.read_text()
    assert health["demo"] is True
    assert health["labextension_installed"] is False
    assert "Node.js >= 20" in health["labextension_hint"]
    assert "--force-reinstall" in health["labextension_hint"]
    assert "JupyterLab extension of jupyter-cortex-claude" in server_log
    assert "Traceback" not in server_log


def test_the_test_command_refuses_a_python_that_is_not_a_venv(tmp_path: Path) -> None:
    system_python = Path(sys.base_prefix) / "bin" / "python3"
    assert system_python.exists()
    refused = subprocess.run(
        ["bash", str(REPO / "scripts" / "test.sh")],
        env={**os.environ, "PYTHON": str(system_python)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "is not a virtual environment; nothing was installed" in refused.stderr
    assert "python3 -m venv .venv" in refused.stderr


def test_the_test_commands_caches_are_git_ignored() -> None:
    if not (REPO / ".git").exists():  # an unpacked sdist: read the rules git would apply
        rules = (REPO / ".gitignore").read_text().split()
        assert {".cache/", ".venv/", ".ci-artifacts/"} <= set(rules), rules
        return
    for path in (".cache/claude-code-x/node_modules", ".venv/bin/python", ".ci-artifacts/x.png"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
