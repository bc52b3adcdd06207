/**
 * Hands the "open Claude Code" action from the main plugin to the MIME renderer.
 *
 * A MIME renderer extension gets no application object, so it cannot execute
 * commands. Both entry points (index.ts and mime.ts) are compiled into the same
 * federated bundle and therefore share this module instance: the main plugin
 * registers the opener here when it activates, the renderer waits for it.
 */
import { PromiseDelegate } from '@lumino/coreutils';

import { IOpenTerminalOptions } from './api';

/** Opens Claude Code in a new terminal and answers the terminal's name. */
export type ClaudeTerminalOpener = (
  options: IOpenTerminalOptions
) => Promise<string>;

const openerReady = new PromiseDelegate<ClaudeTerminalOpener>();

export function registerClaudeTerminalOpener(
  opener: ClaudeTerminalOpener
): void {
  openerReady.resolve(opener);
}

/**
 * Answers the opener, or null if the main plugin has not activated within
 * `timeoutMs` (disabled, or it failed to load).
 */
export function waitForClaudeTerminalOpener(
  timeoutMs: number
): Promise<ClaudeTerminalOpener | null> {
  const timeout = new Promise<null>(resolve =>
    window.setTimeout(() => resolve(null), timeoutMs)
  );
  return Promise.race([openerReady.promise, timeout]);
}
