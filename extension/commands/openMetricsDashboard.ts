import * as vscode from 'vscode';
import { DashboardCommands } from '../dashboards/commandIds';
import type { DashboardPanel } from '../dashboards/dashboardPanel';
import type { Dashboards } from '../dashboards/dashboards';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, type CommandArg } from './resolve';

/** Opens the Metrics page (DORA keys, builds, durations, load trends) of a folder. Resolves with the panel. */
export function registerOpenMetricsDashboard(context: vscode.ExtensionContext, deps: CommandDeps, dashboards: Dashboards): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(DashboardCommands.openMetricsDashboard, async (arg?: CommandArg): Promise<DashboardPanel | undefined> =>
      reportErrors(deps.log, 'Open Metrics', async () => {
        const session = await pickSession(deps.sessions, arg, 'Show the metrics of which folder?');
        if (!session) return undefined;
        await session.requireApi();
        return dashboards.open('metrics', session);
      }),
    ),
  );
}
