import * as vscode from 'vscode';
import type { ApprovalInfo, DeploymentInfo } from '../../agent/protocol';
import { Commands } from '../constants';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage } from '../util/async';
import { DeployCommands } from './commandIds';
import type { DeployEvents, EnvironmentStore } from './environmentStore';
import { approvalTitle, deploymentWord, firstLine, releaseName } from './format';

/** One notification shown (tests read them). */
export interface DeployNotice {
  kind: 'failed' | 'rolled_back' | 'approval';
  folder: string;
  message: string;
  actions: string[];
  deploymentId?: number;
  approvalId?: number;
}

const SHOW_LOGS = 'Show Logs';
const OPEN_RUN = 'Open Run';
const APPROVE = 'Approve';
const REJECT = 'Reject';

/**
 * Tells the user what needs them: a deployment that ended failed or rolled back (whether a
 * pipeline's deploy stage or a command started it), and a promotion waiting for approval. Each
 * deployment and each approval is told of once per window, however many events or commands
 * report it.
 */
export class DeployNotifications implements vscode.Disposable {
  /** Every notification shown, in order. */
  readonly notices: DeployNotice[] = [];
  private readonly told = new Set<string>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sessions: SessionManager,
    private readonly store: EnvironmentStore,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      store.onDidReceive((batch) => this.onEvents(batch)),
      // Approvals already pending when the folder connects are told of too.
      store.onDidChange(({ session }) => {
        for (const s of store.statuses(session) ?? []) if (s.pendingApproval) this.approvalPending(session, s.pendingApproval);
      }),
    );
  }

  private onEvents({ session, events }: DeployEvents): void {
    for (const e of events) {
      if (e.type === 'deployment.changed') this.deploymentEnded(session, e.deployment);
      else if (e.type === 'approval.changed' && e.approval.status === 'pending') this.approvalPending(session, e.approval);
    }
  }

  private once(session: FolderSession, key: string): boolean {
    const k = `${session.folder.uri.toString()}#${key}`;
    if (this.told.has(k)) return false;
    this.told.add(k);
    return true;
  }

  /**
   * A deployment ended: a warning when it was rolled back (the release before still serves), an
   * error when it failed; nothing for other ends. True when this call showed the notification.
   */
  deploymentEnded(session: FolderSession, d: DeploymentInfo): boolean {
    if (d.status !== 'failed' && d.status !== 'rolled_back') return false;
    if (!this.once(session, `deployment-${d.id}`)) return false;
    const origin = d.trigger === 'rollback' ? `rollback #${d.id} of ${d.environment} to release ${d.toRelease}` : `deploy #${d.id} of ${releaseName(d.environment, d.toRelease)}`;
    const why = firstLine(d.reason);
    const where = this.sessions.multiRoot ? ` in ${session.folder.name}` : '';
    const message = `Conveyor: ${origin}${where} ${deploymentWord(d.status)}${why ? `: ${why}` : ''}${d.runId !== null ? ` (run #${d.runId})` : ''}`;
    const actions: string[] = [];
    if (d.runId !== null && d.stage) actions.push(SHOW_LOGS);
    if (d.runId !== null) actions.push(OPEN_RUN);
    this.notices.push({ kind: d.status, folder: session.folder.uri.fsPath, message, actions, deploymentId: d.id });
    this.log.warn(`${session.folder.name}: ${message.replace(/^Conveyor: /, '')}`);
    const shown = d.status === 'failed' ? vscode.window.showErrorMessage(message, ...actions) : vscode.window.showWarningMessage(message, ...actions);
    void Promise.resolve(shown)
      .then((choice) => {
        const folder = session.folder.uri.fsPath;
        if (choice === SHOW_LOGS) return vscode.commands.executeCommand(Commands.showLogs, { folder, runId: d.runId, stage: d.stage });
        if (choice === OPEN_RUN) return this.openRun(session, d.runId!);
        return undefined;
      })
      .then(undefined, (e: unknown) => this.log.error(`${message}: ${errorMessage(e)}`));
    return true;
  }

  /** A promotion waits for a person: `production@2 is waiting for approval`, with Approve and Reject. */
  approvalPending(session: FolderSession, a: ApprovalInfo): boolean {
    if (a.status !== 'pending' || !this.once(session, `approval-${a.id}`)) return false;
    const where = this.sessions.multiRoot ? ` in ${session.folder.name}` : '';
    const message = `Conveyor: ${approvalTitle(a)}${where}${a.runId !== null ? ` (run #${a.runId})` : ''}.`;
    const actions = [APPROVE, REJECT];
    this.notices.push({ kind: 'approval', folder: session.folder.uri.fsPath, message, actions, approvalId: a.id });
    const arg = { folder: session.folder.uri.fsPath, approvalId: a.id };
    void Promise.resolve(vscode.window.showInformationMessage(message, ...actions))
      .then((choice) => {
        if (choice === APPROVE) return vscode.commands.executeCommand(DeployCommands.approve, arg);
        if (choice === REJECT) return vscode.commands.executeCommand(DeployCommands.reject, arg);
        return undefined;
      })
      .then(undefined, (e: unknown) => this.log.error(`${message}: ${errorMessage(e)}`));
    return true;
  }

  private async openRun(session: FolderSession, runId: number): Promise<void> {
    const shown = await vscode.commands.executeCommand<boolean>(Commands.revealRun, session.folder.uri.fsPath, runId);
    if (!shown) void vscode.window.showInformationMessage(`Conveyor: run #${runId} is not in the Pipelines view any more.`);
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
