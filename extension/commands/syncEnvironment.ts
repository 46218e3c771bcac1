import * as vscode from 'vscode';
import type { SyncResult } from '../../agent/protocol';
import { GitOpsCommands } from '../deploys/commandIds';
import type { DeployCommandArg } from '../deploys/deployArgs';
import { resolveGitOpsEnvironment, syncNow } from '../gitops/reconcileActions';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/**
 * Applies an environment's desired state in git now, whatever its reconcile policy (or a pause)
 * says, and follows the deployment it starts. Resolves with the agent's answer.
 */
export function registerSyncEnvironment(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(GitOpsCommands.syncEnvironment, async (arg?: DeployCommandArg): Promise<SyncResult | undefined> => {
      if (!requireTrust('sync an environment')) return undefined;
      return reportErrors(deps.log, 'Sync Environment', async () => {
        const target = await resolveGitOpsEnvironment(deps, arg, 'Sync which environment with its desired state in git?');
        if (!target) return undefined;
        return syncNow(deps, target.session, target.status.name);
      });
    }),
  );
}
