import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AgentLaunch, BackoffPolicy } from '../agent/supervisor';
import { CONFIG_FILE_NAMES, Commands, ContextKeys, Settings } from '../constants';
import { errorMessage } from '../util/async';
import { FolderSession, type SessionState } from './folderSession';

export interface SessionManagerOptions {
  log: vscode.LogOutputChannel;
  agentOutput: vscode.OutputChannel;
  /** Absolute path of the bundled agent (dist/cli.js). */
  bundledCli: string;
  backoff?: Partial<BackoffPolicy>;
}

/** 'connected' when some folder is, else 'starting' when some folder is on its way, else 'offline'. */
export type OverallState = 'connected' | 'starting' | 'offline' | 'none';

/**
 * One FolderSession per workspace folder that has a conveyor.yml, in a trusted workspace.
 * Watches for the file to appear, for folders to come and go, for trust to be granted and for
 * settings to change; keeps the context keys of the manifest's `when` clauses up to date.
 */
export class SessionManager implements vscode.Disposable {
  private readonly sessions = new Map<string, FolderSession>();
  /** Folders with a conveyor.yml, trusted or not. */
  private readonly configFolders = new Set<string>();
  private readonly sessionSubs = new Map<string, vscode.Disposable[]>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly _onDidChangeSessions = new vscode.EventEmitter<void>();
  /** A session was added or removed. */
  readonly onDidChangeSessions = this._onDidChangeSessions.event;
  private readonly _onDidChangeState = new vscode.EventEmitter<FolderSession>();
  /** A session's state changed. */
  readonly onDidChangeState = this._onDidChangeState.event;
  private started = false;
  private disposed = false;
  /** The crash warnings and give-up errors shown to the user, in order (tests read them). */
  readonly notices: { folder: string; kind: 'crashed' | 'gaveUp'; message: string }[] = [];

  constructor(private readonly opts: SessionManagerOptions) {
    this.disposables.push(this._onDidChangeSessions, this._onDidChangeState);
  }

