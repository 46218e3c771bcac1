import * as vscode from 'vscode';
import type { SyncInfo } from '../../agent/protocol';
import { GitOpsCommands } from '../deploys/commandIds';
import type { DeployCommandArg } from '../deploys/deployArgs';
import { resolveGitOpsEnvironment, setReconcilePaused } from '../gitops/reconcileActions';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/**
 * Pauses the reconciler for an environment: commits to its desired state and drift are
 * reported, not applied, until it is resumed (a sync still applies). Resolves with its sync status.
 */
export function registerPauseReconcile(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(GitOpsCommands.pauseReconcile, async (arg?: DeployCommandArg): Promise<SyncInfo | undefined> => {
      if (!requireTrust('pause reconciling')) return undefined;
      return reportErrors(deps.log, 'Pause Reconcile', async () => {
        const target = await resolveGitOpsEnvironment(deps, arg, 'Pause reconciling which environment?', (s) => !s.sync?.paused, 'no environment is being reconciled (each one is paused, or has no desired state in git)');
        if (!target) return undefined;
        return setReconcilePaused(deps, target.session, target.status.name, true);
      });
    }),
  );
}
