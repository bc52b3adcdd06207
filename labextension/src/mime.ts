/**
 * Renders the `%cortex_claude` magic's output: opens Claude Code in a terminal
 * once, and afterwards only reports it. (The module's other renderer, for the
 * chat widget's copy-to-cell, is in insert_cell.ts.)
 *
 * The kernel cannot open a JupyterLab terminal itself, so the magic displays a
 * bundle of this MIME type; rendering it is the moment to act.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { Agent, AGENT_TITLES } from './api';
import { waitForClaudeTerminalOpener } from './bridge';
import { insertCellExtension } from './insert_cell';

export const OPEN_TERMINAL_MIME_TYPE =
  'application/vnd.jupyter-cortex-claude.open-terminal+json';

/** The magic's request, as it appears in the output bundle. */
interface IOpenTerminalRequest {
  cwd?: string | null;
  model?: string | null;
  prompt?: string | null;
  /** `%cortex_claude codex` asks for Codex; older outputs have no agent. */
  agent?: Agent | null;
  nonce?: string;
  /** When the magic ran, in seconds since the epoch (optional). */
  created_at?: number;
}

/**
 * Outputs are re-rendered whenever a saved notebook is opened or a cell is
 * re-rendered; the nonce remembered here keeps those from opening a second
 * terminal in this browser tab.
 */
const OPENED_NONCE_PREFIX = 'jupyter-cortex-claude:opened:';

/** How long to wait for the main plugin (which owns the commands) to activate. */
const OPENER_WAIT_MS = 15_000;

/**
 * A request older than this comes from a saved notebook opened again (maybe in
 * another tab, where sessionStorage is empty); it gets a button instead of
 * opening a terminal by itself.
 */
const AUTO_OPEN_MAX_AGE_SECONDS = 120;

function agentTitle(request: IOpenTerminalRequest): string {
  return AGENT_TITLES[request.agent === 'codex' ? 'codex' : 'claude'];
}

function isStale(request: IOpenTerminalRequest): boolean {
  if (typeof request.created_at !== 'number') {
    return false;
  }
  return Date.now() / 1000 - request.created_at > AUTO_OPEN_MAX_AGE_SECONDS;
}

function rememberedTerminal(nonce: string): string | null {
  try {
    return window.sessionStorage.getItem(OPENED_NONCE_PREFIX + nonce);
  } catch {
    return null;
  }
}

function rememberTerminal(nonce: string, terminalName: string): void {
  try {
    window.sessionStorage.setItem(OPENED_NONCE_PREFIX + nonce, terminalName);
  } catch {
    // Storage can be full or disabled; the worst case is a second terminal.
  }
}

export class OpenTerminalRenderer
  extends Widget
  implements IRenderMime.IRenderer
{
  constructor() {
    super();
    this.addClass('jp-CortexClaude-openTerminalOutput');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const request = (model.data[OPEN_TERMINAL_MIME_TYPE] ??
      {}) as IOpenTerminalRequest;
    const nonce = typeof request.nonce === 'string' ? request.nonce : '';
    const alreadyOpened = nonce ? rememberedTerminal(nonce) : null;
    if (alreadyOpened !== null) {
      this.showLine(
        alreadyOpened
          ? `Opened ${agentTitle(request)} in terminal ${alreadyOpened}`
          : `Opening ${agentTitle(request)}…`
      );
      return;
    }
    if (isStale(request)) {
      this.showOpenButton(request, nonce);
      return;
    }
    // Rendering must not wait for the server to start a terminal.
    void this.open(request, nonce);
  }

  private async open(
    request: IOpenTerminalRequest,
    nonce: string
  ): Promise<void> {
    if (nonce) {
      // Claim the nonce before the request so a re-render that races the
      // server's answer does not open a second terminal.
      rememberTerminal(nonce, '');
    }
    const title = agentTitle(request);
    this.showLine(`Opening ${title}…`);
    const opener = await waitForClaudeTerminalOpener(OPENER_WAIT_MS);
    if (opener === null) {
      this.showLine(
        `Could not open ${title}: the jupyter-cortex-claude JupyterLab plugin is not active.`,
        true
      );
      return;
    }
    try {
      const name = await opener({
        cwd: request.cwd ?? null,
        model: request.model ?? null,
        prompt: request.prompt ?? null,
        agent: request.agent === 'codex' ? 'codex' : 'claude'
      });
      if (nonce) {
        rememberTerminal(nonce, name);
      }
      this.showLine(`Opened ${title} in terminal ${name}`);
    } catch (error) {
      this.showLine(
        `Could not open ${title}: ${(error as Error).message}`,
        true
      );
    }
  }

  private showOpenButton(request: IOpenTerminalRequest, nonce: string): void {
    const title = agentTitle(request);
    this.showLine(`%cortex_claude asked for ${title} here earlier. `);
    const button = document.createElement('button');
    button.className = 'jp-Button jp-mod-styled jp-mod-accept';
    button.textContent = `Open ${title}`;
    button.addEventListener('click', () => void this.open(request, nonce), {
      once: true
    });
    this.node.appendChild(button);
  }

  private showLine(text: string, isError = false): void {
    this.node.textContent = text;
    this.toggleClass('jp-CortexClaude-error', isError);
  }
}

const rendererFactory: IRenderMime.IRendererFactory = {
  // Not safe: an untrusted notebook from elsewhere must not be able to start
  // an agent with a prompt of its choosing just by being opened.
  safe: false,
  mimeTypes: [OPEN_TERMINAL_MIME_TYPE],
  // Lower ranks win; JupyterLab's text/html renderer has rank 50 and the
  // magic puts an HTML fallback in the same bundle.
  defaultRank: 10,
  createRenderer: () => new OpenTerminalRenderer()
};

const openTerminalExtension: IRenderMime.IExtension = {
  id: 'jupyter-cortex-claude:open-terminal-renderer',
  description: 'Opens Claude Code in a terminal when %cortex_claude asks for it.',
  rendererFactory,
  rank: 10,
  dataType: 'json'
};

export default [openTerminalExtension, insertCellExtension];
