"""One running gateway: configuration resolved, credential made, Cortex client open, key minted.

The Jupyter server extension, the standalone ``cortex-claude`` command and the in-kernel gateway all
build a :class:`GatewayService` and serve the same handlers with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from traitlets import TraitError

from ._version import __version__
from .claude_binary import find_claude, install_hint
from .config import CortexClaude
from .errors import GatewayError
from .gateway.budget import CreditBudget
from .gateway.ledger import UsageLedger, open_ledger
from .gateway.messages import ShapingPolicy
from .gateway.prices import PriceTableError, credit_prices
from .gateway.router import Gateway
from .gateway.usage import UsageRecord
from .gateway_key import GatewayKey
from .snowflake.connection import SnowflakeConnection, resolve_connection
from .snowflake.cortex import CortexClient, RetryPolicy
from .snowflake.cortex_limits import CortexLimits
from .snowflake.credential_factory import create_credential
from .snowflake.credentials import SnowflakeCredential
from .snowflake.errors import ConfigurationError, ConnectorMissing
from .snowflake.models import ModelCatalogue
from .snowflake.upstream_status import (
    AUTH_FAILED,
    CONNECTOR_MISSING,
    OK,
    UNREACHABLE,
    UpstreamStatus,
)

log = logging.getLogger("jupyter_cortex_claude")

# Upstream states that mean no request can succeed until someone acts: the health status shows them.
# A 429 or a Cortex 5xx is a moment's trouble, and a 402/403 may concern one model only: shown in
# `upstream`, not as the status.
BLOCKING_STATES = (UNREACHABLE, AUTH_FAILED, CONNECTOR_MISSING)

DEMO_NOTICE = (
    "OFFLINE DEMO: no Snowflake account is configured, so cortex-claude answers from its built-in "
    "Cortex emulator. Configure ~/.snowflake/connections.toml or SNOWFLAKE_* variables for real models."
)


class GatewayService:
    def __init__(
        self,
        config: CortexClaude,
        *,
        environ: Mapping[str, str] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.log = logger or log
        self.key = GatewayKey(config.gateway_key or None)
        # Accepted like the key above; set by the server extension (server/gateway_key.py).
        self.persistent_key: GatewayKey | None = None
        self.catalogue = ModelCatalogue(
            output_ceiling=config.output_token_ceiling,
            model_output_ceilings=dict(config.model_output_ceilings),
        )
        self.policy = ShapingPolicy(
            catalogue=self.catalogue,
            model_map=dict(config.model_map),
            family_models=dict(config.family_models),
            default_model=config.default_model,
            beta_allowlist=frozenset(config.beta_allowlist),
            drop_billing_header=config.drop_billing_header,
            fold_system_messages=config.fold_system_messages,
            max_messages=config.max_messages,
        )
        self.connection: SnowflakeConnection | None = None
        self.credential: SnowflakeCredential | None = None
        self.demo = False
        self.error: str | None = None
        self.emulator: Any = None
        self._gateway: Gateway | None = None
        self._cortex: CortexClient | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._probe_task: asyncio.Task[None] | None = None
        self.ledger: UsageLedger | None = None
        # The CODEX_HOME written for this gateway's terminals (server/terminals.py), if any.
        self.codex_home: str | None = None
        self.budget = CreditBudget()  # off until the service starts
        self.upstream = UpstreamStatus()
        self.limits = CortexLimits(self.catalogue)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the configuration and open the Cortex client (once; later calls return at once)."""
        async with self._start_lock:
            if not self._started:
                self._started = True
                self._start()
        await self.budget.load()  # the ledger's spend this period, read off the event loop

    def _start(self) -> None:
        try:
            self.connection = (
                None if self.config.demo else resolve_connection(self.config, self.environ)
            )
            if self.connection is None:
                self.connection = self._start_demo()
            self.credential = create_credential(self.connection)
            budget_credits = self.config.credit_budget
            budget_period = self.config.credit_budget_period
            # Credits per million tokens, built once: pricing a request is then a few products.
            prices = credit_prices(self.config.model_prices, self.config.usd_per_credit)
        except (ConfigurationError, TraitError, PriceTableError) as exc:
            self.error = str(exc)
            self.log.error("cortex-claude is not configured: %s", exc)
            return
        self._cortex = CortexClient(
            self.connection.base_url,
            self.credential,
            identity=self._identity(),
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            retry=RetryPolicy(
                max_retries=self.config.max_retries,
                backoff=self.config.retry_backoff,
                deadline=self.config.retry_deadline,
            ),
            status=self.upstream,
            limits=self.limits,
        )
        if self.ledger is None:
            self.ledger = open_ledger(self.config.usage_db_path, prices)
        ledger = self.ledger
        self.budget = CreditBudget(
            credits=budget_credits,
            period=budget_period,
            prices=prices,
            output_ceiling=self.config.output_token_ceiling,
            spent_since=ledger.credits_since if ledger else None,
            logger=self.log,
        )
        if self.budget.enabled and ledger is None:
            self.log.warning(
                "credit budget without a usage ledger: spend is counted from this start only"
            )
        self._gateway = Gateway(
            cortex=self._cortex,
            policy=self.policy,
            catalogue=self.catalogue,
            on_usage=self._record_usage,
            claude_upstream=self.config.claude_upstream,
            responses_upstream=self.config.responses_upstream,
        )
        if self.demo:
            self.log.warning(DEMO_NOTICE)
        # "Ready" is said only once a connection to the host opened (the probe logs why not).
        self._probe_task = asyncio.get_running_loop().create_task(self._probe_at_start())

    async def _probe_at_start(self) -> None:
        if await self.probe() == OK and not self.demo and self.connection is not None:
            self.log.info(
                "cortex-claude gateway ready: %s as %s (%s)",
                self.connection.host,
                self.connection.user,
                self.connection.authenticator,
            )

    def _record_usage(self, record: UsageRecord) -> None:
        if self.ledger is not None:
            self.ledger.record(record)
        self.budget.settle(record)

    async def probe(self) -> str | None:
        """Check now that the login can run and a connection to the account host opens: the
        upstream state, also kept for health; None when the gateway is not configured."""
        if self._cortex is None or self.connection is None:
            return None
        if getattr(self.credential, "needs_connector", False):
            from .snowflake.session_credentials import connector_installed

            if not connector_installed():
                missing = ConnectorMissing(self.connection.authenticator)
                self.upstream.probed(CONNECTOR_MISSING, str(missing))
                return CONNECTOR_MISSING
        return await self._cortex.probe()

    async def stop(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            self._probe_task = None
        if self.ledger is not None:
            ledger, self.ledger = self.ledger, None
            await asyncio.get_running_loop().run_in_executor(None, ledger.close)
        if self._cortex is not None:
            await self._cortex.aclose()
            self._cortex = None
        # Connector sessions log out (snowflake/session_credentials.py); other kinds hold nothing.
        close_credential = getattr(self.credential, "aclose", None)
        if close_credential is not None:
            await close_credential()
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        self.key.remove()
        self._gateway = None
        self._started = False

    def _start_demo(self) -> SnowflakeConnection:
        from .testing import CortexEmulator  # only the demo needs it

        token = "demo-" + secrets.token_urlsafe(24)
        self.emulator = CortexEmulator(account="DEMO", user="DEMO", pats=[token]).start()
        self.demo = True
        return SnowflakeConnection(
            account="DEMO",
            user="DEMO",
            role=None,
            host="127.0.0.1",
            port=self.emulator.port,
            protocol="http",
            authenticator="programmatic_access_token",
            token=token,
            token_file_path=None,
            private_key_file=None,
            private_key_file_pwd=None,
            private_key=None,
            source="offline demo (built-in Cortex emulator)",
        )

    # -- what handlers use --------------------------------------------------------------------

    async def get_gateway(self) -> Gateway:
        """The gateway, starting the service first if the server has not done so yet."""
        if not self._started:
            await self.start()
        if self._gateway is None:
            raise GatewayError(
                503,
                "cortex-claude is not configured: "
                + (self.error or "the gateway has not started yet")
                + ". See `%cortex_claude status` or GET cortex-claude/health.",
            )
        return self._gateway

    def health(self) -> dict[str, Any]:
        connection = self.connection
        claude_path = find_claude(self.config)
        upstream_state = self.upstream.state
        if self.error:
            status = "error"
        elif upstream_state in BLOCKING_STATES:
            status = upstream_state
        elif self.demo:
            status = "demo"
        else:
            status = "ok"
        return {
            "status": status,
            "upstream": self.upstream.as_dict(),
            "learned_limits": self.limits.describe(),
            "configured": self._gateway is not None and not self.demo,
            "demo": self.demo,
            "notice": DEMO_NOTICE if self.demo else None,
            "account": connection.account if connection else None,
            "account_host": connection.host if connection else None,
            "user": connection.user if connection else None,
            "role": connection.role if connection else None,
            "auth_method": connection.authenticator if connection else None,
            "config_source": connection.source if connection else None,
            "credential": self.credential.describe() if self.credential else None,
            "default_model": self.config.default_model,
            "version": __version__,
            "error": self.error,
            "budget": self.budget.status(),
            "claude_installed": claude_path is not None,
            "claude_install_hint": None if claude_path else install_hint(self.config),
        }

    def accepts_key(self, candidate: str | None) -> bool:
        """Whether a client's key opens the gateway: the gateway key or the persistent key."""
        if self.key.matches(candidate):
            return True
        return self.persistent_key is not None and self.persistent_key.matches(candidate)

    def secrets(self) -> list[str]:
        values = [self.key.value]
        if self.persistent_key is not None:
            values.append(self.persistent_key.value)
        if self.credential is not None:
            values.extend(self.credential.secrets())
        return values

    def _identity(self) -> str:
        connection = self.connection
        if connection is None:
            return "the configured Snowflake user"
        return f"user {connection.user or '?'} on account {connection.account or connection.host}"
