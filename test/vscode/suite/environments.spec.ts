/**
 * Runs inside the real VS Code extension host (code-server), on the deploying repository that
 * test/vscode/environments.test.ts made (a tiny Node server, packaged and deployed with the
 * `process` runtime to staging, then production after an approval; qa only from the editor):
 * the Environments view, the deploy commands and the deploy notifications, through the
 * extension's real agent. In another workspace it skips itself.
 *
 * The user's side of the dialogs is scripted: window.showQuickPick, showInputBox and the
 * notification functions are replaced for the suite (and put back after), answering as a
 * person would and recording what was asked; env.openExternal records the address it is given.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ApprovalInfo, DeploymentInfo, EnvironmentStatus, RunSummary, SequencedEvent } from '../../../agent/protocol';
import type { ConveyorTestApi } from '../../../extension/extension';
import type { LogTerminal } from '../../../extension/logs/logTerminal';
import type { FolderSession } from '../../../extension/session/folderSession';
import type { EnvironmentTreeNode } from '../../../extension/views/environments/environmentNode';
import type { EnvironmentSnapshot } from '../../../extension/views/environments/environmentsProvider';
import { serviceGet } from '../../support/service';
import { connectedSession, conveyor, finishedRun, isAlive, until, workspaceFolder } from './helpers';
import { ScriptedUser } from './scriptedUser';

/** The suite's title: test/vscode/environments.test.ts runs only it (CONVEYOR_SUITE_GREP), by this text. */
const ENVIRONMENTS_SUITE = 'Conveyor Environments view and deploy commands';

/** How long a deploy step may take here: generous, never a timing assertion. */
const DEPLOY_WAIT = 90_000;

