import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust, resolveRun, type CommandArg } from './resolve';

export function registerRerunRun(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.rerunRun, async (arg?: CommandArg) => {
      if (!requireTrust('re-run a run')) return undefined;
      const ref = await resolveRun(deps.sessions, arg, 'Re-run which run?');
      if (!ref) return undefined;
      return reportErrors(deps.log, `Re-run #${ref.runId}`, async () => {
        const run = await (await ref.session.requireApi()).rerun(ref.runId);
        vscode.window.setStatusBarMessage(`Conveyor: run #${run.id} started (re-run of #${ref.runId})`, 3000);
        return run;
      });
    }),
  );
}
