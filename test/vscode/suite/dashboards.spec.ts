/**
 * Runs inside the real VS Code extension host (code-server), on the repository that
 * test/vscode/dashboards.test.ts made: "Conveyor: Open Metrics" and "Conveyor: Open Run Dashboard"
 * open webview panels whose pages call the extension's real agent and render what it says. The
 * outer test looks into the webviews' DOM through the workbench page; this suite waits for its
 * word (a file in $CONVEYOR_DASHBOARD_SIGNALS per page) before it closes each panel. In another
 * workspace it skips itself.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RunSummary } from '../../../agent/protocol';
import type { DashboardPanel } from '../../../extension/dashboards/dashboardPanel';
import type { FolderSession } from '../../../extension/session/folderSession';
import { connectedSession, conveyor, finishedRun, until } from './helpers';

/** The suite's title: test/vscode/dashboards.test.ts runs only it (CONVEYOR_SUITE_GREP), by this text. */
const DASHBOARDS_SUITE = 'Conveyor dashboards in editor webviews';

describe(DASHBOARDS_SUITE, function () {
  this.timeout(180_000);
  const signals = process.env.CONVEYOR_DASHBOARD_SIGNALS ?? '';
  let session: FolderSession;
  let run: RunSummary;

  /** Waits until the outer test has seen the page in the webview; it writes what it read. */
  async function seenOutside(page: string): Promise<string> {
    const file = path.join(signals, page);
    console.log(`[dashboards] ${page} panel open`);
    return until(() => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined), `the outer test to check the ${page} webview`, 120_000);
  }

  before(async function () {
    if (!signals) this.skip();
    const api = await conveyor();
    session = await connectedSession(api);
    const started = await vscode.commands.executeCommand<RunSummary>('conveyor.runPipeline');
    assert.ok(started, 'Run Pipeline started a run');
    run = (await finishedRun(session, started.id)).summary;
    assert.equal(run.status, 'succeeded');
  });

  it('Open Metrics opens a panel whose page renders the agent’s figures', async () => {
    const panel = await vscode.commands.executeCommand<DashboardPanel>('conveyor.openMetricsDashboard');
    assert.ok(panel, 'the command resolved with its panel');
    assert.equal(panel.page, 'metrics');
    assert.equal(panel.panel.title, 'Conveyor: Metrics');
    assert.equal(panel.panel.webview.options.enableScripts, true);
    const roots = panel.panel.webview.options.localResourceRoots ?? [];
    assert.equal(roots.length, 1);
    assert.match(roots[0].path, /\/dist\/webview$/, 'the page may load only the built pages');
    await until(() => panel.rendered.find((s) => /(^|\s)1 run$/.test(s)), 'the page to render the build figures');
    assert.match(await seenOutside('metrics'), /^1 run · 1 succeeded/);
    panel.dispose();
  });

  it('Open Run Dashboard opens the run a tree item names, with its stage graph', async () => {
    const panel = await vscode.commands.executeCommand<DashboardPanel>('conveyor.openRunDashboard', { runId: run.id });
    assert.ok(panel);
    await until(() => panel.rendered.includes(`Run #${run.id} succeeded`), 'the run page to render');
    await until(() => panel.panel.title === `Conveyor: Run #${run.id}`, 'the panel title to name the run');
    assert.match(await seenOutside('run'), new RegExp(`Run #${run.id} succeeded[\\s\\S]*build[\\s\\S]*test`));
    // Asked again for the same page: the same panel is shown.
    const again = await vscode.commands.executeCommand<DashboardPanel>('conveyor.openRunDashboard', { runId: run.id });
    assert.equal(again, panel);
    // The agent restarts (another token, most likely another port): the panel gives the page the new agent.
    const before = panel.rendered.length;
    const oldPid = session.agentPid;
    await vscode.commands.executeCommand('conveyor.restartAgent');
    await until(() => session.state === 'connected' && session.agentPid !== oldPid, 'the restarted agent', 90_000);
    await until(() => panel.rendered.length > before, 'the page to render from the restarted agent', 60_000);
    assert.equal(panel.rendered[panel.rendered.length - 1], `Run #${run.id} succeeded`);
    panel.dispose();
  });
});
