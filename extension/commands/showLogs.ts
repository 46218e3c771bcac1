import * as vscode from 'vscode';
import { Commands } from '../constants';
import type { LogTerminal } from '../logs/logTerminal';
import { StageNode } from '../views/pipelines/stageNode';
import { StepNode } from '../views/pipelines/stepNode';
import type { CommandDeps } from './deps';
import { reportErrors, resolveRun, type CommandArg } from './resolve';

/** `{ runId, stage, attempt?, step? }` names a log without a node. */
interface LogArg {
  folder?: string;
  runId: number;
  stage?: string;
  attempt?: number;
  step?: number;
}

/** Opens a stage's or step's log in a terminal: the log so far, then live output. */
export function registerShowLogs(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.showLogs, async (arg?: CommandArg | LogArg): Promise<LogTerminal | undefined> => {
      if (arg instanceof StepNode) {
        return deps.logTerminals.show({ session: arg.session, runId: arg.runId, stage: arg.stage, attempt: arg.attempt, step: arg.index }, true);
      }
      if (arg instanceof StageNode) return deps.logTerminals.show({ session: arg.session, runId: arg.runId, stage: arg.stage }, true);
      const ref = await resolveRun(deps.sessions, arg as CommandArg, 'Show the logs of which run?');
      if (!ref) return undefined;
      const given = arg && typeof arg === 'object' && 'runId' in arg ? (arg as LogArg) : undefined;
      let stage = given?.stage;
      if (!stage) {
        await ref.session.ensureDetail(ref.runId);
        const stages = ref.session.model.get(ref.runId)?.stages ?? [];
        if (stages.length === 1) stage = stages[0].name;
        else {
          const picked = await vscode.window.showQuickPick(
            stages.map((s) => ({ label: s.name, description: s.status })),
            { placeHolder: `Show the log of which stage of run #${ref.runId}?` },
          );
          stage = picked?.label;
        }
      }
      if (!stage) return undefined;
      const target = { session: ref.session, runId: ref.runId, stage, attempt: given?.step !== undefined ? (given.attempt ?? 1) : undefined, step: given?.step };
      return reportErrors(deps.log, 'Show Logs', async () => deps.logTerminals.show(target, true));
    }),
  );
}
