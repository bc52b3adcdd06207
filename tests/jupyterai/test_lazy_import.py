"""jupyter-ai installed beside this package is imported only by Jupyter AI itself."""

from __future__ import annotations

import subprocess
import sys

# Every module of the package but the persona (which Jupyter AI's persona manager loads through
# the entry point), as Jupyter's start and a kernel's `import jupyter_cortex_claude` reach them.
PROBE = """
import importlib, pkgutil, sys
import jupyter_cortex_claude
jupyter_cortex_claude._jupyter_server_extension_points()
for module in pkgutil.walk_packages(jupyter_cortex_claude.__path__, "jupyter_cortex_claude."):
    if module.name != "jupyter_cortex_claude.server.cortex_persona":
        importlib.import_module(module.name)
print(sorted(name for name in sys.modules if name.startswith(("jupyter_ai", "litellm", "acp"))))
"""


def test_importing_the_package_never_imports_jupyter_ai() -> None:
    import jupyter_ai_persona_manager  # noqa: F401 - installed here, so the check means something

    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
