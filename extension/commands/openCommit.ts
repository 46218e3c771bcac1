import * as vscode from 'vscode';
import { openCommit } from '../commit';
import { Commands } from '../constants';
import type { CommandDeps } from './deps';
import { reportErrors, resolveRun, type CommandArg } from './resolve';

/** Opens the commit a run was pinned to. */
export function registerOpenCommit(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.openCommit, async (arg?: CommandArg) => {
      const ref = await resolveRun(deps.sessions, arg, 'Open the commit of which run?', (r) => !!r.summary.commit);
      if (!ref) return undefined;
      return reportErrors(deps.log, 'Open Commit', async () => {
        await ref.session.ensureDetail(ref.runId);
        const run = ref.session.model.get(ref.runId)?.summary ?? (await (await ref.session.requireApi()).getRun(ref.runId));
        if (!run.commit) throw new Error(`run #${run.id} ran on the working tree, not a commit`);
        return openCommit(ref.session.folder.uri, run.commit, run.title ?? '');
      });
    }),
  );
}
