/**
 * Showing the gateway's health: the status dialog and the status bar item.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { fetchHealth, IBudget, IHealth, IUpstreamOutcome } from './api';

/** What the status bar shows: the last health answer or why there is none. */
export type HealthState =
  | { kind: 'loading' }
  | { kind: 'answered'; health: IHealth }
  | { kind: 'unreachable'; reason: string };

export async function loadHealthState(
  settings: ServerConnection.ISettings,
  probe = false
): Promise<HealthState> {
  try {
    return { kind: 'answered', health: await fetchHealth(settings, probe) };
  } catch (error) {
    return { kind: 'unreachable', reason: (error as Error).message };
  }
}

/** "0.82 of 1 credits this day (82 %), resets 2026-12-01T00:00:00Z" */
export function describeBudget(budget: IBudget): string {
  const percent = Math.floor(budget.fraction * 100);
  let text = `${budget.spent.toFixed(2)} of ${budget.credits} credits this ${budget.period} (${percent} %), resets ${budget.resets_at}`;
  if (budget.refused > 0) {
    text += `; ${budget.refused} request(s) refused`;
  }
  return text;
}

/** Words for an upstream state, as the status bar and the dialog show it. */
const UPSTREAM_WORDS: Record<string, string> = {
  ok: 'reachable',
  unreachable: 'unreachable',
  auth_failed: 'login refused',
  connector_missing: 'connector missing',
  not_allowed: 'not allowed',
  throttled: 'rate limited',
  cortex_error: 'Cortex error',
  unknown: 'not checked yet'
};

function describeOutcome(outcome: IUpstreamOutcome | null | undefined): string {
  if (!outcome) {
    return '—';
  }
  const words = UPSTREAM_WORDS[outcome.state] ?? outcome.state;
  const reason = outcome.reason ? `: ${outcome.reason}` : '';
  return `${words} (${outcome.at})${reason}`;
}

/** Rows of the status dialog: [label, value], in the order a person reads them. */
function describeHealth(health: IHealth): Array<[string, string]> {
  const text = (value: string | null | undefined) =>
    value === null || value === undefined || value === '' ? '—' : value;
  const rows: Array<[string, string]> = [
    ['Status', text(health.status)],
    ['Configured', health.configured ? 'yes' : 'no'],
    ['Offline demo', health.demo ? 'yes' : 'no'],
    ['Snowflake account', text(health.account_host)],
    ['User', text(health.user)],
    ['Role', text(health.role)],
    ['Authentication', text(health.auth_method)],
    ['Configuration from', text(health.config_source)],
    ['Default model', text(health.default_model)],
    ['Snowflake, last request', describeOutcome(health.upstream?.last_call)],
    ['Snowflake, last check', describeOutcome(health.upstream?.probe)],
    ['Claude Code installed', health.claude_installed ? 'yes' : 'no'],
    ['Server extension version', text(health.version)]
  ];
  if (health.budget) {
    rows.push(['Credit budget', describeBudget(health.budget)]);
    if (health.budget.state !== 'ok') {
      rows.push(['Raise the budget', health.budget.how_to_raise]);
    }
  }
  if (health.notice) {
    rows.push(['Notice', health.notice]);
  }
  if (health.error) {
    rows.push(['Error', health.error]);
  }
  if (!health.claude_installed && health.claude_install_hint) {
    rows.push(['Install Claude Code', health.claude_install_hint]);
  }
  return rows;
}

function createHealthBody(state: HealthState): Widget {
  const body = new Widget();
  body.addClass('jp-CortexClaude-healthDialog');
  if (state.kind !== 'answered') {
    const message = document.createElement('p');
    message.textContent =
      state.kind === 'loading'
        ? 'Checking the Cortex gateway…'
        : `The Cortex gateway did not answer: ${state.reason}`;
    body.node.appendChild(message);
    return body;
  }
  const table = document.createElement('table');
  for (const [label, value] of describeHealth(state.health)) {
    const row = table.insertRow();
    const header = document.createElement('th');
    header.scope = 'row';
    header.textContent = label;
    row.appendChild(header);
    row.insertCell().textContent = value;
  }
  body.node.appendChild(table);
  return body;
}

