import * as vscode from 'vscode';
import type { RunStatus, StageStatus } from '../../agent/protocol';

/** Every status a run, stage or step can have. */
export type AnyStatus = RunStatus | StageStatus;

interface StatusLook {
  codicon: string;
  color?: string;
  /** The status bar's `$(name)` form. */
  bar: string;
  word: string;
}

const LOOKS: Record<AnyStatus, StatusLook> = {
  queued: { codicon: 'clock', color: 'charts.yellow', bar: 'clock', word: 'queued' },
  pending: { codicon: 'circle-outline', color: 'disabledForeground', bar: 'circle-outline', word: 'pending' },
  waiting: { codicon: 'debug-pause', color: 'charts.yellow', bar: 'debug-pause', word: 'waiting for approval' },
  running: { codicon: 'sync~spin', color: 'charts.blue', bar: 'sync~spin', word: 'running' },
  succeeded: { codicon: 'pass-filled', color: 'testing.iconPassed', bar: 'check', word: 'succeeded' },
  failed: { codicon: 'error', color: 'testing.iconFailed', bar: 'x', word: 'failed' },
  timed_out: { codicon: 'watch', color: 'testing.iconFailed', bar: 'watch', word: 'timed out' },
  cancelled: { codicon: 'circle-slash', color: 'disabledForeground', bar: 'circle-slash', word: 'cancelled' },
  skipped: { codicon: 'debug-step-over', color: 'disabledForeground', bar: 'debug-step-over', word: 'skipped' },
  interrupted: { codicon: 'debug-disconnect', color: 'charts.orange', bar: 'debug-disconnect', word: 'interrupted' },
};

/** The tree icon of a status: a codicon in a theme colour, spinning while running. */
export function statusIcon(status: AnyStatus): vscode.ThemeIcon {
  const look = LOOKS[status];
  return new vscode.ThemeIcon(look.codicon, look.color ? new vscode.ThemeColor(look.color) : undefined);
}

/** The status bar's icon syntax for a status: `$(check)`. */
export function statusBarIcon(status: AnyStatus): string {
  return `$(${LOOKS[status].bar})`;
}

/** The status as a word people read: "timed out". */
export function statusWord(status: AnyStatus): string {
  return LOOKS[status].word;
}

export const Icons = {
  folder: new vscode.ThemeIcon('root-folder'),
  environment: new vscode.ThemeIcon('server-environment'),
  offline: new vscode.ThemeIcon('debug-disconnect', new vscode.ThemeColor('charts.orange')),
  starting: new vscode.ThemeIcon('loading~spin'),
  info: new vscode.ThemeIcon('info'),
  warning: new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground')),
  error: new vscode.ThemeIcon('error', new vscode.ThemeColor('problemsErrorIcon.foreground')),
};
