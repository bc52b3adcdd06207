/**
 * JupyterLab side of jupyter-cortex-claude: a launcher tile, palette commands
 * and a status bar item that open Claude Code, running on Snowflake Cortex, in
 * a Jupyter terminal. The server extension prepares the terminal's environment;
 * this plugin only asks for the terminal and shows it.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import {
  AGENT_TITLES,
  CortexClaudeError,
  createClaudeTerminal,
  IOpenTerminalOptions
} from './api';
import { registerClaudeTerminalOpener, registerCommandRunner } from './bridge';
import { CortexStatusItem, showHealthDialog } from './health';
import { claudeTerminalIcon, codexTerminalIcon } from './icon';

namespace CommandIDs {
  export const open = 'cortex-claude:open';
  export const openCodex = 'cortex-claude:open-codex';
  export const openInNotebookFolder = 'cortex-claude:open-in-notebook-folder';
  export const status = 'cortex-claude:status';
}

/** JupyterLab's own command that shows an existing terminal session by name. */
const TERMINAL_OPEN_COMMAND = 'terminal:open';

const PALETTE_CATEGORY = 'Claude Code (Cortex)';
const LAUNCHER_LABEL = 'Claude Code (Cortex)';
const CODEX_LAUNCHER_LABEL = 'Codex (Cortex)';

function optionalString(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null;
}

/** Notebook panels carry this class; checking it avoids bundling @jupyterlab/notebook. */
const NOTEBOOK_PANEL_CLASS = 'jp-NotebookPanel';

interface IDocumentLike {
  context?: { path?: unknown };
}

/**
 * Remembers the notebook the person last worked in, so "open in the
 * notebook's folder" still knows it while the palette or a terminal has focus.
 */
class LastNotebookPath {
  constructor(private readonly app: JupyterFrontEnd, labShell: ILabShell | null) {
    labShell?.currentChanged.connect((_, change) => this.consider(change.newValue));
  }

  /** The path of the current or last focused notebook, or null. */
  get path(): string | null {
    this.consider(this.app.shell.currentWidget);
    if (this.notebook === null || this.notebook.isDisposed) {
      return null;
    }
    const path = (this.notebook as IDocumentLike).context?.path;
    return typeof path === 'string' ? path : null;
  }

  private consider(widget: Widget | null): void {
    if (widget !== null && widget.hasClass(NOTEBOOK_PANEL_CLASS)) {
      this.notebook = widget;
    }
  }

  private notebook: Widget | null = null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-cortex-claude:plugin',
  description:
    'Open Claude Code on Snowflake Cortex in a terminal: launcher tile, commands, status bar.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, IStatusBar, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    labShell: ILabShell | null
  ) => {
    const { commands } = app;
    const serverSettings = app.serviceManager.serverSettings;
    const lastNotebook = new LastNotebookPath(app, labShell);

    const openClaudeTerminal = async (
      options: IOpenTerminalOptions
    ): Promise<string> => {
      if (!commands.hasCommand(TERMINAL_OPEN_COMMAND)) {
        throw new CortexClaudeError(
          'JupyterLab has no terminal: the terminal extension is disabled or ' +
            'this Jupyter server runs without terminals (jupyter_server_terminals).'
        );
      }
      const name = await createClaudeTerminal(options, serverSettings);
      await commands.execute(TERMINAL_OPEN_COMMAND, { name });
      return name;
    };

    commands.addCommand(CommandIDs.open, {
      label: args =>
        args.isPalette ? 'Open Claude Code in a Terminal' : LAUNCHER_LABEL,
      caption:
        'Open a terminal running Claude Code on Snowflake Cortex models',
      icon: args => (args.isPalette ? undefined : claudeTerminalIcon),
      execute: async args => {
        const options: IOpenTerminalOptions = {
          cwd: optionalString(args.cwd),
          model: optionalString(args.model),
          prompt: optionalString(args.prompt),
          agent: args.agent === 'codex' ? 'codex' : 'claude'
        };
        try {
          const name = await openClaudeTerminal(options);
          return { name };
        } catch (error) {
          void showErrorMessage(
            `Could not open ${AGENT_TITLES[options.agent ?? 'claude']}`,
            error as Error
          );
          throw error;
        }
      }
    });

    commands.addCommand(CommandIDs.openCodex, {
      label: args =>
        args.isPalette ? 'Open Codex in a Terminal' : CODEX_LAUNCHER_LABEL,
      caption:
        'Open a terminal running the Codex CLI on Snowflake Cortex models',
      icon: args => (args.isPalette ? undefined : codexTerminalIcon),
      execute: args =>
        commands.execute(CommandIDs.open, {
          cwd: optionalString(args.cwd),
          model: optionalString(args.model),
          prompt: optionalString(args.prompt),
          agent: 'codex'
        })
    });

    commands.addCommand(CommandIDs.openInNotebookFolder, {
      label: "Open Claude Code in the Notebook's Folder",
      caption: 'Open Claude Code in the folder of the current notebook',
      isEnabled: () => lastNotebook.path !== null,
      execute: async args => {
        const notebookPath = lastNotebook.path;
        if (notebookPath === null) {
          return;
        }
        // A path may carry a drive prefix ("RTC:dir/nb.ipynb"); the server
        // wants a plain path relative to its root.
        const localPath = app.serviceManager.contents.localPath(notebookPath);
        return commands.execute(CommandIDs.open, {
          cwd: PathExt.dirname(localPath),
          model: optionalString(args.model),
          prompt: optionalString(args.prompt)
        });
      }
    });

    commands.addCommand(CommandIDs.status, {
      label: 'Show Cortex Connection Status',
      caption: 'Show whether the Cortex gateway is configured and reachable',
      execute: () => showHealthDialog(serverSettings)
    });

    registerCommandRunner((id, args) => commands.execute(id, args));

    registerClaudeTerminalOpener(async options => {
      const result = (await commands.execute(CommandIDs.open, {
        cwd: options.cwd ?? null,
        model: options.model ?? null,
        prompt: options.prompt ?? null,
        agent: options.agent ?? 'claude'
      })) as { name: string };
      return result.name;
    });

    // Rank 1 puts the tile right after JupyterLab's Terminal tile (rank 0).
    launcher?.add({
      command: CommandIDs.open,
      category: 'Other',
      rank: 1
    });
    launcher?.add({
      command: CommandIDs.openCodex,
      category: 'Other',
      rank: 2
    });

    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: PALETTE_CATEGORY, args: {} });
      }
    }

    if (statusBar) {
      const item = new CortexStatusItem(serverSettings, () => {
        // The dialog checks the way to Snowflake; the item shows the result too.
        void commands
          .execute(CommandIDs.status)
          .then(() => item.refresh());
      });
      statusBar.registerStatusItem('jupyter-cortex-claude:status', {
        item,
        align: 'left',
        rank: 100
      });
    }
  }
};

export default plugin;
