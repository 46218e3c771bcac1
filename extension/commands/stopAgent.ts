import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, type CommandArg } from './resolve';

export function registerStopAgent(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.stopAgent, async (arg?: CommandArg) => {
      const session = await pickSession(deps.sessions, arg, 'Stop the agent of which folder?');
      if (!session) return;
      await reportErrors(deps.log, 'Stop Agent', () => session.stopAgent());
    }),
  );
}
