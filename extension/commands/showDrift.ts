import * as vscode from 'vscode';
import type { DeployCommandArg } from '../deploys/deployArgs';
import { GitOpsCommands } from '../deploys/commandIds';
import { resolveGitOpsEnvironment } from '../gitops/reconcileActions';
import type { StateDocumentPair } from '../gitops/stateDocuments';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/**
 * Opens a diff of an environment's desired state in git against its live state, both read-only
 * documents filled from the agent (asked again each time, so the live side is current).
 * Resolves with the two documents.
 */
export function registerShowDrift(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(GitOpsCommands.showDrift, async (arg?: DeployCommandArg): Promise<StateDocumentPair | undefined> => {
      if (!requireTrust('show drift')) return undefined;
      return reportErrors(deps.log, 'Show Drift', async () => {
        const target = await resolveGitOpsEnvironment(deps, arg, 'Show the drift of which environment?');
        if (!target) return undefined;
        const name = target.status.name;
        const pair = await deps.states.load(target.session, name);
        await vscode.commands.executeCommand('vscode.diff', pair.desired, pair.live, `${name}: desired (git) ↔ live`);
        return pair;
      });
    }),
  );
}
