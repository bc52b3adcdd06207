#!/usr/bin/env bash
# Run the whole test suite: installs the package with its test extras into the active virtual
# environment (never into a system Python), the pinned Claude Code and Codex CLIs and the agents' own venvs
# into .cache/ (git-ignored), and, when missing and possible, Chromium for the browser test.
# Usage: bash scripts/test.sh [pytest args...]   (PYTHON=/path/to/venv/bin/python to choose one)
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_CODE_VERSION="2.1.330"
PYTHON="${PYTHON:-python3}"

# pip install -e ".[test]" below would otherwise land in whatever python3 is first on PATH.
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)'; then
  cat >&2 <<EOF_REFUSE
scripts/test.sh: $PYTHON ($("$PYTHON" -c 'import sys; print(sys.prefix)' 2>/dev/null || echo '?')) is not a virtual environment; nothing was installed.
The tests install jupyter-cortex-claude and its test extras with pip. Make a venv first:
  python3 -m venv .venv && . .venv/bin/activate && bash scripts/test.sh
EOF_REFUSE
  exit 2
fi

"$PYTHON" -m pip install --quiet --upgrade pip
"$PYTHON" -m pip install --quiet -e ".[test]"

claude_dir=".cache/claude-code-${CLAUDE_CODE_VERSION}"
claude_bin="$claude_dir/node_modules/.bin/claude"
if ! [ -x "$claude_bin" ] || ! "$claude_bin" --version 2>/dev/null | grep -q "$CLAUDE_CODE_VERSION"; then
  command -v npm >/dev/null || { echo "npm is needed to install the Claude Code CLI for the tests" >&2; exit 1; }
  npm install --silent --no-fund --no-audit --prefix "$claude_dir" "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"
fi
export CORTEX_CLAUDE_TEST_CLAUDE="$PWD/$claude_bin"

# The Codex CLI (OpenAI's coding agent; the npm package carries a native binary), pinned likewise.
CODEX_VERSION="0.171.0"
codex_dir=".cache/codex-${CODEX_VERSION}"
codex_bin="$codex_dir/node_modules/.bin/codex"
if ! [ -x "$codex_bin" ] || ! "$codex_bin" --version 2>/dev/null | grep -q "$CODEX_VERSION"; then
  npm install --silent --no-fund --no-audit --prefix "$codex_dir" "@openai/codex@${CODEX_VERSION}"
fi
export CORTEX_CLAUDE_TEST_CODEX="$PWD/$codex_bin"

# configurable-http-proxy (npm), the proxy in front of the real JupyterHub in tests/test_jupyterhub.py.
CHP_VERSION="5.3.0"
chp_dir=".cache/configurable-http-proxy-${CHP_VERSION}"
chp_bin="$chp_dir/node_modules/.bin/configurable-http-proxy"
if ! [ -x "$chp_bin" ]; then
  npm install --silent --no-fund --no-audit --prefix "$chp_dir" "configurable-http-proxy@${CHP_VERSION}"
fi
export CORTEX_CLAUDE_TEST_CHP="$PWD/$chp_bin"

# Aider (an OpenAI-compatible coding agent) pins many packages: it gets a venv of its own.
AIDER_VERSION="0.86.2"
aider_venv=".cache/aider-${AIDER_VERSION}"
if ! [ -x "$aider_venv/bin/aider" ]; then
  "$PYTHON" -m venv "$aider_venv"
  "$aider_venv/bin/pip" install --quiet "aider-chat==${AIDER_VERSION}"
fi
export CORTEX_CLAUDE_TEST_AIDER="$PWD/$aider_venv/bin/aider"

# snowflake-claude-code (a peer proxy on Cortex's inference:complete) also pins its own packages.
SCC_VERSION="1.1.0"
scc_venv=".cache/snowflake-claude-code-${SCC_VERSION}"
if ! [ -f "$scc_venv/.installed" ]; then
  "$PYTHON" -m venv "$scc_venv"
  "$scc_venv/bin/pip" install --quiet "snowflake-claude-code==${SCC_VERSION}"
  touch "$scc_venv/.installed"
fi
export CORTEX_CLAUDE_SCC_VENV="$PWD/$scc_venv"

# Jupyter AI (its Jupyternaut extra holds python-dateutil below 3, which the rest of the suite
# has newer) gets a venv of its own with this package and the test extras; the pinned ACP adapter
# that its "Claude Code (Cortex)" persona starts comes from npm.
JUPYTER_AI_VERSION="3.2.0"
ACP_ADAPTER_VERSION="0.23.1"
jai_venv=".cache/jupyter-ai-${JUPYTER_AI_VERSION}"
if ! [ -f "$jai_venv/.installed" ] || [ pyproject.toml -nt "$jai_venv/.installed" ]; then
  "$PYTHON" -m venv "$jai_venv"
  "$jai_venv/bin/pip" install --quiet --upgrade pip
  "$jai_venv/bin/pip" install --quiet -e ".[test,jupyter-ai]" "jupyter-ai==${JUPYTER_AI_VERSION}"
  touch "$jai_venv/.installed"
fi
acp_dir=".cache/claude-agent-acp-${ACP_ADAPTER_VERSION}"
acp_bin="$acp_dir/node_modules/.bin/claude-agent-acp"
if ! [ -x "$acp_bin" ]; then
  npm install --silent --no-fund --no-audit --prefix "$acp_dir" "@zed-industries/claude-agent-acp@${ACP_ADAPTER_VERSION}"
fi
export CORTEX_CLAUDE_TEST_ACP_ADAPTER="$PWD/$acp_bin"

if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi

"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
"$PYTHON" -m pytest --ignore=tests/jupyterai "$@"
"$jai_venv/bin/python" -m pytest tests/jupyterai "$@"
