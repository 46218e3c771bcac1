import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HostMessage, PageMessage } from '../../webview/shared/messages';
import { escapeHtml, isDashboardPage, PAGE_TITLES, type DashboardPage } from '../../webview/shared/shell';
import type { AgentEndpoint } from '../agent/agentApi';
import type { FolderSession } from '../session/folderSession';
import { errorMessage } from '../util/async';
import { dashboardHtml } from './dashboardHtml';

/** A panel's page, the folder whose agent it shows, and how it opens other pages. */
export interface DashboardPanelOptions {
  page: DashboardPage;
  session: FolderSession;
  params: Record<string, string>;
  /** dist/webview of the extension. */
  root: vscode.Uri;
  icon: vscode.Uri;
  log: vscode.LogOutputChannel;
  /** Opens another page (a link in this one). */
  open(page: DashboardPage, session: FolderSession, params: Record<string, string>): void;
  /** The folder's name goes in the title (several folders are open). */
  multiRoot: boolean;
}

/**
 * One dashboard page in an editor panel. The page calls the agent itself; the panel gives it the
 * agent's address and token, and a new token when the agent restarts on the same port (a new
 * port needs a new CSP: the page is loaded again). It opens what the page asks for: source
 * locations of failed tests, and other pages.
 */
export class DashboardPanel implements vscode.Disposable {
  readonly panel: vscode.WebviewPanel;
  /** What the page said it rendered from the agent, oldest first (one line each). */
  readonly rendered: string[] = [];
  private readonly _onDidDispose = new vscode.EventEmitter<void>();
  readonly onDidDispose = this._onDidDispose.event;
  private endpoint: AgentEndpoint | undefined;
  private params: Record<string, string>;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly opts: DashboardPanelOptions) {
    this.params = opts.params;
    this.panel = vscode.window.createWebviewPanel(`conveyor.dashboard.${opts.page}`, this.title(PAGE_TITLES[opts.page]), vscode.ViewColumn.Active, {
      enableScripts: true,
      enableFindWidget: true,
      retainContextWhenHidden: true,
      localResourceRoots: [opts.root],
    });
    this.panel.iconPath = opts.icon;
    this.disposables.push(
      this._onDidDispose,
      this.panel.webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)),
      opts.session.onDidChangeState(() => this.onSessionState()),
    );
    this.panel.onDidDispose(() => this.dispose());
    this.load();
  }

  get page(): DashboardPage {
    return this.opts.page;
  }

  /** Shows the panel, with new parameters (another run) when given. */
  show(params?: Record<string, string>): void {
    if (params && JSON.stringify(params) !== JSON.stringify(this.params)) {
      this.params = params;
      this.load();
    }
    this.panel.reveal();
  }

  private title(what: string): string {
    return `Conveyor: ${what}${this.opts.multiRoot ? ` · ${this.opts.session.folder.name}` : ''}`;
  }

  private load(): void {
    const endpoint = this.opts.session.http?.endpoint;
    if (!endpoint) {
      this.panel.webview.html = `<!doctype html><html><body><p>The Conveyor agent for ${escapeHtml(this.opts.session.folder.name)} is not connected. Start it with “Conveyor: Start Agent”.</p></body></html>`;
      return;
    }
    this.endpoint = endpoint;
    this.panel.webview.html = dashboardHtml(this.panel.webview, this.opts.root, this.opts.page, endpoint, this.params);
  }

  private post(message: HostMessage): void {
    void this.panel.webview.postMessage(message).then(undefined, () => undefined);
  }

  /** A restarted agent: a new token on the same port is posted; a new port reloads the page. */
  private onSessionState(): void {
    const s = this.opts.session;
    if (s.state === 'offline') return this.post({ type: 'offline', reason: s.offlineReason });
    const ep = s.http?.endpoint;
    if (!ep) return;
    if (!this.endpoint || ep.port !== this.endpoint.port) return this.load();
    if (ep.token !== this.endpoint.token) {
      this.endpoint = ep;
      this.post({ type: 'connection', base: `http://127.0.0.1:${ep.port}`, token: ep.token });
    }
  }

  private onMessage(raw: unknown): void {
    const m = raw as PageMessage;
    if (!m || typeof m !== 'object' || typeof m.type !== 'string') return;
    switch (m.type) {
      case 'rendered':
        if (typeof m.summary !== 'string') return;
        this.rendered.push(m.summary);
        return;
      case 'title':
        if (typeof m.title === 'string') this.panel.title = this.title(m.title.slice(0, 80));
        return;
      case 'open':
        if (typeof m.page === 'string' && isDashboardPage(m.page) && isStringRecord(m.params)) this.opts.open(m.page, this.opts.session, m.params);
        return;
      case 'openLocation':
        void this.openLocation(m.file, m.line, m.column);
        return;
    }
  }

  /** Opens a file of the folder at a line, beside the panel. Paths outside the folder are refused. */
  private async openLocation(file: unknown, line: unknown, column: unknown): Promise<void> {
    const folder = this.opts.session.folder.uri.fsPath;
    if (typeof file !== 'string' || !path.isAbsolute(file)) return;
    const relative = path.relative(folder, file);
    if (relative.startsWith('..') || path.isAbsolute(relative)) {
      this.opts.log.warn(`dashboard: not opening ${file}: it is outside ${folder}`);
      return;
    }
    const l = Math.max(0, (Number.isInteger(line) ? (line as number) : 1) - 1);
    const c = Math.max(0, (Number.isInteger(column) ? (column as number) : 1) - 1);
    try {
      await vscode.window.showTextDocument(vscode.Uri.file(file), { viewColumn: vscode.ViewColumn.Beside, selection: new vscode.Range(l, c, l, c), preserveFocus: false });
    } catch (e) {
      void vscode.window.showErrorMessage(`Conveyor: cannot open ${relative}: ${errorMessage(e)}`);
    }
  }

  dispose(): void {
    const disposables = this.disposables.splice(0);
    if (disposables.length === 0) return;
    this._onDidDispose.fire();
    for (const d of disposables.reverse()) d.dispose();
    this.panel.dispose();
  }
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'string');
}
