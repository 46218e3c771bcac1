import * as vscode from 'vscode';
import type { SequencedEvent } from '../../agent/protocol';
import { GitOpsCommands } from '../deploys/commandIds';
import type { DeployEvents, EnvironmentStore } from '../deploys/environmentStore';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage } from '../util/async';
import { ToldOnce } from '../util/toldOnce';

/** One drift notification shown (tests read them). */
export interface DriftNotice {
  folder: string;
  environment: string;
  /** The drift.detected event's sequence number. */
  seq: number;
  message: string;
  actions: string[];
}

type DriftEvent = Extract<SequencedEvent, { type: 'drift.detected' }>;

const SHOW_DRIFT = 'Show Drift';
const SYNC = 'Sync';

/**
 * Tells the user of drift nobody corrects: a drift.detected event the reconciler reported (its
 * policy does not heal, or reconciling is paused), once per event, with Show Drift and Sync.
 * Drift being healed, or healed, is not told: the Environments view shows it.
 */
export class DriftNotifications implements vscode.Disposable {
  /** Every notification shown, in order. */
  readonly notices: DriftNotice[] = [];
  private readonly told = new ToldOnce();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sessions: SessionManager,
    store: EnvironmentStore,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(store.onDidReceive((batch) => this.onEvents(batch)));
  }

  private onEvents({ session, events }: DeployEvents): void {
    for (const e of events) if (e.type === 'drift.detected') this.driftDetected(session, e);
  }

  /** Shows the notification of a reported drift event. True when this call showed it. */
  driftDetected(session: FolderSession, e: DriftEvent): boolean {
    if (e.action !== 'reported' && e.action !== 'paused') return false;
    if (e.items.length === 0 || !this.told.first(`${session.folder.uri.toString()}#${e.seq}`)) return false;
    const where = this.sessions.multiRoot ? ` (${session.folder.name})` : '';
    const more = e.items.length > 1 ? ` (and ${e.items.length - 1} more)` : '';
    const paused = e.action === 'paused' ? '; reconciling is paused' : '';
    const message = `Conveyor: Drift in ${e.environment}${where}: ${e.items[0].message}${more}${paused}.`;
    const actions = [SHOW_DRIFT, SYNC];
    this.notices.push({ folder: session.folder.uri.fsPath, environment: e.environment, seq: e.seq, message, actions });
    this.log.warn(`${session.folder.name}: ${message.replace(/^Conveyor: /, '')}`);
    const arg = { folder: session.folder.uri.fsPath, environment: e.environment };
    void Promise.resolve(vscode.window.showWarningMessage(message, ...actions))
      .then((choice) => {
        if (choice === SHOW_DRIFT) return vscode.commands.executeCommand(GitOpsCommands.showDrift, arg);
        if (choice === SYNC) return vscode.commands.executeCommand(GitOpsCommands.syncEnvironment, arg);
        return undefined;
      })
      .then(undefined, (err: unknown) => this.log.error(`${message}: ${errorMessage(err)}`));
    return true;
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
