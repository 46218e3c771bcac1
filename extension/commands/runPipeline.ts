import * as vscode from 'vscode';
import type { RunSummary, StartRunRequest } from '../../agent/protocol';
import { AgentApiError } from '../agent/agentApi';
import { Commands } from '../constants';
import type { FolderSession } from '../session/folderSession';
import { waitForEvent } from '../util/async';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, requireTrust, type CommandArg } from './resolve';

/** Options another extension or a test may pass. */
export interface RunPipelineOptions {
  folder?: string;
  stages?: string[];
  workingTree?: boolean;
}

/**
 * Starts a run through the folder's agent and reveals it in the Pipelines view. A commit-less
 * repository is offered a run on the working tree instead.
 */
export async function startRun(deps: CommandDeps, session: FolderSession, req: StartRunRequest): Promise<RunSummary | undefined> {
  return reportErrors(deps.log, 'Run Pipeline', async () => {
    const http = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: 'Conveyor: connecting to the agent' },
      () => session.requireApi(),
    );
    let run: RunSummary;
    try {
      run = await http.startRun({ trigger: 'manual', ...req });
    } catch (e) {
      if (e instanceof AgentApiError && !req.workingTree && /no commit|not in a git repository/.test(e.body.error)) {
        const choice = await vscode.window.showWarningMessage(`Conveyor: ${e.body.error}.`, 'Run on Working Tree');
        if (!choice) return undefined;
        run = await http.startRun({ trigger: 'manual', ...req, workingTree: true });
      } else {
        throw e;
      }
    }
    deps.log.info(`${session.folder.name}: started run #${run.id} (${run.requestedStages.join(', ')})`);
    vscode.window.setStatusBarMessage(`Conveyor: run #${run.id} started`, 3000);
    void revealWhenKnown(deps, session, run.id);
    return run;
  });
}

async function revealWhenKnown(deps: CommandDeps, session: FolderSession, runId: number): Promise<void> {
  if (!session.model.get(runId)) await waitForEvent(session.model.onDidChange, () => !!session.model.get(runId), 5000);
  if (!deps.pipelinesView.visible) return;
  const node = deps.pipelines.runNode(session, runId);
  if (node) await Promise.resolve(deps.pipelinesView.reveal(node, { select: true, focus: false, expand: true })).catch(() => undefined);
}

export function registerRunPipeline(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.runPipeline, async (arg?: CommandArg | RunPipelineOptions) => {
      if (!requireTrust('run the pipeline')) return undefined;
      const opts: RunPipelineOptions = arg && typeof arg === 'object' && !(arg instanceof vscode.Uri) && ('stages' in arg || 'workingTree' in arg) ? (arg as RunPipelineOptions) : {};
      const session = await pickSession(deps.sessions, (opts.folder ?? arg) as CommandArg, 'Run the pipeline of which folder?');
      if (!session) return undefined;
      return startRun(deps, session, { stages: opts.stages, workingTree: opts.workingTree });
    }),
  );
}
