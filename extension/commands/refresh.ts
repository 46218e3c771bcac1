import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';

/** Reloads every folder's runs and config from its agent. */
export function registerRefresh(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.refresh, () => {
      for (const s of deps.sessions.list()) s.refresh();
      deps.pipelines.scheduler.schedule();
    }),
  );
}
