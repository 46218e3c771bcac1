import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, requireTrust, type CommandArg } from './resolve';

export function registerStartAgent(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.startAgent, async (arg?: CommandArg) => {
      if (!requireTrust('start the agent')) return false;
      const session = await pickSession(deps.sessions, arg, 'Start the agent of which folder?');
      if (!session) return false;
      const ok = await reportErrors(deps.log, 'Start Agent', () =>
        vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Conveyor: starting the agent for ${session.folder.name}` }, async () => {
          await session.startAgent();
          return true;
        }),
      );
      return ok === true;
    }),
  );
}
