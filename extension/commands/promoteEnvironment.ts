import * as vscode from 'vscode';
import type { DeploymentInfo } from '../../agent/protocol';
import { DeployCommands } from '../deploys/commandIds';
import { deployArgOf, pickEnvironment, resolveEnvironment, type DeployCommandArg } from '../deploys/deployArgs';
import { followDeployment } from '../deploys/followDeployment';
import { releaseName } from '../deploys/format';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/**
 * Promotes one environment's live release to another (the same artifact, by digest): the
 * target from the node or a pick, then the source from `{ from }` or a pick among the
 * environments with a live release.
 */
export function registerPromote(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(DeployCommands.promote, async (arg?: DeployCommandArg) => {
      if (!requireTrust('promote a release')) return undefined;
      return reportErrors(deps.log, 'Promote', async () => {
        const target = await resolveEnvironment(deps, arg, 'Promote to which environment?', () => true, 'conveyor.yml declares no environment');
        if (!target) return undefined;
        let from = deployArgOf(arg).from;
        if (from === undefined) {
          const statuses = await deps.deploys.load(target.session);
          const sources = statuses.filter((s) => s.name !== target.status.name && s.live);
          const source = await pickEnvironment(sources, `Promote the live release of which environment to ${target.status.name}?`, `no other environment has a live release to promote to ${target.status.name}`);
          if (!source) return undefined;
          from = source.name;
        }
        const http = await target.session.requireApi();
        const d = await http.request<DeploymentInfo>('POST', `/environments/${encodeURIComponent(target.status.name)}/promote`, { from, via: 'editor' });
        return followDeployment(deps, target.session, d, `promoting ${from} to ${releaseName(d.environment, d.toRelease)}`);
      });
    }),
  );
}