  /** Begins the background work; returns at once. */
  start(): void {
    void vscode.commands.executeCommand('setContext', ContextKeys.activated, true);
    this.updateContext();
    this.disposables.push(
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.opts.log.info('workspace trusted: starting');
        this.startTrusted();
      }),
    );
    if (!vscode.workspace.isTrusted) {
      this.opts.log.info('Restricted Mode: Conveyor starts no agent and runs nothing until the workspace is trusted');
      // Only looks: the views and the palette can say there is a conveyor.yml they cannot run.
      for (const folder of vscode.workspace.workspaceFolders ?? []) void this.scanFolder(folder);
      return;
    }
    this.startTrusted();
  }

  private startTrusted(): void {
    if (this.started || this.disposed) return;
    this.started = true;
    const watcher = vscode.workspace.createFileSystemWatcher(`**/{${CONFIG_FILE_NAMES.join(',')}}`, false, true, true);
    this.disposables.push(
      watcher,
      watcher.onDidCreate((uri) => {
        const folder = vscode.workspace.getWorkspaceFolder(uri);
        if (folder && path.dirname(uri.fsPath) === folder.uri.fsPath) {
          this.configFolders.add(folder.uri.toString());
          this.addSession(folder);
        }
      }),
      vscode.workspace.onDidChangeWorkspaceFolders((e) => {
        for (const f of e.removed) {
          this.configFolders.delete(f.uri.toString());
          this.removeSession(f);
        }
        for (const f of e.added) void this.scanFolder(f);
        this.updateContext();
      }),
      vscode.workspace.onDidChangeConfiguration((e) => this.onSettingsChanged(e)),
    );
    for (const folder of vscode.workspace.workspaceFolders ?? []) void this.scanFolder(folder);
  }

  private async scanFolder(folder: vscode.WorkspaceFolder): Promise<void> {
    for (const name of CONFIG_FILE_NAMES) {
      try {
        await vscode.workspace.fs.stat(vscode.Uri.joinPath(folder.uri, name));
        this.configFolders.add(folder.uri.toString());
        if (vscode.workspace.isTrusted) this.addSession(folder);
        this.updateContext();
        return;
      } catch {
        // not this name
      }
    }
    this.updateContext();
  }

  private addSession(folder: vscode.WorkspaceFolder): void {
    const key = folder.uri.toString();
    if (this.sessions.has(key) || this.disposed || folder.uri.scheme !== 'file') return;
    const session = new FolderSession({
      folder,
      log: this.opts.log,
      agentOutput: (f, line) => this.opts.agentOutput.appendLine(this.multiRoot ? `[${f.name}] ${line}` : line),
      launch: (f) => this.launchFor(f),
      autoStart: () => vscode.workspace.getConfiguration(Settings.section, folder.uri).get<boolean>(Settings.autoStart, true),
      onCrashed: (s, detail) => this.tellCrashed(s, detail),
      onGaveUp: (s, detail) => this.tellGaveUp(s, detail),
      backoff: this.opts.backoff,
    });
    this.sessions.set(key, session);
    this.sessionSubs.set(key, [
      session.onDidChangeState(() => {
        this.updateContext();
        this._onDidChangeState.fire(session);
      }),
    ]);
    this.opts.log.info(`folder ${folder.name}: following its agent`);
    session.start();
    this.updateContext();
    this._onDidChangeSessions.fire();
  }

  private removeSession(folder: vscode.WorkspaceFolder): void {
    const key = folder.uri.toString();
    const session = this.sessions.get(key);
    if (!session) return;
    this.sessions.delete(key);
    for (const d of this.sessionSubs.get(key) ?? []) d.dispose();
    this.sessionSubs.delete(key);
    session.dispose();
    this._onDidChangeSessions.fire();
  }

  /** The sessions in workspace folder order. */
  list(): FolderSession[] {
    const order = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
    return [...this.sessions.entries()].sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0])).map(([, s]) => s);
  }

  get multiRoot(): boolean {
    return this.sessions.size > 1;
  }

  forFolder(folder: vscode.WorkspaceFolder | vscode.Uri | string): FolderSession | undefined {
    if (typeof folder === 'string') {
      return this.list().find((s) => s.folder.uri.fsPath === folder || s.folder.name === folder || s.folder.uri.toString() === folder);
    }
    const uri = folder instanceof vscode.Uri ? folder : folder.uri;
    return this.sessions.get(uri.toString());
  }

  forUri(uri: vscode.Uri): FolderSession | undefined {
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    return folder ? this.sessions.get(folder.uri.toString()) : undefined;
  }

  /**
   * The session a command acts on: the one named, the only one, the active editor's, or the
   * user's pick. Undefined when there is none (or the pick was dismissed).
   */
  async pick(placeHolder: string, hint?: vscode.WorkspaceFolder | vscode.Uri | string): Promise<FolderSession | undefined> {
    if (hint) {
      const s = this.forFolder(hint);
      if (s) return s;
    }
    const all = this.list();
    if (all.length <= 1) return all[0];
    // The active editor's folder comes first.
    const active = vscode.window.activeTextEditor && this.forUri(vscode.window.activeTextEditor.document.uri);
    const ordered = active ? [active, ...all.filter((s) => s !== active)] : all;
    const items = ordered.map((s) => ({ label: s.folder.name, description: s.folder.uri.fsPath, session: s }));
    const picked = await vscode.window.showQuickPick(items, { placeHolder, matchOnDescription: true });
    return picked?.session;
  }

  get overallState(): OverallState {
    const states = this.list().map((s) => s.state);
    if (states.length === 0) return 'none';
    if (states.includes('connected')) return 'connected';
    if (states.some((s: SessionState) => s === 'starting' || s === 'reconnecting')) return 'starting';
    return 'offline';
  }

  private updateContext(): void {
    const set = (key: string, value: unknown) => void vscode.commands.executeCommand('setContext', key, value);
    set(ContextKeys.hasConfig, this.sessions.size > 0 || this.configFolders.size > 0);
    set(ContextKeys.agentState, this.overallState);
    set(ContextKeys.multiRoot, this.multiRoot);
  }

  /** The agent command line for a folder: conveyor.agent.path, or the bundled agent under this editor's runtime. */
  launchFor(folder: vscode.WorkspaceFolder): AgentLaunch {
    const config = vscode.workspace.getConfiguration(Settings.section, folder.uri);
    const configured = (config.get<string>(Settings.agentPath) ?? '').trim();
    const runOnCommit = config.get<boolean>(Settings.runOnCommit, true);
    const args = ['agent', '--workspace', folder.uri.fsPath, ...(runOnCommit ? [] : ['--no-commit-trigger'])];
    // The editor's own runtime runs JavaScript agents: Node in a server, Electron as Node on a desktop.
    const env = { ...process.env, ELECTRON_RUN_AS_NODE: '1' };
    if (!configured) return { command: process.execPath, args: [this.opts.bundledCli, ...args], env };
    const program = path.isAbsolute(configured) ? configured : path.join(folder.uri.fsPath, configured);
    if (/\.(c|m)?js$/.test(program)) return { command: process.execPath, args: [program, ...args], env };
    return { command: program, args, env };
  }

  private onSettingsChanged(e: vscode.ConfigurationChangeEvent): void {
    const key = (k: string) => `${Settings.section}.${k}`;
    if (e.affectsConfiguration(key(Settings.autoStart))) for (const s of this.list()) s.poke();
    if (e.affectsConfiguration(key(Settings.agentPath)) || e.affectsConfiguration(key(Settings.runOnCommit))) {
      const owned = this.list().filter((s) => s.ownsAgent);
      if (owned.length === 0) return;
      void vscode.window
        .showInformationMessage('Conveyor: restart the agent to apply the new settings?', 'Restart Agent')
        .then(async (choice) => {
          if (choice) for (const s of owned) await s.restartAgent();
        })
        .then(undefined, (err: unknown) => this.opts.log.error(`restart failed: ${errorMessage(err)}`));
    }
  }

  private tellCrashed(session: FolderSession, detail: string): void {
    const message = `Conveyor: the agent for ${session.folder.name} stopped unexpectedly (${detail}). Restarting it.`;
    this.notices.push({ folder: session.folder.uri.fsPath, kind: 'crashed', message });
    void vscode.window
      .showWarningMessage(message, 'Show Agent Log')
      .then((choice) => (choice ? vscode.commands.executeCommand(Commands.showAgentLog, session.folder.uri.fsPath) : undefined))
      .then(undefined, () => undefined);
  }

  private tellGaveUp(session: FolderSession, detail: string): void {
    const message = `Conveyor: the agent for ${session.folder.name} keeps failing (${detail}). It will not be restarted until you start it.`;
    this.notices.push({ folder: session.folder.uri.fsPath, kind: 'gaveUp', message });
    void vscode.window
      .showErrorMessage(message, 'Show Agent Log', 'Start Agent')
      .then((choice) => {
        if (choice === 'Show Agent Log') return vscode.commands.executeCommand(Commands.showAgentLog, session.folder.uri.fsPath);
        if (choice === 'Start Agent') return vscode.commands.executeCommand(Commands.startAgent, session.folder.uri.fsPath);
        return undefined;
      })
      .then(undefined, () => undefined);
  }

  dispose(): void {
    this.disposed = true;
    for (const key of [...this.sessions.keys()]) {
      const s = this.sessions.get(key)!;
      this.removeSession(s.folder);
    }
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
