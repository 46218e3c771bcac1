import * as vscode from 'vscode';
import type { Alert, SequencedEvent } from '../../agent/protocol';
import { Commands } from '../constants';
import type { DeployEvents, EnvironmentStore } from '../deploys/environmentStore';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage } from '../util/async';
import { ToldOnce } from '../util/toldOnce';

/** One alert notification shown (tests read them). */
export interface AlertNotice {
  folder: string;
  alertId: number;
  message: string;
  actions: string[];
}

const OPEN_RUN = 'Open Run';
const SNOOZE = 'Snooze 1 Hour';
const RESOLVE = 'Resolve';

/**
 * Tells the user of each new alert once, with actions: open the run it is about, snooze it for
 * an hour, or resolve it. Repeats of an open or snoozed alert only count on it in the agent, so
 * they are not told again. Drift and rollback alerts are told by the drift and deploy notifications.
 */
export class AlertNotifications implements vscode.Disposable {
  readonly notices: AlertNotice[] = [];
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
    for (const e of events as SequencedEvent[]) if (e.type === 'alert.changed') this.alertChanged(session, e.alert);
  }

  /** Shows a new alert. True when this call showed it. */
  alertChanged(session: FolderSession, a: Alert): boolean {
    if (a.status !== 'open' || a.count !== 1 || a.rule === 'drift' || a.rule === 'rollback') return false;
    if (!this.told.first(`${session.folder.uri.toString()}#${a.id}`)) return false;
    const where = this.sessions.multiRoot ? ` (${session.folder.name})` : '';
    const message = `Conveyor${where}: ${a.title}`;
    const actions = [...(a.runId !== null ? [OPEN_RUN] : []), SNOOZE, RESOLVE];
    this.notices.push({ folder: session.folder.uri.fsPath, alertId: a.id, message, actions });
    (a.severity === 'error' ? this.log.error : this.log.warn).call(this.log, `${session.folder.name}: alert #${a.id}: ${a.title}`);
    const show = a.severity === 'error' ? vscode.window.showErrorMessage : vscode.window.showWarningMessage;
    void Promise.resolve(show(message, ...actions))
      .then(async (choice) => {
        if (choice === OPEN_RUN) return vscode.commands.executeCommand(Commands.revealRun, session.folder.uri.fsPath, a.runId);
        if (choice === SNOOZE || choice === RESOLVE) {
          const http = await session.requireApi();
          return choice === SNOOZE ? http.request<Alert>('POST', `/alerts/${a.id}/snooze`, { for: '1h', via: 'editor' }) : http.request<Alert>('POST', `/alerts/${a.id}/resolve`, { via: 'editor' });
        }
        return undefined;
      })
      .then(undefined, (err: unknown) => this.log.error(`alert #${a.id}: ${errorMessage(err)}`));
    return true;
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
