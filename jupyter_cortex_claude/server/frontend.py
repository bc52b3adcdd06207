"""Is the JupyterLab extension installed? An install without Node.js has none (hatch_build.py).

Everything on the server side works without it (terminals, magics, widget, the endpoints); what is
missing is the launcher tile, the status bar item, "Open Claude Code" and the renderers that open
a terminal or insert a cell. The server says so once at start and in ``GET cortex-claude/health``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

# labextension/package.json "name": the folder JupyterLab looks for.
LABEXTENSION_NAME = "jupyter-cortex-claude"

MISSING_HINT = (
    "The JupyterLab extension of jupyter-cortex-claude (launcher tile, status bar, Open Claude "
    "Code, the buttons that open a terminal or insert a cell) is not installed: this environment "
    "was installed without Node.js >= 20 to build it. Everything else works: type `claude` in a "
    "terminal, use %cortex_claude and chat() in notebooks. To add it: install Node.js >= 20, run "
    '`pip install --no-deps --force-reinstall ".[lab]"` in the jupyter-cortex-claude clone, and '
    "restart Jupyter."
)


def labextension_installed() -> bool:
    """Whether JupyterLab would find the extension (it looks in ``jupyter_path('labextensions')``)."""
    from jupyter_core.paths import jupyter_path

    return any(
        (Path(folder) / LABEXTENSION_NAME / "package.json").is_file()
        for folder in jupyter_path("labextensions")
    )


def frontend_status(log: logging.Logger | Any) -> dict[str, Any]:
    """The health fields about the frontend extension; logs a warning when JupyterLab lacks it."""
    installed = labextension_installed()
    if not installed and importlib.util.find_spec("jupyterlab") is not None:
        log.warning("cortex-claude: %s", MISSING_HINT)
    return {
        "labextension_installed": installed,
        "labextension_hint": None if installed else MISSING_HINT,
    }
