import * as vscode from 'vscode';
import { DashboardCommands } from '../dashboards/commandIds';
import type { DashboardPanel } from '../dashboards/dashboardPanel';
import type { Dashboards } from '../dashboards/dashboards';
import { RunNode } from '../views/pipelines/runNode';
import { StageNode } from '../views/pipelines/stageNode';
import { StepNode } from '../views/pipelines/stepNode';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, resolveRun, type CommandArg } from './resolve';

/**
 * Opens the Run page: the run a tree item or an ID names, else the folder's newest run (the page
 * then moves to each new run). Resolves with the panel.
 */
export function registerOpenRunDashboard(context: vscode.ExtensionContext, deps: CommandDeps, dashboards: Dashboards): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(DashboardCommands.openRunDashboard, async (arg?: CommandArg): Promise<DashboardPanel | undefined> =>
      reportErrors(deps.log, 'Open Run Dashboard', async () => {
        const ref = namesRun(arg) ? await resolveRun(deps.sessions, arg, 'Show which run?') : undefined;
        const session = ref?.session ?? (await pickSession(deps.sessions, arg, 'Show the runs of which folder?'));
        if (!session) return undefined;
        await session.requireApi();
        return dashboards.open('run', session, ref ? { run: String(ref.runId) } : {});
      }),
    ),
  );
}

/** A tree item of a run, a run number ("42", "#42") or `{ runId }`; anything else names at most a folder. */
function namesRun(arg: CommandArg): boolean {
  if (arg instanceof RunNode || arg instanceof StageNode || arg instanceof StepNode || typeof arg === 'number') return true;
  if (typeof arg === 'string') return /^#?\d+$/.test(arg);
  return !!arg && typeof arg === 'object' && 'runId' in arg && typeof arg.runId === 'number';
}