describe(ENVIRONMENTS_SUITE, function () {
  this.timeout(DEPLOY_WAIT * 2);
  let folder: string;
  let api: ConveyorTestApi;
  let session: FolderSession;

  const user = new ScriptedUser();
  const shown = user.shown;
  const quickPicks: { placeHolder: string; labels: string[] }[] = [];
  let pickAnswers: string[] = [];
  const inputBoxes: vscode.InputBoxOptions[] = [];
  let inputAnswers: (string | undefined)[] = [];
  const opened: string[] = [];

  function snapshot(): EnvironmentSnapshot[] {
    return api.environments.snapshot();
  }

  function envSnap(name: string): EnvironmentSnapshot | undefined {
    return snapshot().find((e) => e.kind === 'environment' && e.label === name);
  }

  function status(name: string): EnvironmentStatus | undefined {
    return api.deploys.status(session, name);
  }

  function node(name: string): EnvironmentTreeNode {
    const n = api.environments.getChildren().find((c) => c.kind === 'environment' && c.name === name);
    assert.ok(n, `the tree has a node for ${name}`);
    return n;
  }

  function git(...args: string[]): string {
    return execFileSync('git', args, { cwd: folder, encoding: 'utf8' });
  }

  /** Commits a new server.js made from the first one: another greeting, and a broken /healthz when asked. */
  function commitServer(greeting: string, healthy: boolean): void {
    const file = path.join(folder, 'server.js');
    const first = git('rev-list', '--max-parents=0', 'HEAD').trim();
    const text = git('show', `${first}:server.js`).replace('"hello v1"', JSON.stringify(greeting)).replace(/writeHead\((200|500)\)/, `writeHead(${healthy ? 200 : 500})`);
    fs.writeFileSync(file, text);
    git('commit', '-q', '-am', `${greeting}${healthy ? '' : ' (broken health check)'}`);
  }

  async function runPipeline(): Promise<RunSummary> {
    const run = await vscode.commands.executeCommand<RunSummary>('conveyor.runPipeline');
    assert.ok(run, 'Run Pipeline started a run');
    return run;
  }

  async function events(): Promise<SequencedEvent[]> {
    return session.http!.request<SequencedEvent[]>('GET', '/events?since=0&limit=10000');
  }

  before(async function () {
    folder = workspaceFolder();
    if (!fs.existsSync(path.join(folder, 'server.js')) || !/kind: deploy/.test(fs.readFileSync(path.join(folder, 'conveyor.yml'), 'utf8'))) this.skip();
    api = await conveyor();
    session = await connectedSession(api);

    user.answerNotifications();
    user.replace(vscode.window, 'showQuickPick', async (items: readonly vscode.QuickPickItem[] | Thenable<readonly vscode.QuickPickItem[]>, options?: vscode.QuickPickOptions) => {
      const list = await items;
      quickPicks.push({ placeHolder: options?.placeHolder ?? '', labels: list.map((i) => i.label) });
      const want = pickAnswers.shift();
      return list.find((i) => i.label === want);
    });
    user.replace(vscode.window, 'showInputBox', async (options?: vscode.InputBoxOptions) => {
      inputBoxes.push(options ?? {});
      return inputAnswers.shift();
    });
    user.replace(vscode.env, 'openExternal', async (uri: vscode.Uri) => {
      opened.push(uri.toString(true));
      return true;
    });
  });

  after(function () {
    user.restore();
  });

  it('lists staging, production and qa before any deployment: runtime, promotion, nothing running', async function () {
    const envs = await until(() => {
      const s = snapshot();
      return s.length === 3 && status('qa') ? s : undefined;
    }, 'three environments with their statuses');
    assert.deepEqual(
      envs.map((e) => [e.label, e.description, e.icon, e.iconColor, e.children.length]),
      [
        ['staging', 'process · auto promotion', 'circle-slash', 'disabledForeground', 0],
        ['production', 'process · manual promotion', 'circle-slash', 'disabledForeground', 0],
        ['qa', 'process · auto promotion', 'circle-slash', 'disabledForeground', 0],
      ],
    );
    assert.match(envs[0].tooltip, /nothing deployed yet/);
  });

  it('runs the pipeline: staging is live and Healthy with release 1; production waits for approval', async function () {
    const run = await runPipeline();
    // In sync with its desired state in git (the deploy committed it) and healthy.
    const staging = await until(() => {
      const e = envSnap('staging');
      return e?.description === 'process · auto promotion · Synced · Healthy · @1' && e.children.some((c) => c.kind === 'live') ? e : undefined;
    }, 'staging Synced and Healthy with a live release', DEPLOY_WAIT);
    assert.equal(staging.icon, 'pass');
    assert.equal(staging.iconColor, 'testing.iconPassed');
    const live = staging.children.find((c) => c.kind === 'live')!;
    assert.equal(live.label, 'staging@1');
    const head = git('rev-parse', 'HEAD').trim();
    assert.match(live.description, new RegExp(`^live · [0-9a-f]{12} · ${head.slice(0, 7)} · (just now|\\d+ s ago|\\d+ min ago) by \\S+ \\(pipeline\\)$`));
    const url = status('staging')!.url!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    // The address and its Open in Browser action are in the tooltips, the absolute time on hover.
    for (const tip of [staging.tooltip, live.tooltip]) {
      assert.ok(tip.includes(url), tip);
      assert.match(tip, /\[Open in Browser\]\(command:conveyor\.openEnvironment\?/);
    }
    assert.match(staging.tooltip, /since .*\d.* \((just now|\d+ s ago|\d+ min ago)\) by /);
    assert.match(staging.contextValue!, /^environment\b.*\bhealth:Healthy\b.*\bhasUrl\b/);
    assert.equal((await serviceGet(`${url}/`)).body, 'hello v1');

    const production = await until(() => {
      const e = envSnap('production');
      return e?.children.some((c) => c.kind === 'approval') ? e : undefined;
    }, 'the pending approval under production', DEPLOY_WAIT);
    const approval = production.children.find((c) => c.kind === 'approval')!;
    assert.equal(approval.label, 'production@1 is waiting for approval');
    assert.match(approval.description, new RegExp(`^approval #\\d+ · run #${run.id} · `));
    assert.equal(approval.contextValue, 'approval pending');
    assert.equal(approval.icon, 'debug-pause');
    assert.equal(production.description, 'process · manual promotion · approval pending');

    // One notification for it, with Approve and Reject.
    const notice = await until(() => shown.find((s) => s.message.includes('production@1 is waiting for approval')), 'the approval notification');
    assert.deepEqual([notice.severity, notice.actions], ['info', ['Approve', 'Reject']]);
    assert.equal(api.deployNotifications.notices.filter((n) => n.kind === 'approval').length, 1);
  });

  it('approves through the command, with a reason asked in an InputBox: production goes live and the run succeeds', async function () {
    const runId = status('production')!.pendingApproval!.runId!;
    inputAnswers = ['checked on staging'];
    const done = await vscode.commands.executeCommand<DeploymentInfo>('conveyor.approve');
    assert.ok(done, 'Approve resolved with the deployment it let through');
    assert.deepEqual([done.environment, done.toRelease, done.status], ['production', 1, 'succeeded']);
    assert.equal(inputBoxes.length, 1, 'the reason was asked once');
    assert.equal(inputBoxes[0].title, 'Approve production@1');

    const decided = (await events()).filter((e): e is Extract<SequencedEvent, { type: 'approval.changed' }> => e.type === 'approval.changed').map((e) => e.approval);
    const approved = decided.find((a: ApprovalInfo) => a.status === 'approved');
    assert.ok(approved, 'the agent recorded the approval');
    assert.equal(approved.reason, 'checked on staging');
    assert.match(approved.decidedBy!, /\(editor\)$/);

    const production = await until(() => {
      const e = envSnap('production');
      return e?.icon === 'pass' && e.children.some((c) => c.kind === 'live') && !e.children.some((c) => c.kind === 'approval') ? e : undefined;
    }, 'production live, its approval gone', DEPLOY_WAIT);
    assert.equal(production.children.find((c) => c.kind === 'live')!.label, 'production@1');
    assert.equal((await serviceGet(`${status('production')!.url}/`)).body, 'hello v1');
    assert.equal((await finishedRun(session, runId, DEPLOY_WAIT)).summary.status, 'succeeded');
  });

  it('a broken release is rolled back: one warning with Show Logs and Open Run, staging stays on release 1', async function () {
    commitServer('hello v2', false);
    // Open Run is pressed on the rolled-back warning.
    user.pressOn = (s) => (s.severity === 'warning' && /rolled back/.test(s.message) ? 'Open Run' : undefined);
    const run = await runPipeline();

    // While the broken release is checked, the deployment holds staging's lock.
    const deploying = await until(() => envSnap('staging')?.children.find((c) => c.kind === 'deployment'), 'the deployment in progress under staging', DEPLOY_WAIT);
    assert.match(deploying.label, /^#\d+ → staging@2$/);
    assert.match(deploying.description, /^running · .*holds the lock/);
    assert.match(deploying.contextValue!, /^deployment\b.*\bcurrent\b.*\bhasLogs\b/);

    // The node's Show Logs (its inline action passes the node) follows the deploy stage's log live.
    const deploymentNode = api.environments.getChildren(node('staging')).find((c) => c.kind === 'deployment');
    assert.ok(deploymentNode);
    const pty = await vscode.commands.executeCommand<LogTerminal>('conveyor.showLogs', deploymentNode);
    assert.ok(pty, 'Show Logs opened a terminal');
    assert.equal(pty, api.logTerminals.get({ session, runId: run.id, stage: 'staging' }), "the staging stage's log of the run");
    await pty.ready;
    await until(() => /rolled back: staging@1 still serves/.test(pty.transcript) && /✘ failed/.test(pty.transcript), 'the rollback and the failed step in the live log', DEPLOY_WAIT).catch(
      (e: Error) => {
        throw new Error(`${e.message}; the terminal shows ${JSON.stringify(pty.transcript)}`);
      },
    );

    assert.equal((await finishedRun(session, run.id, DEPLOY_WAIT)).summary.status, 'failed');
    const notice = await until(() => api.deployNotifications.notices.find((n) => n.kind === 'rolled_back'), 'the rolled-back notification', DEPLOY_WAIT);
    assert.match(notice.message, new RegExp(`^Conveyor: deploy #\\d+ of staging@2 rolled back: .*500.* \\(run #${run.id}\\)$`));
    assert.deepEqual(notice.actions, ['Show Logs', 'Open Run']);
    const warnings = shown.filter((s) => s.severity === 'warning' && s.message === notice.message);
    assert.equal(warnings.length, 1, 'shown as one warning');

    // Open Run showed the run in the Pipelines view, selected.
    await until(() => {
      const selected = api.pipelinesView.selection[0];
      return selected?.kind === 'run' && selected.runId === run.id;
    }, `run #${run.id} selected in the Pipelines view`).catch(async (e: Error) => {
      const direct = await vscode.commands.executeCommand('conveyor.revealRun', folder, run.id).then(String, (x: Error) => `threw ${x.message}`);
      throw new Error(`${e.message}; selection ${JSON.stringify(api.pipelinesView.selection.map((n) => n.id))}, visible ${api.pipelinesView.visible}, shown ${JSON.stringify(shown.slice(-4))}, revealRun now: ${direct}, selection then ${JSON.stringify(api.pipelinesView.selection.map((n) => n.id))}`);
    });

    const staging = await until(() => {
      const e = envSnap('staging');
      return e && !e.children.some((c) => c.kind === 'deployment') && e.description === 'process · auto promotion · Synced · Healthy · @1' ? e : undefined;
    }, 'staging back to Synced and Healthy with no deployment in progress', DEPLOY_WAIT);
    assert.equal(staging.icon, 'pass');
    assert.equal(staging.children.find((c) => c.kind === 'live')!.label, 'staging@1');
    const releases = staging.children.find((c) => c.kind === 'releases')!;
    assert.deepEqual(
      releases.children.map((r) => [r.label, r.contextValue]),
      [['staging@2', 'release rollbackable']],
    );
    assert.equal((await serviceGet(`${status('staging')!.url}/`)).body, 'hello v1');

    // Told once, however often the same end is reported again.
    assert.equal(api.deployNotifications.deploymentEnded(session, { ...(await session.http!.request<DeploymentInfo>('GET', `/deployments/${notice.deploymentId}`)) }), false);
    await api.deploys.settled();
    assert.equal(api.deployNotifications.notices.filter((n) => n.deploymentId === notice.deploymentId).length, 1);
    assert.equal(shown.filter((s) => s.message === notice.message).length, 1);
    user.pressOn = () => undefined;
  });

  it('a fixed release goes live on staging; Reject on the approval node, with a reason, keeps production as it was', async function () {
    commitServer('hello v3', true);
    const run = await runPipeline();
    const production = await until(() => {
      const e = envSnap('production');
      return e?.children.some((c) => c.kind === 'approval' && c.label === 'production@2 is waiting for approval') ? e : undefined;
    }, 'the approval of production@2', DEPLOY_WAIT);
    await until(() => envSnap('staging')?.description === 'process · auto promotion · Synced · Healthy · @3', 'staging Synced and Healthy on release 3');
    assert.equal((await serviceGet(`${status('staging')!.url}/`)).body, 'hello v3');
    assert.ok(production);

    // The inline action passes the approval node itself.
    const approvalNode = api.environments.getChildren(node('production')).find((c) => c.kind === 'approval');
    assert.ok(approvalNode);
    inputAnswers = ['staging shows a regression'];
    const done = await vscode.commands.executeCommand<DeploymentInfo>('conveyor.reject', approvalNode);
    assert.ok(done);
    assert.deepEqual([done.environment, done.toRelease, done.status], ['production', 2, 'rejected']);
    assert.match(done.reason!, /rejected by .*\(editor\): staging shows a regression/);
    assert.equal(inputBoxes.at(-1)!.title, 'Reject production@2');
    assert.equal((await finishedRun(session, run.id, DEPLOY_WAIT)).summary.status, 'failed');
    await until(() => {
      const e = envSnap('production');
      return e && !e.children.some((c) => c.kind === 'approval') && e.description === 'process · manual promotion · Synced · Healthy · @1';
    }, 'production still on release 1, no approval pending');
    assert.equal((await serviceGet(`${status('production')!.url}/`)).body, 'hello v1');
    // A rejection is what the person asked for: no warning or error about it.
    assert.equal(api.deployNotifications.notices.filter((n) => n.deploymentId === done.id).length, 0);
  });

  it('rolls staging back with Rollback…: picks the environment, then a release from the list', async function () {
    quickPicks.length = 0;
    pickAnswers = ['staging', 'staging@1'];
    const done = await vscode.commands.executeCommand<DeploymentInfo>('conveyor.rollback');
    assert.ok(done, 'Rollback resolved with the deployment');
    assert.deepEqual([done.trigger, done.fromRelease, done.toRelease, done.status], ['rollback', 3, 1, 'succeeded']);
    assert.equal(quickPicks.length, 2);
    assert.deepEqual(quickPicks[0].labels, ['staging', 'production'], 'the environments with a release to go back to');
    assert.deepEqual(quickPicks[1].labels, ['staging@2', 'staging@1'], 'every release but the live one, newest first');
    const staging = await until(() => {
      const e = envSnap('staging');
      return e?.description === 'process · auto promotion · Synced · Healthy · @1' ? e : undefined;
    }, 'staging on release 1 again');
    assert.equal(staging.children.find((c) => c.kind === 'live')!.label, 'staging@1');
    assert.match(staging.children.find((c) => c.kind === 'live')!.description, /by \S+ \(editor\)$/);
    assert.deepEqual(
      staging.children.find((c) => c.kind === 'releases')!.children.map((r) => r.label),
      ['staging@3', 'staging@2'],
    );
    assert.equal((await serviceGet(`${status('staging')!.url}/`)).body, 'hello v1');
  });

  it('promotes staging to production with Promote…: the same artifact, by digest', async function () {
    quickPicks.length = 0;
    pickAnswers = ['production', 'staging'];
    const done = await vscode.commands.executeCommand<DeploymentInfo>('conveyor.promote');
    assert.ok(done);
    assert.deepEqual([done.environment, done.toRelease, done.status], ['production', 3, 'succeeded']);
    assert.deepEqual(quickPicks[1].labels, ['staging'], 'the environments with a live release to promote from');
    await until(() => status('production')?.live?.number === 3, 'production@3 live');
    assert.equal(status('production')!.live!.artifact.digest, status('staging')!.live!.artifact.digest);
  });

  it("deploys to qa twice with Deploy to Environment…: the second waits in qa's queue behind the lock", async function () {
    pickAnswers = ['qa', 'qa'];
    // qa answers its health check only after 4 s: the first deployment holds the lock that long.
    const first = vscode.commands.executeCommand<DeploymentInfo>('conveyor.deployToEnvironment');
    await until(() => status('qa')?.current, 'the first deployment to qa running');
    const second = vscode.commands.executeCommand<DeploymentInfo>('conveyor.deployToEnvironment');
    const qa = await until(() => {
      const e = envSnap('qa');
      const nodes = e?.children.filter((c) => c.kind === 'deployment') ?? [];
      return nodes.length === 2 ? nodes : undefined;
    }, 'the deployment holding the lock and the one queued behind it', DEPLOY_WAIT);
    assert.match(qa[0].label, /^#\d+ → qa@1$/);
    assert.match(qa[0].description, /holds the lock/);
    assert.match(qa[1].label, /^#\d+ → qa@2$/);
    assert.equal(qa[1].description, 'queued 1 of 1 · waits for the lock');
    assert.equal(qa[1].icon, 'lock');
    assert.match(envSnap('qa')!.description, new RegExp(`· deploying ${qa[0].label.split(' ')[0]} \\(1 queued\\)$`));
    assert.match(envSnap('qa')!.tooltip, /\$\(lock\) locked by deploy #\d+ → qa@1 \(running\); 1 queued behind it/);
    const [a, b] = await Promise.all([first, second]);
    assert.deepEqual([a.status, b.status, a.runId, b.runId], ['succeeded', 'succeeded', 1, 1], "both deployed run #1's artifact (the last green run)");
    assert.ok(Date.parse(b.startedAt!) >= Date.parse(a.finishedAt!), 'one at a time');
    await until(() => status('qa')?.live?.number === 2 && status('qa')?.health === 'Healthy', 'qa@2 live and healthy', DEPLOY_WAIT);
  });

  it('opens an environment with Open Environment (env.openExternal), from a name or the tooltip link', async function () {
    const url = status('qa')!.url!;
    const openedUrl = await vscode.commands.executeCommand<string>('conveyor.openEnvironment', 'qa');
    assert.equal(openedUrl, url);
    // The tooltip's link passes { folder, environment }.
    const link = /command:conveyor\.openEnvironment\?([^)]+)\)/.exec(envSnap('production')!.tooltip)!;
    const args = JSON.parse(decodeURIComponent(link[1])) as unknown[];
    await vscode.commands.executeCommand('conveyor.openEnvironment', ...args);
    // Uri.toString() writes the root path of an address without one.
    assert.deepEqual(opened, [`${url}/`, `${status('production')!.url}/`]);
    assert.equal((await serviceGet(`${url}/`)).body, 'hello v1');
  });

  it("says what the agent answered, and its fix, when a command fails", async function () {
    const before = shown.length;
    const result = await vscode.commands.executeCommand('conveyor.rollback', { environment: 'staging', release: 99 });
    assert.equal(result, undefined);
    const error = shown.slice(before).find((s) => s.severity === 'error');
    assert.ok(error, 'an error message');
    assert.equal(error.message, 'Conveyor: Rollback failed: staging has no release 99 (conveyor envs lists the releases of staging)');
  });

  it('destroys a preview environment with Destroy Preview…: picks it, asks to confirm, and it is gone', async function () {
    const created = await session.http!.request<{ preview: { name: string; branch: string } }>('POST', '/previews', { branch: 'main', via: 'test' });
    const name = created.preview.name;
    assert.equal(name, 'preview-main');
    await until(async () => (await api.deploys.load(session)).find((e) => e.name === name)?.health === 'Healthy', 'the preview live');
    pickAnswers.push(name);
    user.pressOn = (s) => (s.severity === 'warning' && s.message.startsWith(`Destroy ${name} (branch main)?`) ? 'Destroy' : undefined);
    const destroyed = await vscode.commands.executeCommand('conveyor.destroyPreview');
    user.pressOn = () => undefined;
    assert.equal(destroyed, name);
    assert.ok(quickPicks.some((q) => q.placeHolder === 'Destroy which preview environment?' && q.labels.includes(name)));
    assert.deepEqual(await session.http!.request('GET', '/previews'), []);
    assert.ok(!(await api.deploys.load(session)).some((e) => e.name === name), 'gone from the Environments view');
    assert.ok(shown.some((n) => n.message === `Conveyor: destroyed ${name}.`));
  });

  it('removes the deployed instances: stops the agent and the process groups it recorded', async function () {
    const dir = path.join(folder, '.conveyor', 'runtimes', 'process', 'environments');
    await session.stopAgent();
    const pids: number[] = [];
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      const file = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { instances: { pid: number }[] };
      pids.push(...file.instances.map((i) => i.pid).filter((p) => p > 0));
    }
    assert.ok(pids.length >= 3, `instances recorded for staging, production and qa (${pids.join(', ')})`);
    assert.ok(pids.every(isAlive), 'the instances outlived the agent');
    for (const pid of pids) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await until(() => pids.every((p) => !isAlive(p)), 'every instance to stop', 30_000);
  });
});
