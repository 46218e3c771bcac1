import * as vscode from 'vscode';
import type { SyncInfo } from '../../agent/protocol';
import { GitOpsCommands } from '../deploys/commandIds';
import type { DeployCommandArg } from '../deploys/deployArgs';
import { resolveGitOpsEnvironment, setReconcilePaused } from '../gitops/reconcileActions';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/** Resumes reconciling a paused environment: what git says is applied again by its policy. Resolves with its sync status. */
export function registerResumeReconcile(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(GitOpsCommands.resumeReconcile, async (arg?: DeployCommandArg): Promise<SyncInfo | undefined> => {
      if (!requireTrust('resume reconciling')) return undefined;
      return reportErrors(deps.log, 'Resume Reconcile', async () => {
        const target = await resolveGitOpsEnvironment(deps, arg, 'Resume reconciling which environment?', (s) => !!s.sync?.paused, 'no environment has reconciling paused');
        if (!target) return undefined;
        return setReconcilePaused(deps, target.session, target.status.name, false);
      });
    }),
  );
}
