/**
 * Calls to the jupyter-cortex-claude server extension.
 *
 * Every request goes through ServerConnection so the Jupyter token, cookies
 * and the XSRF header are attached exactly as for JupyterLab's own calls.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The server extension's URL namespace, below the Jupyter base URL. */
const API_NAMESPACE = 'cortex-claude';

/** One outcome of talking to Snowflake: a call's, or the reachability probe's. */
export interface IUpstreamOutcome {
  /** ok, unreachable, auth_failed, connector_missing, not_allowed, throttled, cortex_error */
  state: string;
  reason: string | null;
  /** ISO 8601, UTC */
  at: string;
}

/** What the gateway last heard from Snowflake (`upstream` in the health answer). */
export interface IUpstream {
  /** The newest outcome's state, or 'unknown' before any. */
  state: string;
  reason: string | null;
  last_call: IUpstreamOutcome | null;
  probe: IUpstreamOutcome | null;
}

/** What `GET cortex-claude/health` answers. The server never includes a secret. */
export interface IHealth {
  /**
   * 'ok', 'demo', 'error' (not configured), or an upstream state that stops
   * every request: 'unreachable', 'auth_failed', 'connector_missing'.
   */
  status: string;
  configured: boolean;
  demo: boolean;
  account_host: string | null;
  auth_method: string | null;
  default_model: string;
  version: string;
  error: string | null;
  claude_installed: boolean;
  claude_install_hint: string | null;
  /** Newer servers add these; the dialog shows them when present. */
  notice?: string | null;
  config_source?: string | null;
  user?: string | null;
  role?: string | null;
  upstream?: IUpstream;
  /** The credit budget, or null when none is set (c.CortexClaude.credit_budget). */
  budget?: IBudget | null;
}

/** Spend against the credit budget, as GET cortex-claude/health reports it. */
export interface IBudget {
  credits: number;
  period: 'day' | 'week' | 'month';
  spent: number;
  fraction: number;
  state: 'ok' | 'warning' | 'exhausted';
  refused: number;
  resets_at: string;
  how_to_raise: string;
}

/** The coding agents the server can start in a terminal. */
export type Agent = 'claude' | 'codex';

/** The names people see for each agent. */
export const AGENT_TITLES: Record<Agent, string> = {
  claude: 'Claude Code',
  codex: 'Codex'
};

/** Where and how to start Claude Code (or Codex); every field is optional. */
export interface IOpenTerminalOptions {
  /** Directory relative to the Jupyter server root; null or '' is the root. */
  cwd?: string | null;
  model?: string | null;
  prompt?: string | null;
  /** Which agent to start: Claude Code unless told otherwise. */
  agent?: Agent | null;
}

/** An error whose message is meant for the person using JupyterLab. */
export class CortexClaudeError extends Error {}

async function requestJSON<T>(
  endpoint: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new CortexClaudeError(
      `Could not reach the Jupyter server at ${url}: ${String(error)}`
    );
  }
  const text = await response.text();
  let body: any = null;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    throw new CortexClaudeError(describeFailure(url, response, body));
  }
  return body as T;
}

/** Builds a message from whatever error shape the server answered with. */
function describeFailure(url: string, response: Response, body: any): string {
  if (response.status === 404) {
    return (
      `${url} answered 404: the jupyter_cortex_claude server extension is not ` +
      'loaded. Check `jupyter server extension list` and restart Jupyter.'
    );
  }
  const detail =
    body?.error?.message ?? body?.message ?? body?.reason ?? body?.error;
  const reason = typeof detail === 'string' ? detail : response.statusText;
  return `${url} answered ${response.status}: ${reason}`;
}

/**
 * The gateway's health; with `probe`, the server first checks that a
 * connection to the Snowflake host opens (no request, no login).
 */
export function fetchHealth(
  settings: ServerConnection.ISettings,
  probe = false
): Promise<IHealth> {
  return requestJSON<IHealth>(
    probe ? 'health?probe=1' : 'health',
    { method: 'GET' },
    settings
  );
}

/**
 * Asks the server for a terminal whose environment already points at the
 * Cortex gateway and that is already running `claude`; answers its name.
 */
export async function createClaudeTerminal(
  options: IOpenTerminalOptions,
  settings: ServerConnection.ISettings
): Promise<string> {
  const payload = {
    cwd: options.cwd || null,
    model: options.model || null,
    prompt: options.prompt || null,
    agent: options.agent || 'claude'
  };
  const body = await requestJSON<{ name?: unknown }>(
    'terminals',
    { method: 'POST', body: JSON.stringify(payload) },
    settings
  );
  if (typeof body?.name !== 'string' || body.name.length === 0) {
    throw new CortexClaudeError(
      'The server created no terminal (its answer had no terminal name).'
    );
  }
  return body.name;
}
