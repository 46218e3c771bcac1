import * as vscode from 'vscode';
import type { StageConfig } from '../../agent/protocol';
import { Commands } from '../constants';
import { StageNode } from '../views/pipelines/stageNode';
import type { CommandDeps } from './deps';
import { startRun } from './runPipeline';
import { pickSession, reportErrors, requireTrust, type CommandArg } from './resolve';

/** Runs one stage (and what it needs): the stage named, or one picked from conveyor.yml. */
export function registerRunStage(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.runStage, async (arg?: CommandArg, stageName?: string) => {
      if (!requireTrust('run a stage')) return undefined;
      const session = await pickSession(deps.sessions, arg, 'Run a stage of which folder?');
      if (!session) return undefined;
      let stage = stageName ?? (arg instanceof StageNode ? arg.stage : undefined);
      if (!stage) {
        const stages = await reportErrors(deps.log, 'Run Stage', async () => {
          const state = session.model.config ?? (await (await session.requireApi()).config());
          if (!state.valid) throw new Error(`conveyor.yml has problems (${state.diagnostics.length}); fix them first (Conveyor: Validate Config)`);
          return state.config.pipeline.stages;
        });
        if (!stages) return undefined;
        const picked = await vscode.window.showQuickPick(
          stages.map((s: StageConfig) => ({ label: s.name, description: s.needs.length ? `needs ${s.needs.join(', ')}` : undefined, detail: s.run.map((c) => c.split('\n')[0]).join(' && ') })),
          { placeHolder: 'Run which stage? (the stages it needs run first)' },
        );
        stage = picked?.label;
      }
      if (!stage) return undefined;
      return startRun(deps, session, { stages: [stage] });
    }),
  );
}