export async function showHealthDialog(
  settings: ServerConnection.ISettings
): Promise<void> {
  // Opening the dialog is asking: check the way to Snowflake now.
  const state = await loadHealthState(settings, true);
  await showDialog({
    title: 'Claude Code on Snowflake Cortex',
    body: createHealthBody(state),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

/** The status bar's words, dot colour and hover text for a health state. */
export function summarizeHealth(state: HealthState): {
  text: string;
  level: 'ok' | 'demo' | 'warning' | 'error' | 'loading';
  title: string;
} {
  if (state.kind === 'loading') {
    return {
      text: 'Cortex: …',
      level: 'loading',
      title: 'Checking the Cortex gateway'
    };
  }
  if (state.kind === 'unreachable') {
    return { text: 'Cortex: error', level: 'error', title: state.reason };
  }
  const health = state.health;
  const budget = health.budget;
  const upstream = health.upstream;
  if (!['ok', 'demo', 'error'].includes(health.status) && upstream) {
    // Snowflake cannot be used at all (unreachable, login refused, connector missing): first.
    const words = UPSTREAM_WORDS[health.status] ?? health.status;
    return {
      text: `Cortex: ${words}`,
      level: 'error',
      title: `${upstream.reason ?? words}. Click for details.`
    };
  }
  if (health.status !== 'error' && budget && budget.state !== 'ok') {
    // At 80 % of the budget the status bar says so; at 100 % Cortex is no longer called.
    const percent = Math.floor(budget.fraction * 100);
    return {
      text:
        budget.state === 'exhausted'
          ? 'Cortex: budget spent'
          : `Cortex: ${percent} % of budget`,
      level: budget.state === 'exhausted' ? 'error' : 'warning',
      title: `Credit budget: ${describeBudget(budget)}. ${budget.how_to_raise}`
    };
  }
  if (health.status === 'ok') {
    const spend = budget
      ? ` · ${Math.floor(budget.fraction * 100)} % of budget`
      : '';
    const spendTitle = budget
      ? ` Credit budget: ${describeBudget(budget)}.`
      : '';
    return {
      text: `Cortex: ${health.default_model}${spend}`,
      level: 'ok',
      title: `Claude Code uses ${health.default_model} on ${
        health.account_host ?? 'Snowflake Cortex'
      }.${spendTitle} Click for details.`
    };
  }
  if (health.status === 'demo') {
    return {
      text: 'Cortex: demo',
      level: 'demo',
      title:
        'Offline demo: answers come from a local Cortex emulator, not Snowflake. Click for details.'
    };
  }
  return {
    text: 'Cortex: error',
    level: 'error',
    title: health.error ?? 'The Cortex gateway reported an error.'
  };
}

/** How often the status bar asks for health, in milliseconds. */
export const HEALTH_REFRESH_INTERVAL_MS = 30_000;

/**
 * The status bar item: a coloured dot and the default model, refreshed on a
 * timer; a click opens the status dialog.
 */
export class CortexStatusItem extends Widget {
  constructor(
    private readonly settings: ServerConnection.ISettings,
    private readonly onOpenDetails: () => void
  ) {
    super();
    this.addClass('jp-CortexClaude-statusItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.dot = document.createElement('span');
    this.dot.className = 'jp-CortexClaude-statusDot';
    this.label = document.createElement('span');
    this.label.className = 'jp-CortexClaude-statusLabel';
    this.node.append(this.dot, this.label);
    this.node.addEventListener('click', () => this.onOpenDetails());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        this.onOpenDetails();
      }
    });
    this.showState({ kind: 'loading' });
    void this.refresh();
    this.timer = window.setInterval(
      () => void this.refresh(),
      HEALTH_REFRESH_INTERVAL_MS
    );
  }

  /** Asks the server for health now and shows the answer. */
  async refresh(): Promise<void> {
    const state = await loadHealthState(this.settings);
    if (!this.isDisposed) {
      this.showState(state);
    }
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  private showState(state: HealthState): void {
    const summary = summarizeHealth(state);
    this.label.textContent = summary.text;
    this.node.title = summary.title;
    this.node.dataset.level = summary.level;
  }

  private readonly dot: HTMLSpanElement;
  private readonly label: HTMLSpanElement;
  private readonly timer: number;
}
