/**
 * Renders the chat widget's "copy to a cell": inserts the code into a new
 * cell below the active one (the cell holding the chat, whose button was just
 * clicked), once.
 *
 * The kernel cannot edit the notebook, so the widget displays a bundle of this
 * MIME type in its own output area; rendering it is the moment to act. It uses
 * JupyterLab's own notebook commands, so the extension does not bundle
 * @jupyterlab/notebook.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { waitForCommandRunner } from './bridge';

export const INSERT_CELL_MIME_TYPE =
  'application/vnd.jupyter-cortex-claude.insert-cell+json';

/** The widget's request, as it appears in the output bundle. */
interface IInsertCellRequest {
  code?: string;
  nonce?: string;
  /** When the button was clicked, in seconds since the epoch. */
  created_at?: number;
}

const INSERTED_NONCE_PREFIX = 'jupyter-cortex-claude:inserted:';
const RUNNER_WAIT_MS = 15_000;
/** Older requests come from a saved notebook opened again: they only offer a button. */
const AUTO_INSERT_MAX_AGE_SECONDS = 60;

function alreadyInserted(nonce: string): boolean {
  try {
    return window.sessionStorage.getItem(INSERTED_NONCE_PREFIX + nonce) !== null;
  } catch {
    return false;
  }
}

function rememberInserted(nonce: string): void {
  try {
    window.sessionStorage.setItem(INSERTED_NONCE_PREFIX + nonce, '1');
  } catch {
    // Storage can be full or disabled; the worst case is a second cell.
  }
}

export class InsertCellRenderer extends Widget implements IRenderMime.IRenderer {
  constructor() {
    super();
    this.addClass('jp-CortexClaude-insertCellOutput');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const request = (model.data[INSERT_CELL_MIME_TYPE] ??
      {}) as IInsertCellRequest;
    const code = typeof request.code === 'string' ? request.code : '';
    const nonce = typeof request.nonce === 'string' ? request.nonce : '';
    if (nonce && alreadyInserted(nonce)) {
      this.showLine('Inserted into a new cell below.');
      return;
    }
    const age =
      typeof request.created_at === 'number'
        ? Date.now() / 1000 - request.created_at
        : 0;
    if (age > AUTO_INSERT_MAX_AGE_SECONDS) {
      this.showInsertButton(code, nonce);
      return;
    }
    void this.insert(code, nonce);
  }

  private async insert(code: string, nonce: string): Promise<void> {
    if (nonce) {
      rememberInserted(nonce); // before the commands: a re-render must not insert twice
    }
    const run = await waitForCommandRunner(RUNNER_WAIT_MS);
    if (run === null) {
      this.showLine(
        'Could not insert a cell: the jupyter-cortex-claude JupyterLab plugin is not active.',
        true
      );
      return;
    }
    try {
      await run('notebook:insert-cell-below', {});
      await run('notebook:replace-selection', { text: code });
      this.showLine('Inserted into a new cell below.');
    } catch (error) {
      this.showLine(`Could not insert a cell: ${(error as Error).message}`, true);
    }
  }

  private showInsertButton(code: string, nonce: string): void {
    this.showLine('');
    const button = document.createElement('button');
    button.className = 'jp-Button jp-mod-styled';
    button.textContent = 'Insert the code into a new cell';
    button.addEventListener('click', () => void this.insert(code, nonce), {
      once: true
    });
    this.node.appendChild(button);
  }

  private showLine(text: string, isError = false): void {
    this.node.textContent = text;
    this.toggleClass('jp-CortexClaude-error', isError);
  }
}

export const insertCellExtension: IRenderMime.IExtension = {
  id: 'jupyter-cortex-claude:insert-cell-renderer',
  description: "Inserts the chat widget's code into a new cell below.",
  rendererFactory: {
    // Not safe: an untrusted notebook must not edit itself just by being opened.
    safe: false,
    mimeTypes: [INSERT_CELL_MIME_TYPE],
    defaultRank: 10,
    createRenderer: () => new InsertCellRenderer()
  },
  rank: 10,
  dataType: 'json'
};
