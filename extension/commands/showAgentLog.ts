import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';
import { folderHint, type CommandArg } from './resolve';

/**
 * Shows the agent's output: the "Conveyor Agent" channel for agents this window started, the
 * agent's `.conveyor/agent.log` for one started elsewhere (a terminal, another window).
 */
export function registerShowAgentLog(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.showAgentLog, async (arg?: CommandArg) => {
      const hint = folderHint(arg);
      const session = hint ? deps.sessions.forFolder(hint) : deps.sessions.list().length === 1 ? deps.sessions.list()[0] : undefined;
      if (session && !session.ownsAgent && session.state === 'connected') {
        const file = path.join(session.folder.uri.fsPath, '.conveyor', 'agent.log');
        if (fs.existsSync(file)) {
          await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
          return;
        }
      }
      deps.agentOutput.show(true);
    }),
  );
}
