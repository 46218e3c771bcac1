import * as vscode from 'vscode';
import { Commands } from '../constants';
import { RunModel } from '../model/runModel';
import type { CommandDeps } from './deps';
import { reportErrors, resolveRun, type CommandArg } from './resolve';

export function registerCancelRun(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.cancelRun, async (arg?: CommandArg) => {
      const ref = await resolveRun(deps.sessions, arg, 'Cancel which run?', (r) => RunModel.isActive(r.summary));
      if (!ref) return undefined;
      return reportErrors(deps.log, `Cancel run #${ref.runId}`, async () => {
        const run = await (await ref.session.requireApi()).cancelRun(ref.runId);
        vscode.window.setStatusBarMessage(`Conveyor: run #${run.id} ${run.status === 'cancelled' ? 'cancelled' : 'cancelling'}`, 3000);
        return run;
      });
    }),
  );
}
