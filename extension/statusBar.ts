import * as vscode from 'vscode';
import { Commands } from './constants';
import { RunModel, type RunState } from './model/runModel';
import type { FolderSession } from './session/folderSession';
import type { SessionManager } from './session/sessionManager';
import { relativeTime, shortSha } from './util/time';
import { runTitle } from './views/pipelines/runNode';
import { statusBarIcon, statusWord } from './views/icons';

/**
 * The status bar item: the latest run on the current branch of the active folder (`$(check) #42`,
 * `$(sync~spin) #42 test`), or the agent's trouble (`$(debug-disconnect) Conveyor agent offline`).
 * A click reveals the run in the Pipelines view, or starts the agent.
 */
export class StatusBarController implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly sessionSubs = new Map<FolderSession, vscode.Disposable[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly sessions: SessionManager) {
    this.item = vscode.window.createStatusBarItem('conveyor.status', vscode.StatusBarAlignment.Left, 40);
    this.item.name = 'Conveyor';
    this.disposables.push(
      this.item,
      sessions.onDidChangeSessions(() => this.sync()),
      sessions.onDidChangeState(() => this.schedule()),
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule()),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.schedule()),
    );
    this.sync();
  }

  private sync(): void {
    const live = new Set(this.sessions.list());
    for (const [s, subs] of this.sessionSubs) {
      if (live.has(s)) continue;
      for (const d of subs) d.dispose();
      this.sessionSubs.delete(s);
    }
    for (const s of live) {
      if (!this.sessionSubs.has(s)) this.sessionSubs.set(s, [s.model.onDidChange(() => this.schedule()), s.onDidChangeBranch(() => this.schedule())]);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.update();
    }, 100);
  }

  /** The session the item speaks for: the active editor's folder, else the first. */
  private current(): FolderSession | undefined {
    const editor = vscode.window.activeTextEditor;
    return (editor && this.sessions.forUri(editor.document.uri)) || this.sessions.list()[0];
  }

  /** The run the item shows: the newest on the folder's branch (any branch when detached). */
  latestRun(session: FolderSession): RunState | undefined {
    const runs = session.model.list();
    const branch = session.branch;
    return branch ? runs.find((r) => r.summary.branch === branch) : runs[0];
  }

  update(): void {
    const session = vscode.workspace.isTrusted ? this.current() : undefined;
    if (!session) {
      this.item.hide();
      return;
    }
    const folderArg = session.folder.uri.fsPath;
    const where = this.sessions.multiRoot ? ` (${session.folder.name})` : '';
    this.item.backgroundColor = undefined;
    switch (session.state) {
      case 'offline':
        this.item.text = '$(debug-disconnect) Conveyor agent offline';
        this.item.tooltip = `Conveyor${where}: ${session.offlineReason}. Click to start the agent.`;
        this.item.command = { title: 'Start Agent', command: Commands.startAgent, arguments: [folderArg] };
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        this.item.show();
        return;
      case 'starting':
        this.item.text = '$(loading~spin) Conveyor agent starting';
        this.item.tooltip = `Conveyor${where}: starting the agent`;
        this.item.command = { title: 'Show Agent Log', command: Commands.showAgentLog, arguments: [folderArg] };
        this.item.show();
        return;
      case 'reconnecting':
      case 'connected':
        break;
    }
    const run = this.latestRun(session);
    if (!run) {
      this.item.text = session.state === 'reconnecting' ? '$(loading~spin) Conveyor' : '$(play) Conveyor';
      this.item.tooltip = `Conveyor${where}: no runs${session.branch ? ` on ${session.branch}` : ''} yet. Click to run the pipeline.`;
      this.item.command = { title: 'Run Pipeline', command: Commands.runPipeline, arguments: [folderArg] };
      this.item.show();
      return;
    }
    const s = run.summary;
    if (!run.complete && RunModel.isActive(s)) void session.ensureDetail(s.id);
    const runningStages = run.stages.filter((st) => st.status === 'running').map((st) => st.name);
    let text = `${statusBarIcon(s.status)} #${s.id}`;
    if (s.status === 'running' && runningStages.length) text += ` ${runningStages.join(', ')}`;
    if (session.state === 'reconnecting') text += ' $(debug-disconnect)';
    this.item.text = text;
    const details = [s.branch, shortSha(s.commit), relativeTime(s.startedAt ?? s.queuedAt)].filter(Boolean).join(' · ');
    this.item.tooltip = `Conveyor${where}: run #${s.id} ${statusWord(s.status)}: ${runTitle(s)}\n${details}${
      session.state === 'reconnecting' ? '\nReconnecting to the agent…' : ''
    }\nClick to show it in the Pipelines view.`;
    this.item.command = { title: 'Show Run', command: Commands.revealRun, arguments: [folderArg, s.id] };
    if (s.status === 'failed' || s.status === 'interrupted') this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    this.item.show();
  }

  dispose(): void {
    clearTimeout(this.timer);
    for (const subs of this.sessionSubs.values()) for (const d of subs) d.dispose();
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
