import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';

/** The status bar's click: shows a run in the Pipelines view, selected and expanded. */
export function registerRevealRun(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.revealRun, async (folder?: string, runId?: number) => {
      const session = folder ? deps.sessions.forFolder(folder) : deps.sessions.list()[0];
      if (!session || runId === undefined) return false;
      const node = deps.pipelines.runNode(session, runId);
      if (!node) return false;
      await deps.pipelinesView.reveal(node, { select: true, focus: true, expand: true });
      return true;
    }),
  );
}
