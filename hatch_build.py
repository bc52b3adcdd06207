"""Build hook: the JupyterLab extension is built when Node.js is there, and left out when it is not.

`pip install ".[lab]"` from a clone is the README's install line, and there is no published wheel
whose prebuilt extension it could use. Without Node (>= 20) the build used to fail with a
traceback; now the wheel is built without the frontend extension (launcher tile, status bar,
"Open Claude Code", the output renderer) and everything else works: the server extension,
terminals, magics, chat widget and `cortex-claude`. The server says so at start and in
`GET cortex-claude/health` (jupyter_cortex_claude/server/frontend.py), with the way to add it.

Why not commit the built extension instead: it is a minified bundle whose file names change with
every build; kept in git it would drift from labextension/src and conflict on every merge. A
wheel published to PyPI is where a prebuilt extension belongs.

With Node present, a build that fails is an error (as before); an editable install builds in
development mode and only warns when that fails (`pip install -e .` without Node still works).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILT = "jupyter_cortex_claude/labextension"
LABEXTENSIONS = "share/jupyter/labextensions/jupyter-cortex-claude"
# The JupyterLab 4 builder (rspack) needs Node >= 20 (labextension/README.md).
MIN_NODE = (20, 0)


def node_version() -> tuple[int, ...] | None:
    """The version of the `node` on PATH, or None when there is none (or it does not run)."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        output = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v?(\d+)\.(\d+)", output.strip())
    return tuple(int(part) for part in match.groups()) if match else None


class LabExtensionBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        built = root / BUILT
        if version == "editable":
            self._build_editable()
        elif not (built / "static" / "style.js").exists():
            self._build_standard()
        if self.target_name == "wheel" and (built / "package.json").exists():
            build_data["shared_data"][str(built)] = LABEXTENSIONS
            build_data["shared_data"][str(root / "labextension" / "install.json")] = (
                f"{LABEXTENSIONS}/install.json"
            )

    def _build_standard(self) -> None:
        found = node_version()
        if found is None or found < MIN_NODE:
            have = "no Node.js on PATH" if found is None else f"Node {'.'.join(map(str, found))}"
            self._say(
                f"jupyter-cortex-claude: {have} (the JupyterLab extension needs Node >= "
                f"{MIN_NODE[0]} to build): installing without the JupyterLab extension. The "
                "server extension, terminals, magics, widget and cortex-claude work; the launcher "
                "tile and status bar need a reinstall with Node >= 20 on PATH."
            )
            return
        from hatch_jupyter_builder import npm_builder

        npm_builder(
            self.target_name, "standard", path="labextension", build_cmd="build:prod", npm=["jlpm"]
        )

    def _build_editable(self) -> None:
        from hatch_jupyter_builder import npm_builder

        try:
            # Rebuilds only when labextension/src is newer than the build (source_dir/build_dir).
            npm_builder(
                self.target_name,
                "editable",
                path="labextension",
                build_cmd="build",
                npm=["jlpm"],
                source_dir="labextension/src",
                build_dir=BUILT,
            )
        except Exception as error:
            self._say(f"jupyter-cortex-claude: the JupyterLab extension was not built ({error})")

    def _say(self, message: str) -> None:
        # pip shows a build's output with -v only; the server repeats it at start (frontend.py).
        self.app.display_warning(message)
