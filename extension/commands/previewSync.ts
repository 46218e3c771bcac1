import * as vscode from 'vscode';
import type { SyncResult } from '../../agent/protocol';
import { GitOpsCommands } from '../deploys/commandIds';
import type { DeployCommandArg } from '../deploys/deployArgs';
import { nothingToDo, resolveGitOpsEnvironment, syncNow } from '../gitops/reconcileActions';
import { shortSha } from '../util/time';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

const SYNC_NOW = 'Sync now';

/**
 * Asks the agent what a sync of an environment would do (a dry run: nothing is deployed) and
 * shows the plan in a modal dialog, whose "Sync now" applies it. Resolves with the dry run's
 * answer, or with the sync's when it was applied.
 */
export function registerPreviewSync(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(GitOpsCommands.previewSync, async (arg?: DeployCommandArg): Promise<SyncResult | undefined> => {
      if (!requireTrust('preview a sync')) return undefined;
      return reportErrors(deps.log, 'Preview Sync', async () => {
        const target = await resolveGitOpsEnvironment(deps, arg, 'Preview the sync of which environment?');
        if (!target) return undefined;
        const { session, status } = target;
        const http = await session.requireApi();
        const preview = await http.syncEnvironment(status.name, { dryRun: true, via: 'editor' });
        if (preview.plan.length === 0) {
          void vscode.window.showInformationMessage(`Conveyor: ${status.name}: ${nothingToDo(preview.sync)}.`);
          return preview;
        }
        const at = preview.sync.revision ? ` at ${shortSha(preview.sync.revision)}` : '';
        const choice = await vscode.window.showInformationMessage(
          `Sync ${status.name} with ${preview.sync.file}${at}?`,
          { modal: true, detail: preview.plan.map((line) => `• ${line}`).join('\n') },
          SYNC_NOW,
        );
        if (choice !== SYNC_NOW) return preview;
        return syncNow(deps, session, status.name);
      });
    }),
  );
}
