import * as vscode from 'vscode';
import { DeployCommands } from '../deploys/commandIds';
import { resolveEnvironment, type DeployCommandArg } from '../deploys/deployArgs';
import type { CommandDeps } from './deps';
import { reportErrors } from './resolve';

/**
 * Destroys a preview environment (one made from a `preview: true` template for a branch): its
 * instances stop and its port is freed; its history stays. Resolves with the name destroyed.
 */
export function registerDestroyPreview(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(DeployCommands.destroyPreview, async (arg?: DeployCommandArg) =>
      reportErrors(deps.log, 'Destroy Preview', async () => {
        const target = await resolveEnvironment(deps, arg, 'Destroy which preview environment?', (s) => !!s.preview, 'there is no preview environment (conveyor preview create --branch B makes one)');
        if (!target) return undefined;
        const { status, session } = target;
        if (!status.preview) throw new Error(`${status.name} is not a preview environment`);
        const confirmed = await vscode.window.showWarningMessage(
          `Destroy ${status.name} (branch ${status.preview.branch})? Its instances stop and its port is freed.`,
          { modal: true },
          'Destroy',
        );
        if (confirmed !== 'Destroy') return undefined;
        const http = await session.requireApi();
        await http.request('DELETE', `/previews/${encodeURIComponent(status.name)}`);
        await deps.deploys.load(session);
        void vscode.window.showInformationMessage(`Conveyor: destroyed ${status.name}.`);
        return status.name;
      }),
    ),
  );
}
