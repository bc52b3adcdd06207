/**
 * Hands actions from the main plugin to the MIME renderers.
 *
 * A MIME renderer extension gets no application object, so it cannot execute
 * commands. Both entry points (index.ts and mime.ts) are compiled into the same
 * federated bundle and therefore share this module instance: the main plugin
 * registers what the renderers need here when it activates, the renderers wait
 * for it.
 */
import { PromiseDelegate, ReadonlyJSONObject } from '@lumino/coreutils';

import { IOpenTerminalOptions } from './api';

/** Opens Claude Code in a new terminal and answers the terminal's name. */
export type ClaudeTerminalOpener = (
  options: IOpenTerminalOptions
) => Promise<string>;

/** Executes a JupyterLab command, as `app.commands.execute` does. */
export type CommandRunner = (
  id: string,
  args: ReadonlyJSONObject
) => Promise<unknown>;

const openerReady = new PromiseDelegate<ClaudeTerminalOpener>();
const runnerReady = new PromiseDelegate<CommandRunner>();

export function registerClaudeTerminalOpener(
  opener: ClaudeTerminalOpener
): void {
  openerReady.resolve(opener);
}

export function registerCommandRunner(runner: CommandRunner): void {
  runnerReady.resolve(runner);
}

/**
 * Answers the opener, or null if the main plugin has not activated within
 * `timeoutMs` (disabled, or it failed to load).
 */
export function waitForClaudeTerminalOpener(
  timeoutMs: number
): Promise<ClaudeTerminalOpener | null> {
  return within(openerReady.promise, timeoutMs);
}

/** Answers the command runner, or null as for the opener. */
export function waitForCommandRunner(
  timeoutMs: number
): Promise<CommandRunner | null> {
  return within(runnerReady.promise, timeoutMs);
}

function within<T>(ready: Promise<T>, timeoutMs: number): Promise<T | null> {
  const timeout = new Promise<null>(resolve =>
    window.setTimeout(() => resolve(null), timeoutMs)
  );
  return Promise.race([ready, timeout]);
}
