import * as vscode from 'vscode';
import type { DeploymentStatus, DriftItem, HealthStatus, SyncInfo } from '../../../agent/protocol';

interface Look {
  codicon: string;
  color?: string;
}

const HEALTH: Record<HealthStatus, Look> = {
  Healthy: { codicon: 'pass', color: 'testing.iconPassed' },
  Progressing: { codicon: 'sync~spin', color: 'charts.blue' },
  Degraded: { codicon: 'warning', color: 'problemsWarningIcon.foreground' },
  Missing: { codicon: 'circle-slash', color: 'disabledForeground' },
};

const DRIFT: Record<DriftItem['kind'], Look> = {
  changed: { codicon: 'diff-modified', color: 'charts.yellow' },
  missing: { codicon: 'diff-removed', color: 'testing.iconFailed' },
  extra: { codicon: 'diff-added', color: 'charts.orange' },
  stopped: { codicon: 'debug-stop', color: 'testing.iconFailed' },
};

const DEPLOYMENT: Record<DeploymentStatus, Look> = {
  queued: { codicon: 'clock', color: 'charts.yellow' },
  waiting: { codicon: 'debug-pause', color: 'charts.yellow' },
  running: { codicon: 'sync~spin', color: 'charts.blue' },
  succeeded: { codicon: 'pass-filled', color: 'testing.iconPassed' },
  rolled_back: { codicon: 'discard', color: 'charts.orange' },
  failed: { codicon: 'error', color: 'testing.iconFailed' },
  rejected: { codicon: 'circle-slash', color: 'testing.iconFailed' },
  cancelled: { codicon: 'circle-slash', color: 'disabledForeground' },
};

function icon(look: Look): vscode.ThemeIcon {
  return new vscode.ThemeIcon(look.codicon, look.color ? new vscode.ThemeColor(look.color) : undefined);
}

/**
 * An environment's health as a tree icon: pass, sync~spin, warning, circle-slash in theme
 * colours; a healthy environment whose live state is not what git says shows its check in yellow.
 */
export function environmentIcon(health: HealthStatus, sync: SyncInfo['sync'] | undefined): vscode.ThemeIcon {
  if (health === 'Healthy' && sync === 'OutOfSync') return icon({ codicon: HEALTH.Healthy.codicon, color: 'charts.yellow' });
  return icon(HEALTH[health]);
}

/** A drift item's icon by its kind: changed, missing, extra or stopped. */
export function driftIcon(kind: DriftItem['kind']): vscode.ThemeIcon {
  return icon(DRIFT[kind]);
}

/** The `$(name)` form of a health status, for Markdown tooltips. */
export function healthCodicon(health: HealthStatus): string {
  return `$(${HEALTH[health].codicon})`;
}

export function deploymentIcon(status: DeploymentStatus): vscode.ThemeIcon {
  return icon(DEPLOYMENT[status]);
}

export const EnvironmentIcons = {
  live: new vscode.ThemeIcon('rocket', new vscode.ThemeColor('testing.iconPassed')),
  release: new vscode.ThemeIcon('tag'),
  releases: new vscode.ThemeIcon('history'),
  approval: new vscode.ThemeIcon('debug-pause', new vscode.ThemeColor('charts.yellow')),
  locked: new vscode.ThemeIcon('lock', new vscode.ThemeColor('charts.yellow')),
  drift: new vscode.ThemeIcon('git-compare', new vscode.ThemeColor('charts.yellow')),
};
