import { LabIcon } from '@jupyterlab/ui-components';

/** A terminal prompt with a spark: "an agent in a terminal". */
const CLAUDE_TERMINAL_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <rect class="jp-icon3" fill="#616161" x="1.5" y="3.5" width="21" height="17" rx="2.5"/>
  <path fill="#ffffff" d="M5.2 8.6l1.1-1.1 4.3 4.3-4.3 4.3-1.1-1.1 3.2-3.2z"/>
  <rect fill="#ffffff" x="11" y="15" width="5" height="1.6" rx="0.5"/>
  <path fill="#d97757" d="M18.5 5.6l.6 1.7 1.7.6-1.7.6-.6 1.7-.6-1.7-1.7-.6 1.7-.6z"/>
</svg>`;

export const claudeTerminalIcon = new LabIcon({
  name: 'jupyter-cortex-claude:claude-terminal',
  svgstr: CLAUDE_TERMINAL_SVG
});

/** The same terminal with a ring of dots instead of the spark: Codex, on the same gateway. */
const CODEX_TERMINAL_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <rect class="jp-icon3" fill="#616161" x="1.5" y="3.5" width="21" height="17" rx="2.5"/>
  <path fill="#ffffff" d="M5.2 8.6l1.1-1.1 4.3 4.3-4.3 4.3-1.1-1.1 3.2-3.2z"/>
  <rect fill="#ffffff" x="11" y="15" width="5" height="1.6" rx="0.5"/>
  <circle fill="none" stroke="#10a37f" stroke-width="1.4" cx="18.4" cy="7.4" r="2.1"/>
</svg>`;

export const codexTerminalIcon = new LabIcon({
  name: 'jupyter-cortex-claude:codex-terminal',
  svgstr: CODEX_TERMINAL_SVG
});
