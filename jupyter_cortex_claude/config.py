"""Every setting of jupyter-cortex-claude, in one traitlets class.

Set them in ``jupyter_server_config.py`` (``c.CortexClaude.default_model = "claude-opus-4-6"``), on
the command line (``--CortexClaude.default_model=claude-opus-4-6``), or for the standalone command
in its own config file. ``jupyter server --help-all`` lists them with these help strings.

This module only declares settings. Resolving where to connect and as whom (connections.toml,
``SNOWFLAKE_*`` environment variables) lives in :mod:`jupyter_cortex_claude.snowflake.connection`,
so importing the configuration never touches the disk.
"""

from __future__ import annotations

import math
import os

from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, List, TraitError, Unicode, default
from traitlets.config import Configurable

from .betas import DOCUMENTED_BETAS

# Cortex's Messages API accepts only Bedrock-compatible beta flags (cortex-api.md, "Messages API
# details"). Claude Code sends many more; the gateway drops every flag not on this list.
CORTEX_DOCUMENTED_BETAS: list[str] = sorted(DOCUMENTED_BETAS)

# Cortex documents a 16,384-token output ceiling for its listed models (cortex-api.md, "Models
# and limits").
CORTEX_OUTPUT_TOKEN_CEILING = 16_384

# Cortex refuses request bodies above 20 MiB; checking first gives the user a clear 413 instead.
CORTEX_MAX_REQUEST_BYTES = 20 * 1024 * 1024


