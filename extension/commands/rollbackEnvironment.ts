import * as vscode from 'vscode';
import type { DeploymentInfo } from '../../agent/protocol';
import { DeployCommands } from '../deploys/commandIds';
import { deployArgOf, pickRelease, resolveEnvironment, type DeployCommandArg } from '../deploys/deployArgs';
import { followDeployment } from '../deploys/followDeployment';
import { otherReleases, releaseName } from '../deploys/format';
import { ReleaseNode } from '../views/environments/releaseNode';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/**
 * Deploys an earlier release again (no rebuild): the environment from the node or a pick, the
 * release from the node, `{ release }` or a pick among those that are not live.
 */
export async function rollback(deps: CommandDeps, arg: DeployCommandArg): Promise<DeploymentInfo | undefined> {
  if (!requireTrust('roll back')) return undefined;
  return reportErrors(deps.log, 'Rollback', async () => {
    const target = await resolveEnvironment(
      deps,
      arg,
      'Roll back which environment?',
      (s) => otherReleases(s).length > 0,
      'no environment has a release to roll back to',
    );
    if (!target) return undefined;
    const { status, session } = target;
    let to = arg instanceof ReleaseNode ? arg.release.number : deployArgOf(arg).release;
    if (to === undefined) {
      const release = await pickRelease(status, `Roll ${status.name}${status.live ? ` back from ${releaseName(status.name, status.live.number)}` : ''} to which release?`);
      if (!release) return undefined;
      to = release.number;
    }
    const http = await session.requireApi();
    const d = await http.request<DeploymentInfo>('POST', `/environments/${encodeURIComponent(status.name)}/rollback`, { to, via: 'editor' });
    return followDeployment(deps, session, d, `rolling ${status.name} back to ${releaseName(status.name, d.toRelease)}`);
  });
}

export function registerRollback(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(vscode.commands.registerCommand(DeployCommands.rollback, (arg?: DeployCommandArg) => rollback(deps, arg)));
}
