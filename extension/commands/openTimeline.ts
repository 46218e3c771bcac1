import * as vscode from 'vscode';
import { DashboardCommands } from '../dashboards/commandIds';
import type { DashboardPanel } from '../dashboards/dashboardPanel';
import type { Dashboards } from '../dashboards/dashboards';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, type CommandArg } from './resolve';

/** Opens the Timeline page (every event, filterable, with what changed before incidents) of a folder. Resolves with the panel. */
export function registerOpenTimeline(context: vscode.ExtensionContext, deps: CommandDeps, dashboards: Dashboards): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(DashboardCommands.openTimeline, async (arg?: CommandArg): Promise<DashboardPanel | undefined> =>
      reportErrors(deps.log, 'Open Timeline', async () => {
        const session = await pickSession(deps.sessions, arg, 'Show the timeline of which folder?');
        if (!session) return undefined;
        await session.requireApi();
        return dashboards.open('timeline', session);
      }),
    ),
  );
}