class CortexClaude(Configurable):
    """Settings of jupyter-cortex-claude: the Snowflake connection, models, request shaping, the
    upstream client and the local gateway."""

    # --- Connection: where to connect and as whom -------------------------------------------------
    # Each of these, when set, wins over the SNOWFLAKE_* environment variable and the
    # connections.toml entry of the same name (see jupyter_cortex_claude/snowflake/connection.py).

    connection_name = Unicode(
        "",
        help="""Which section of connections.toml to use (as in `snow --connection NAME`). Empty:
        SNOWFLAKE_DEFAULT_CONNECTION_NAME, else the file's `default_connection_name`, else the
        section named `default`.""",
    ).tag(config=True)

    account = Unicode(
        "",
        help="""Snowflake account identifier, e.g. `myorg-myaccount` (or a legacy locator such as
        `xy12345.us-east-1`), without `.snowflakecomputing.com`. Empty: from SNOWFLAKE_ACCOUNT or
        connections.toml. With no account anywhere, the offline demo starts instead.""",
    ).tag(config=True)

    user = Unicode(
        "",
        help="Snowflake login name. Needed for key-pair (JWT) auth; a PAT already names its user.",
    ).tag(config=True)

    role = Unicode(
        "",
        help="""Snowflake role, shown for information. Cortex REST calls run with the user's
        *default* role, which needs the SNOWFLAKE.CORTEX_USER database role.""",
    ).tag(config=True)

    host = Unicode(
        "",
        help="""Host to call instead of `<account>.snowflakecomputing.com`: a privatelink host, or
        `127.0.0.1` for a local emulator. A full URL (`http://127.0.0.1:8123`) also sets protocol
        and port.""",
    ).tag(config=True)

    port = Int(
        0,
        help="TCP port of the Snowflake host. 0: the protocol's default (443 for https).",
    ).tag(config=True)

    protocol = Unicode(
        "https",
        help="`https`, or `http` for a local emulator only.",
    ).tag(config=True)

    token = Unicode(
        "",
        help="""Programmatic access token (PAT) to authenticate with. Prefer `token_file_path` or
        connections.toml (chmod 600) over putting a secret in a config file.""",
    ).tag(config=True)

    token_file_path = Unicode(
        "",
        help="""File that holds a PAT (or, with the identities work, an OAuth token). Re-read
        whenever it changes, so a rotated token is picked up without a restart.""",
    ).tag(config=True)

    private_key_file = Unicode(
        "",
        help="""PEM private key (PKCS#8, as `openssl genrsa | openssl pkcs8 -topk8` writes it) whose
        public key is set on the Snowflake user with ALTER USER ... SET RSA_PUBLIC_KEY. Enables
        key-pair (JWT) authentication.""",
    ).tag(config=True)

    private_key_file_pwd = Unicode(
        "",
        help="Passphrase of an encrypted private key. Empty: the key is not encrypted.",
    ).tag(config=True)

    private_key = Unicode(
        "",
        help="The private key itself as PEM text, when it comes from a secret store, not a file.",
    ).tag(config=True)

    authenticator = Unicode(
        "",
        help="""How to authenticate. Empty: inferred (a private key → `snowflake_jwt`, a token →
        `programmatic_access_token`). Available: `programmatic_access_token`, `snowflake_jwt`,
        `oauth` (an access token, Bearer), `externalbrowser` (SSO), `snowflake` (password) and
        `username_password_mfa` (the last three log in through the Snowflake connector).""",
    ).tag(config=True)

    password = Unicode(
        "",
        help="""Password for `authenticator = snowflake` (or `username_password_mfa`); the
        Snowflake connector logs in with it and the gateway uses the session token. Prefer
        SNOWFLAKE_PASSWORD or connections.toml (chmod 600) over a config file.""",
    ).tag(config=True)

    passcode = Unicode(
        "",
        help="MFA passcode for a password login (`username_password_mfa`), when one is needed.",
    ).tag(config=True)

    connector_login = Bool(
        False,
        help="""Log in through the Snowflake connector (snowflake-connector-python) and send its
        session token, also for PAT, key-pair and OAuth, which otherwise go to Cortex directly.
        Browser SSO and password logins always use the connector.""",
    ).tag(config=True)

    spcs_token_path = Unicode(
        "",
        help="""OAuth token file of Snowpark Container Services (Snowflake Notebooks on the
        container runtime). Empty: $CORTEX_CLAUDE_SPCS_TOKEN_PATH, else /snowflake/session/token.
        Used, re-read on every request, when it exists, SNOWFLAKE_HOST or SNOWFLAKE_ACCOUNT is
        set, and no other credential is configured.""",
    ).tag(config=True)

    # --- Models -----------------------------------------------------------------------------------

    default_model = Unicode(
        "claude-sonnet-4-6",
        help="Cortex model used when a client asks for a model name Cortex does not know.",
    ).tag(config=True)

    model_map = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""Client model id → Cortex model name, checked first, e.g. `{"claude-opus-5-5":
        "claude-opus-4-6"}`.""",
    ).tag(config=True)

    family_models = Dict(
        default_value={
            "opus": "claude-opus-4-6",
            "sonnet": "claude-sonnet-4-6",
            "haiku": "claude-haiku-4-5",
        },
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""Cortex model for each Claude family, used for ids Cortex does not serve (e.g.
        `claude-sonnet-4-5-20250929` → the `sonnet` entry).""",
    ).tag(config=True)

    output_token_ceiling = Int(
        CORTEX_OUTPUT_TOKEN_CEILING,
        help="""Largest max_tokens sent to Cortex; larger requests are clamped (Cortex documents
        16,384 and Claude Code asks for up to 128,000).""",
    ).tag(config=True)

    model_output_ceilings = Dict(
        key_trait=Unicode(),
        value_trait=Int(),
        help='Per-model override of `output_token_ceiling`, e.g. `{"claude-haiku-4-5": 8192}`.',
    ).tag(config=True)

    # --- Request shaping --------------------------------------------------------------------------

    beta_allowlist = List(
        Unicode(),
        default_value=list(CORTEX_DOCUMENTED_BETAS),
        help="""`anthropic-beta` values passed on to Cortex; all others are dropped. Default: the
        list Cortex documents as accepted.""",
    ).tag(config=True)

    drop_billing_header = Bool(
        True,
        help="""Remove Claude Code's `x-anthropic-billing-header` line from the system prompt: it
        means nothing to Cortex and changes every turn, which spoils prompt caching.""",
    ).tag(config=True)

    fold_system_messages = Bool(
        True,
        help="""Move `role: "system"` messages that Claude Code puts inside `messages` into the
        top-level `system`, since Cortex accepts only user and assistant turns.""",
    ).tag(config=True)

    max_messages = Int(
        100_000,  # gateway/limits.py: DEFAULT_MAX_MESSAGES (not imported: config sits below it)
        help="""Most messages one request may hold; more are refused with a 400 before Cortex is
        called. Real conversations stay far below (Claude Code compacts long before); the bound
        stops a body of tiny messages from keeping the server busy.""",
    ).tag(config=True)

    # --- Upstream (the Cortex client) -------------------------------------------------------------

    connect_timeout = Float(
        10.0,
        help="Seconds to wait for a connection to Snowflake.",
    ).tag(config=True)

    read_timeout = Float(
        300.0,
        help="""Longest silence, in seconds, between two pieces of a Cortex answer before giving up.
        Long generations are fine as long as bytes keep arriving.""",
    ).tag(config=True)

    max_retries = Int(
        3,
        help="""How often to retry a Cortex call that Cortex refused for now: 429, 503 ("inference
        timed out") or its throttled 400. A request Cortex may have received otherwise (a read
        timeout, a connection that broke after sending) is never re-sent.""",
    ).tag(config=True)

    retry_backoff = Float(
        0.5,
        help="""Base delay in seconds between retries; doubled on each attempt, with jitter. An
        upstream Retry-After longer than the delay is waited instead.""",
    ).tag(config=True)

    retry_deadline = Float(
        15.0,
        help="""Longest time, in seconds, one call spends in retries before the client gets the
        error. Connections that could not be opened (Cortex never saw the request) are retried
        until then, so an outage shorter than this is ridden out; a longer one is reported as
        "Could not reach Snowflake" with what to check, and clients are told not to retry it
        themselves (Claude Code then shows it at once). A wait (backoff or Retry-After) that would
        end after it is not taken: the client gets the Retry-After instead. Keep it above
        connect_timeout, so that a connection that timed out once gets another try.""",
    ).tag(config=True)

    max_request_bytes = Int(
        CORTEX_MAX_REQUEST_BYTES,
        help="Largest request body sent to Cortex (its limit: 20 MiB); larger ones are refused.",
    ).tag(config=True)

    request_body_timeout = Float(
        60.0,
        help="""Seconds a client may take to send a request body to a gateway endpoint; the
        connection is closed after that. Keeps a request that announces a body and never sends
        it (authenticated or not) from holding a connection forever.""",
    ).tag(config=True)

    claude_upstream = CaselessStrEnum(
        ["messages", "chat"],
        default_value="messages",
        help="""Which Cortex API serves Claude models: `messages` (Cortex's Anthropic Messages
        API, relayed untouched) or `chat` (Chat Completions, translated both ways, as for
        non-Claude models). With `messages`, a 404 from Cortex's /v1/messages switches to `chat`
        by itself for the rest of the process.""",
    ).tag(config=True)

    responses_upstream = CaselessStrEnum(
        ["chat", "responses"],
        default_value="chat",
        help="""Which Cortex API serves OpenAI models on the Responses endpoint (Codex CLI):
        `chat` (Chat Completions, translated both ways, as for every other model) or `responses`
        (Cortex's preview Responses API, relayed nearly untouched; its field support is not
        documented yet, see docs/shaping.md). With `responses`, a 404 from Cortex's /v1/responses
        switches to `chat` by itself for the rest of the process. Other models always use `chat`.""",
    ).tag(config=True)

    # --- The local gateway ------------------------------------------------------------------------

    gateway_key = Unicode(
        "",
        help="""Key that local clients (Claude Code, SDKs) present to the gateway. Empty: a random
        key is minted at start and handed to the terminals and kernels started by Jupyter.""",
    ).tag(config=True)

    demo = Bool(
        False,
        help="""Serve the offline demo from the built-in Cortex emulator even if a Snowflake account
        is configured. The demo also starts by itself when no account is configured.""",
    ).tag(config=True)

    claude_command = Unicode(
        "claude",
        help="Command that starts Claude Code.",
    ).tag(config=True)

    # --- Claude Code in terminals and the standalone command ----------------------------------------

    configure_terminals = Bool(
        True,
        help="""Give every terminal this Jupyter server opens the environment Claude Code needs to
        use the gateway (ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN = the gateway key, model
        variables). Variables already set by the user are kept.""",
    ).tag(config=True)

    terminal_model = Unicode(
        "",
        help="""Model Claude Code starts with (ANTHROPIC_MODEL) in terminals and `cortex-claude`.
        Empty: `default_model`. A user's own ANTHROPIC_MODEL wins.""",
    ).tag(config=True)

    terminal_hidden_env = List(
        Unicode(),
        default_value=[
            "SNOWFLAKE_*TOKEN*",
            "SNOWFLAKE_PAT",
            "SNOWFLAKE_*_PAT",
            "SNOWFLAKE_*PASSWORD*",
            "SNOWFLAKE_*PASSCODE*",
            "SNOWFLAKE_*PRIVATE_KEY*",
            "SNOWFLAKE_*_PWD",
            "SNOWFLAKE_*SECRET*",
            "PRIVATE_KEY_PASSPHRASE",
        ],
        help="""Environment variables removed from every process that runs an agent on the gateway
        (Jupyter terminals, `%%cortex_claude --agent`, Claude Code started by `cortex-claude`):
        the Snowflake secrets the gateway uses, which an agent running shell commands must not
        see. Shell globs, matched regardless of case; the defaults cover the connector's and our
        SNOWFLAKE_TOKEN/_PAT/_PASSWORD/_PASSCODE/_PRIVATE_KEY_* and the Snowflake CLI's
        SNOWFLAKE_CONNECTIONS_<NAME>_PASSWORD/_TOKEN/... overrides. Set a variable in
        TerminalManager.extra_env to keep it in terminals.""",
    ).tag(config=True)

    deny_agent_secret_reads = Bool(
        False,
        help="""Start the Claude Code we launch (the terminal button, `%%cortex_claude --agent`,
        `cortex-claude`) with `--settings` permission rules that deny its Read/Edit tools the
        places where this machine keeps Snowflake and Jupyter secrets: /proc/*/environ,
        connections.toml/config.toml, the configured key and token files, Jupyter's runtime
        directory (jpserver-*.json, kernel connection files, the gateway key file). Off by
        default: it also blocks legitimate reads of those paths. It does NOT stop shell
        commands (`cat`, `env`, a Python script) from reading them: Claude Code applies Read
        rules to its built-in file tools only. See docs/reliability.md, "Trust model".""",
    ).tag(config=True)

    claude_code_package = Unicode(
        "@anthropic-ai/claude-code@2.1.330",
        help="""npm package (with the version this release was tested with) that the terminal
        offers to install when Claude Code is missing.""",
    ).tag(config=True)

    claude_install_prefix = Unicode(
        "~/.local",
        help="""npm prefix for that install (`npm install -g --prefix PREFIX`): user-local, so no
        root is needed; Claude Code lands in PREFIX/bin.""",
    ).tag(config=True)

    # --- Codex CLI (the OpenAI Responses endpoint) ---------------------------------------------------

    codex_command = Unicode(
        "codex",
        help="Command that starts the Codex CLI (`%cortex_claude codex`, the launcher, `cortex-claude codex`).",
    ).tag(config=True)

    codex_package = Unicode(
        "@openai/codex@0.171.0",
        help="""npm package (with the version this release was tested with) that the terminal
        offers to install when Codex is missing; it goes to `claude_install_prefix` too.""",
    ).tag(config=True)

    codex_home = Unicode(
        "",
        help="""Folder the gateway writes as Codex's CODEX_HOME (a config.toml whose model provider
        is this gateway's Responses endpoint); the user's own ~/.codex is never touched. Empty:
        `<jupyter data dir>/cortex_claude/codex/<host>-<port>`, one per gateway address.""",
    ).tag(config=True)

    # --- Jupyter AI (docs/jupyter-ai.md) ----------------------------------------------------------

    acp_adapter_command = Unicode(
        "claude-agent-acp",
        help="""Command of the ACP adapter that the Jupyter AI persona "Claude Code (Cortex)" starts
        (from `acp_adapter_package`). Looked up on PATH, then in `claude_install_prefix`/bin.""",
    ).tag(config=True)

    acp_adapter_package = Unicode(
        "@zed-industries/claude-agent-acp@0.23.1",
        help="""npm package (with the version this release was tested with) of that adapter; the
        persona names it in its install hint. 0.23.1 runs the Claude Code 2.1.83 it bundles.""",
    ).tag(config=True)

    acp_claude_code_executable = Unicode(
        "",
        help="""Claude Code that the ACP adapter runs (its CLAUDE_CODE_EXECUTABLE). Empty: the
        one the adapter bundles, whose version the adapter's version pins.""",
    ).tag(config=True)

    jupyternaut_model = Unicode(
        "",
        help="""Cortex model to give Jupyternaut (Jupyter AI's LiteLLM persona), e.g.
        `claude-sonnet-4-6`. Setting it is your consent: at each start a custom model "<model>
        (Cortex)" is written to Jupyternaut's config, pointing at this server's Anthropic endpoint
        with the persistent key (<jupyter data dir>/cortex_claude/persistent-key, created 0600),
        and made Jupyternaut's default model when it has none. Empty: Jupyternaut's config is
        left alone.""",
    ).tag(config=True)

    # --- Usage ledger -----------------------------------------------------------------------------

    usage_db_path = Unicode(
        "",
        help="""SQLite file where every gateway request's usage is recorded (tokens, timing,
        status; never prompt or answer text). Empty: `<jupyter data dir>/cortex_claude/usage.sqlite`.
        `:none:` turns the ledger off.""",
    ).tag(config=True)

    model_prices = Dict(
        default_value={},
        help="""**USD** per million tokens per Cortex model, as in Snowflake's Service Consumption
        Table (Tables 6(b)/6(c)), for the ledger's *estimated* credits and the credit budget, e.g.
        `{"claude-sonnet-4-6": {"input": 3.0, "output": 15.0, "cache_read": 0.3}}`; the key `*`
        prices models not listed. An entry replaces the model's built-in one (Snowflake's published
        example rates, docs/budgets.md "Prices"); left out, `cache_read` is 10 % of `input` and
        `cache_write` equals `input`. Converted to credits with `usd_per_credit`.""",
    ).tag(config=True)

    usd_per_credit = Float(
        2.0,
        help="""USD per credit, to turn the USD rates of `model_prices` into the credits that
        `credit_budget` and the usage ledger count. Default: $CORTEX_CLAUDE_USD_PER_CREDIT, else
        2.00, Snowflake's price of an AI Credit with global routing (2.20 with regional routing;
        docs/budgets.md).""",
    ).tag(config=True)

    # --- Credit budget ----------------------------------------------------------------------------

    credit_budget = Float(
        0.0,
        help="""Estimated credits this gateway may spend per `credit_budget_period` (priced with
        `model_prices`); once spent, requests are refused with a 403 before Cortex is called, until
        the period ends. 0: no budget. Default: $CORTEX_CLAUDE_CREDIT_BUDGET (how a JupyterHub
        admin sets it through the spawner's environment), else 0. Snowflake-side budgets remain the
        hard limit: see docs/budgets.md.""",
    ).tag(config=True)

    credit_budget_period = CaselessStrEnum(
        ["day", "week", "month"],
        help="""The period `credit_budget` is for, in UTC: `day`, `week` (from Monday) or `month`.
        Default: $CORTEX_CLAUDE_CREDIT_BUDGET_PERIOD, else `day`.""",
    ).tag(config=True)

    @default("credit_budget")
    def _credit_budget_from_environment(self) -> float:
        value = os.environ.get("CORTEX_CLAUDE_CREDIT_BUDGET", "").strip()
        if not value:
            return 0.0
        try:
            return float(value)
        except ValueError:
            raise TraitError(
                f"CORTEX_CLAUDE_CREDIT_BUDGET={value!r} is not a number of credits (e.g. 25)."
            ) from None

    @default("usd_per_credit")
    def _usd_per_credit_from_environment(self) -> float:
        # 2.00: Snowflake's AI Credit price with global routing (gateway/prices.py, not imported:
        # config sits below the gateway).
        value = os.environ.get("CORTEX_CLAUDE_USD_PER_CREDIT", "").strip()
        if not value:
            return 2.0
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise TraitError(
                f"CORTEX_CLAUDE_USD_PER_CREDIT={value!r} is not a price in USD above 0 (e.g. 2.0)."
            )
        return number

    @default("credit_budget_period")
    def _credit_budget_period_from_environment(self) -> str:
        value = os.environ.get("CORTEX_CLAUDE_CREDIT_BUDGET_PERIOD", "").strip().lower() or "day"
        if value not in ("day", "week", "month"):
            raise TraitError(
                f"CORTEX_CLAUDE_CREDIT_BUDGET_PERIOD={value!r}: choose day, week or month."
            )
        return value
