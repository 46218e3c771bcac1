import * as vscode from 'vscode';
import { DeployCommands } from '../deploys/commandIds';
import { resolveEnvironment, type DeployCommandArg } from '../deploys/deployArgs';
import type { CommandDeps } from './deps';
import { reportErrors } from './resolve';

/** Opens an environment's address in the browser. Resolves with the address opened. */
export function registerOpenEnvironment(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(DeployCommands.openEnvironment, async (arg?: DeployCommandArg) =>
      reportErrors(deps.log, 'Open Environment', async () => {
        const target = await resolveEnvironment(deps, arg, 'Open which environment in the browser?', (s) => !!s.url, 'no environment has an address yet: deploy one first');
        if (!target) return undefined;
        const url = target.status.url;
        if (!url) throw new Error(`${target.status.name} has no address yet: deploy it first`);
        const opened = await vscode.env.openExternal(vscode.Uri.parse(url));
        return opened ? url : undefined;
      }),
    ),
  );
}
