import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, requireTrust, type CommandArg } from './resolve';

export function registerRestartAgent(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.restartAgent, async (arg?: CommandArg) => {
      if (!requireTrust('restart the agent')) return;
      const session = await pickSession(deps.sessions, arg, 'Restart the agent of which folder?');
      if (!session) return;
      await reportErrors(deps.log, 'Restart Agent', () =>
        vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Conveyor: restarting the agent for ${session.folder.name}` }, () =>
          session.restartAgent(),
        ),
      );
    }),
  );
}
