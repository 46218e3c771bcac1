import * as vscode from 'vscode';
import type { DashboardPage } from '../../webview/shared/shell';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { DashboardPanel } from './dashboardPanel';

/** The dashboard panels: one per page and folder, shown again (with new parameters) when asked twice. */
export class Dashboards implements vscode.Disposable {
  private readonly panels = new Map<string, DashboardPanel>();
  private readonly root: vscode.Uri;
  private readonly icon: vscode.Uri;

  constructor(
    extensionUri: vscode.Uri,
    private readonly sessions: SessionManager,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.root = vscode.Uri.joinPath(extensionUri, 'dist', 'webview');
    this.icon = vscode.Uri.joinPath(extensionUri, 'media', 'conveyor.svg');
  }

  /** Opens (or shows) a page for a folder's agent, which must be connected. */
  open(page: DashboardPage, session: FolderSession, params: Record<string, string> = {}): DashboardPanel {
    const key = `${session.folder.uri.toString()}#${page}`;
    const existing = this.panels.get(key);
    if (existing) {
      existing.show(params);
      return existing;
    }
    const panel = new DashboardPanel({
      page,
      session,
      params,
      root: this.root,
      icon: this.icon,
      log: this.log,
      multiRoot: this.sessions.multiRoot,
      open: (p, s, q) => this.open(p, s, q),
    });
    this.panels.set(key, panel);
    panel.onDidDispose(() => this.panels.delete(key));
    return panel;
  }

  dispose(): void {
    for (const p of [...this.panels.values()]) p.dispose();
    this.panels.clear();
  }
}
