import * as vscode from 'vscode';
import type { DeploymentInfo } from '../../agent/protocol';
import { DeployCommands } from '../deploys/commandIds';
import { deployArgOf, resolveEnvironment, type DeployCommandArg } from '../deploys/deployArgs';
import { followDeployment } from '../deploys/followDeployment';
import { releaseName } from '../deploys/format';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/**
 * Deploys the artifact of the latest succeeded run that recorded one (or of `{ run }`) to an
 * environment the user picks, and follows the deployment to its end. A person asking is the
 * approval: a manual-promotion environment deploys at once.
 */
export function registerDeployToEnvironment(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(DeployCommands.deployToEnvironment, async (arg?: DeployCommandArg) => {
      if (!requireTrust('deploy')) return undefined;
      return reportErrors(deps.log, 'Deploy to Environment', async () => {
        const target = await resolveEnvironment(deps, arg, "Deploy the latest run's artifact to which environment?", () => true, 'conveyor.yml declares no environment');
        if (!target) return undefined;
        const { run } = deployArgOf(arg);
        const http = await target.session.requireApi();
        const d = await http.request<DeploymentInfo>('POST', `/environments/${encodeURIComponent(target.status.name)}/deploy`, { run, via: 'editor' });
        return followDeployment(deps, target.session, d, `deploying ${d.runId !== null ? `the artifact of run #${d.runId}` : 'the artifact'} to ${releaseName(d.environment, d.toRelease)}`);
      });
    }),
  );
}
