import * as vscode from 'vscode';
import type { DeploymentInfo } from '../../agent/protocol';
import type { CommandDeps } from '../commands/deps';
import type { FolderSession } from '../session/folderSession';
import { DeployCommands } from './commandIds';
import { deploymentWord, firstLine, isFinished, releaseName } from './format';

const OPEN_IN_BROWSER = 'Open in Browser';

function stateLine(d: DeploymentInfo): string {
  switch (d.status) {
    case 'queued':
      return `deploy #${d.id} queued: waiting for the lock of ${d.environment}`;
    case 'waiting':
      return `deploy #${d.id} waiting for approval`;
    case 'running':
      return `deploy #${d.id} running`;
    default:
      return `deploy #${d.id} ${deploymentWord(d.status)}`;
  }
}

/**
 * Shows a deployment's progress in a notification until it ends (its status, then each
 * progress line the agent reports), then tells how it ended: the release is live, or the
 * rolled-back/failed notification (once per deployment, shared with the event notifications),
 * or why it was rejected or cancelled. Dismissing the progress stops following, not the
 * deployment. Resolves with the deployment as last known.
 */
export async function followDeployment(deps: CommandDeps, session: FolderSession, first: DeploymentInfo, title: string): Promise<DeploymentInfo> {
  deps.log.info(`${session.folder.name}: ${title}: deploy #${first.id} (${first.environment} → release ${first.toRelease}, ${first.status})`);
  const last = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Conveyor: ${title}`, cancellable: true },
    (progress, token) => {
      progress.report({ message: stateLine(first) });
      return deps.deploys.waitForEnd(session, first, ({ deployment, message }) => progress.report({ message: message ?? stateLine(deployment) }), token);
    },
  );
  tellEnd(deps, session, last);
  return last;
}

function tellEnd(deps: CommandDeps, session: FolderSession, d: DeploymentInfo): void {
  if (!isFinished(d)) {
    vscode.window.setStatusBarMessage(`Conveyor: deploy #${d.id} goes on (${deploymentWord(d.status)})`, 5000);
    return;
  }
  deps.log.info(`${session.folder.name}: deploy #${d.id} ${deploymentWord(d.status)}${d.reason ? `: ${d.reason}` : ''}`);
  switch (d.status) {
    case 'succeeded': {
      const url = deps.deploys.status(session, d.environment)?.url;
      const message = `Conveyor: ${releaseName(d.environment, d.toRelease)} is live (deploy #${d.id}).`;
      // Not awaited: the command ends with the deployment, not when the message is dismissed.
      void Promise.resolve(vscode.window.showInformationMessage(message, ...(url ? [OPEN_IN_BROWSER] : [])))
        .then((choice) => (choice === OPEN_IN_BROWSER ? vscode.commands.executeCommand(DeployCommands.openEnvironment, { folder: session.folder.uri.fsPath, environment: d.environment }) : undefined))
        .then(undefined, () => undefined);
      return;
    }
    case 'failed':
    case 'rolled_back':
      deps.deployNotifications.deploymentEnded(session, d);
      return;
    case 'rejected':
    case 'cancelled':
      vscode.window.setStatusBarMessage(`Conveyor: deploy #${d.id} ${deploymentWord(d.status)}${d.reason ? `: ${firstLine(d.reason)}` : ''}`, 8000);
      return;
    default:
      return;
  }
}
