/**
 * Runs inside the real VS Code extension host (code-server), on the repository that
 * test/vscode/environments.test.ts made for GitOps (a tiny Node server answering $GREETING,
 * packaged and deployed with the `process` runtime to staging): the sync and health of the
 * Environments view, its Drift node, and the GitOps commands (Pause/Resume Reconcile, Preview
 * Sync, Sync Environment, Show Drift, Open Desired State) and drift notifications, through the
 * extension's real agent, whose desired state is the branch conveyor/state of that repository.
 * In another workspace it skips itself.
 *
 * The user's side of the dialogs is scripted: the notification functions are replaced for the
 * suite (and put back after), answering as a person would and recording what was asked.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EnvironmentStatus, SequencedEvent, SyncInfo, SyncResult } from '../../../agent/protocol';
import type { OpenedDesiredState } from '../../../extension/commands/openDesiredState';
import type { ConveyorTestApi } from '../../../extension/extension';
import type { StateDocumentPair } from '../../../extension/gitops/stateDocuments';
import type { FolderSession } from '../../../extension/session/folderSession';
import type { EnvironmentTreeNode } from '../../../extension/views/environments/environmentNode';
import type { EnvironmentSnapshot } from '../../../extension/views/environments/environmentsProvider';
import { serviceGet } from '../../support/service';
import { connectedSession, conveyor, finishedRun, isAlive, sleep, until, workspaceFolder } from './helpers';
import { ScriptedUser } from './scriptedUser';

/** The suite's title: test/vscode/environments.test.ts runs only it (CONVEYOR_SUITE_GREP), by this text. */
const GITOPS_SUITE = 'Conveyor GitOps: sync, drift and the desired state in the editor';

/** How long a deploy may take here: generous, never a timing assertion. */
const DEPLOY_WAIT = 90_000;
const STATE_FILE = 'environments/staging.yml';
const STATE_BRANCH = 'conveyor/state';

type DriftEvent = Extract<SequencedEvent, { type: 'drift.detected' }>;

describe(GITOPS_SUITE, function () {
  this.timeout(DEPLOY_WAIT * 2);
  let folder: string;
  let api: ConveyorTestApi;
  let session: FolderSession;

  const user = new ScriptedUser();
  const shown = user.shown;

  function envSnap(): EnvironmentSnapshot | undefined {
    return api.environments.snapshot().find((e) => e.kind === 'environment' && e.label === 'staging');
  }

  /** Waits until staging's description is `description` (sync, health, pause and release are all in it). */
  function stagingShows(description: string, what = description, timeoutMs = DEPLOY_WAIT): Promise<EnvironmentSnapshot> {
    return until(() => {
      const e = envSnap();
      return e?.description === description ? e : undefined;
    }, `staging to show "${what}" (it shows "${envSnap()?.description}")`, timeoutMs);
  }

  function status(): EnvironmentStatus | undefined {
    return api.deploys.status(session, 'staging');
  }

  function stagingNode(): EnvironmentTreeNode {
    const n = api.environments.getChildren().find((c) => c.kind === 'environment' && c.name === 'staging');
    assert.ok(n, 'the tree has a node for staging');
    return n;
  }

  function git(...args: string[]): string {
    return execFileSync('git', args, { cwd: folder, encoding: 'utf8' });
  }

  async function served(): Promise<string> {
    return (await serviceGet(`${status()!.url}/`)).body;
  }

  async function events(): Promise<SequencedEvent[]> {
    return session.http!.request<SequencedEvent[]>('GET', '/events?since=0&limit=10000');
  }

  /** Commits a change of staging's state file to the state branch, as a person with a clone of it would. */
  function commitState(from: string, to: string, message: string): void {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-state-')));
    try {
      const inClone = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      execFileSync('git', ['clone', '-q', '-b', STATE_BRANCH, folder, dir]);
      inClone('config', 'user.email', 'alice@example.com');
      inClone('config', 'user.name', 'Alice');
      const file = path.join(dir, STATE_FILE);
      const text = fs.readFileSync(file, 'utf8');
      assert.ok(text.includes(from), `${STATE_FILE} says ${from}:\n${text}`);
      fs.writeFileSync(file, text.replace(from, to));
      inClone('commit', '-q', '-am', message);
      inClone('push', '-q', 'origin', `HEAD:${STATE_BRANCH}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** The pid of staging's live instance, as the process runtime recorded it. */
  function livePid(): number | undefined {
    const file = path.join(folder, '.conveyor', 'runtimes', 'process', 'environments', 'staging.json');
    try {
      const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { instances: { pid: number; role: string }[] };
      return state.instances.find((i) => i.pid > 0 && i.role === 'live')?.pid;
    } catch {
      return undefined;
    }
  }

  before(async function () {
    folder = workspaceFolder();
    if (!/^gitops:/m.test(fs.readFileSync(path.join(folder, 'conveyor.yml'), 'utf8'))) this.skip();
    api = await conveyor();
    session = await connectedSession(api);

    user.answerNotifications();
  });

  after(function () {
    user.restore();
  });

  it('deploys staging with the pipeline: Synced · Healthy, its desired state committed to conveyor/state', async function () {
    const run = await vscode.commands.executeCommand<{ id: number }>('conveyor.runPipeline');
    assert.ok(run, 'Run Pipeline started a run');
    assert.equal((await finishedRun(session, run.id, DEPLOY_WAIT)).summary.status, 'succeeded');
    const staging = await stagingShows('process · auto promotion · Synced · Healthy · @1');
    assert.deepEqual([staging.icon, staging.iconColor], ['pass', 'testing.iconPassed']);
    assert.match(staging.contextValue!, /^environment\b.*\bgitops\b.*\bsync:Synced\b.*\breconcile:active\b/);
    assert.ok(!staging.children.some((c) => c.kind === 'drift'), 'no Drift node while in sync');
    // The tooltip names the state file and the state branch's commit the agent compared.
    const revision = git('rev-parse', STATE_BRANCH).trim();
    const synced = `**Synced** with environments/staging\\.yml at \`${revision.slice(0, 7)}\``;
    await until(() => envSnap()?.tooltip.includes(synced), `the tooltip to say ${synced}`);
    assert.match(git('show', `${STATE_BRANCH}:${STATE_FILE}`), /GREETING: hello from config/);
    assert.equal(await served(), 'hello from config');
  });

  it('Pause Reconcile on the environment node: "paused" in its description, Resume in its menu', async function () {
    const info = await vscode.commands.executeCommand<SyncInfo>('conveyor.pauseReconcile', stagingNode());
    assert.ok(info, 'Pause Reconcile resolved with the sync status');
    assert.equal(info.paused, true);
    const staging = await stagingShows('process · auto promotion · Synced · Healthy · paused · @1');
    assert.match(staging.contextValue!, /\breconcile:paused\b/);
    assert.doesNotMatch(staging.contextValue!, /\breconcile:active\b/);
    assert.match(staging.tooltip, /reconciling paused: changes are reported, not applied/);
  });

  it('a commit to the state branch while paused: OutOfSync, a Drift node with the difference, nothing deployed', async function () {
    const noticesBefore = api.driftNotifications.notices.length;
    commitState('GREETING: hello from config', 'GREETING: hello from git', 'Say hello from git');
    const staging = await stagingShows('process · auto promotion · OutOfSync · Healthy · paused · @1');
    assert.deepEqual([staging.icon, staging.iconColor], ['pass', 'charts.yellow'], 'healthy but out of sync: a yellow check');
    assert.match(staging.contextValue!, /\bsync:OutOfSync\b/);
    const drift = staging.children.find((c) => c.kind === 'drift');
    assert.ok(drift, `a Drift node under staging (children: ${staging.children.map((c) => c.label).join(', ')})`);
    assert.equal(drift.label, 'Drift');
    assert.equal(drift.description, '1 difference · git changed, not applied yet');
    assert.deepEqual(
      drift.children.map((c) => [c.kind, c.label, c.description, c.icon]),
      [['driftItem', 'env.GREETING: git says hello from git, staging@1 has hello from config', 'env.GREETING', 'diff-modified']],
    );
    // The tooltip lists the difference as text, escaped.
    assert.ok(staging.tooltip.includes('env\\.GREETING: git says hello from git, staging@1 has hello from config'), staging.tooltip);
    assert.match(staging.tooltip, /git changed, not applied yet/);
    assert.match(staging.tooltip, /\[Show Drift\]\(command:conveyor\.showDrift\?/);
    assert.equal(await served(), 'hello from config', 'nothing was applied');
    assert.equal(status()!.live!.number, 1);
    // A commit is not drift: nobody is told of it but by the view.
    assert.equal(api.driftNotifications.notices.length, noticesBefore);
  });

  it('Preview Sync shows the plan in a modal dialog and deploys nothing when it is dismissed', async function () {
    const before = shown.length;
    const preview = await vscode.commands.executeCommand<SyncResult>('conveyor.previewSync', stagingNode());
    assert.ok(preview, 'Preview Sync resolved with the dry run');
    assert.deepEqual([preview.dryRun, preview.deployment], [true, null]);
    assert.equal(preview.plan.length, 1);
    assert.match(preview.plan[0], /^deploy app\.tgz@[0-9a-f]{12} to staging as git says \(env\.GREETING\)$/);
    const dialog = shown.slice(before).find((s) => s.modal);
    assert.ok(dialog, 'a modal dialog');
    const revision = git('rev-parse', STATE_BRANCH).trim();
    assert.equal(dialog.message, `Sync staging with ${STATE_FILE} at ${revision.slice(0, 7)}?`);
    assert.equal(dialog.detail, `• ${preview.plan[0]}`);
    assert.deepEqual(dialog.actions, ['Sync now']);
    await api.deploys.load(session);
    assert.equal(status()!.live!.number, 1);
    assert.equal(status()!.current, null);
    assert.equal(await served(), 'hello from config');
  });

  it('Show Drift opens a diff of two read-only documents: the desired value from git against the live one', async function () {
    const pair = await vscode.commands.executeCommand<StateDocumentPair>('conveyor.showDrift', 'staging');
    assert.ok(pair, 'Show Drift resolved with the documents');
    assert.deepEqual([pair.desired.scheme, pair.live.scheme], ['conveyor-state', 'conveyor-state']);
    const tab = await until(() => {
      const t = vscode.window.tabGroups.activeTabGroup.activeTab;
      return t?.input instanceof vscode.TabInputTextDiff ? t : undefined;
    }, 'the diff editor');
    const input = tab.input as vscode.TabInputTextDiff;
    assert.equal(input.original.toString(), pair.desired.toString());
    assert.equal(input.modified.toString(), pair.live.toString());
    assert.equal(tab.label, 'staging: desired (git) ↔ live');
    const desired = await vscode.workspace.openTextDocument(pair.desired);
    const live = await vscode.workspace.openTextDocument(pair.live);
    assert.match(desired.getText(), /^ {2}GREETING: hello from git$/m);
    assert.match(live.getText(), /^ {2}GREETING: hello from config$/m);
    assert.equal(desired.getText(), pair.view.desired);
    assert.equal(live.getText(), pair.view.live);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  it('Open Desired State from the drift item selects the line of GREETING:, in a YAML document titled with branch and revision', async function () {
    const envNode = stagingNode();
    const driftNode = api.environments.getChildren(envNode).find((c) => c.kind === 'drift');
    assert.ok(driftNode);
    const item = api.environments.getChildren(driftNode)[0];
    assert.equal(item?.kind, 'driftItem');
    const opened = await vscode.commands.executeCommand<OpenedDesiredState>('conveyor.openDesiredState', item);
    assert.ok(opened, 'Open Desired State resolved with what it opened');
    const editor = vscode.window.activeTextEditor;
    assert.ok(editor, 'an editor is active');
    assert.equal(editor.document.uri.toString(), opened.uri.toString());
    assert.equal(editor.document.languageId, 'yaml');
    assert.equal(opened.line, opened.view.lines['env.GREETING']);
    assert.equal(editor.selection.start.line, opened.line - 1);
    assert.equal(editor.document.getText(editor.selection), 'GREETING: hello from git');
    const revision = git('rev-parse', STATE_BRANCH).trim();
    const title = `staging (conveyor\u2215state @ ${revision.slice(0, 7)}).yml`;
    assert.equal(path.posix.basename(editor.document.uri.path), title);
    assert.equal(vscode.window.tabGroups.activeTabGroup.activeTab?.label, title);
    // From the environment itself: the top of the file.
    const top = await vscode.commands.executeCommand<OpenedDesiredState>('conveyor.openDesiredState', { environment: 'staging' });
    assert.ok(top);
    assert.equal(top.line, 1);
    assert.equal(vscode.window.activeTextEditor?.selection.start.line, 0);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('drift while paused (the live instance killed) is told once per event: "Drift in staging" with Show Drift and Sync', async function () {
    const seen = (await events()).length;
    const noticesBefore = api.driftNotifications.notices.length;
    const newDrift = async () => (await events()).slice(seen).filter((e): e is DriftEvent => e.type === 'drift.detected' && e.environment === 'staging' && e.action === 'paused');
    // The process runtime starts a killed instance again within a second: kill it until the reconciler has seen it gone.
    const killed: number[] = [];
    await until(
      async () => {
        if ((await newDrift()).length) return true;
        const pid = livePid();
        if (pid && !killed.includes(pid) && isAlive(pid)) {
          killed.push(pid);
          process.kill(-pid, 'SIGKILL');
        }
        await sleep(500);
        return false;
      },
      'a drift.detected event (paused) after killing the live instance',
      60_000,
    );
    const drift = await newDrift();
    const notices = await until(() => {
      const n = api.driftNotifications.notices.slice(noticesBefore);
      return n.length >= drift.length ? n : undefined;
    }, 'a notification per drift event');
    assert.deepEqual(
      notices.map((n) => n.seq),
      drift.map((e) => e.seq),
      'one notification per event, in order',
    );
    const first = notices[0];
    assert.equal(first.environment, 'staging');
    assert.ok(first.message.startsWith(`Conveyor: Drift in staging: ${drift[0].items[0].message}`), first.message);
    assert.match(first.message, /reconciling is paused\.$/);
    assert.deepEqual(first.actions, ['Show Drift', 'Sync']);
    assert.equal(shown.filter((s) => s.severity === 'warning' && s.message === first.message).length, 1, 'shown once, as a warning');
    // The runtime starts the instance again: only the commit is left to apply.
    const staging = await stagingShows('process · auto promotion · OutOfSync · Healthy · paused · @1', 'the instance running again');
    await until(() => {
      const d = envSnap()?.children.find((c) => c.kind === 'drift');
      return d?.children.length === 1 && d.children[0].description === 'env.GREETING';
    }, 'only the env.GREETING difference left');
    assert.ok(staging);
    // The same events again tell nothing new.
    for (const e of drift) assert.equal(api.driftNotifications.driftDetected(session, e), false);
  });

  it('Sync Environment applies the desired state while paused; Show Drift again shows the new live value', async function () {
    const firstDiff = await vscode.commands.executeCommand<StateDocumentPair>('conveyor.showDrift', 'staging');
    assert.ok(firstDiff);
    const liveDoc = await vscode.workspace.openTextDocument(firstDiff.live);
    assert.match(liveDoc.getText(), /GREETING: hello from config/);

    const result = await vscode.commands.executeCommand<SyncResult>('conveyor.syncEnvironment', stagingNode());
    assert.ok(result, 'Sync Environment resolved with the sync');
    assert.equal(result.dryRun, false);
    assert.ok(result.deployment, 'a deployment');
    assert.deepEqual([result.deployment.trigger, result.deployment.status, result.deployment.toRelease], ['sync', 'succeeded', 2]);
    assert.match(result.plan[0], /^deploy app\.tgz@[0-9a-f]{12} to staging as git says \(env\.GREETING\)$/);
    assert.equal(await served(), 'hello from git');
    const staging = await stagingShows('process · auto promotion · Synced · Healthy · paused · @2');
    assert.ok(!staging.children.some((c) => c.kind === 'drift'), 'the Drift node is gone');
    assert.equal(staging.iconColor, 'testing.iconPassed');

    // Asked again, the live document (the same one) follows.
    const again = await vscode.commands.executeCommand<StateDocumentPair>('conveyor.showDrift', 'staging');
    assert.ok(again);
    assert.equal(again.live.toString(), firstDiff.live.toString());
    await until(() => /GREETING: hello from git/.test(liveDoc.getText()), 'the open live document to show the new value');
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');

    // In sync, a preview says so.
    const before = shown.length;
    const preview = await vscode.commands.executeCommand<SyncResult>('conveyor.previewSync', 'staging');
    assert.ok(preview);
    assert.deepEqual(preview.plan, []);
    assert.ok(shown.slice(before).some((s) => s.message === 'Conveyor: staging: nothing to do: Synced.'), JSON.stringify(shown.slice(before)));
  });

  it('Preview Sync\'s "Sync now" applies the plan it showed', async function () {
    commitState('GREETING: hello from git', 'GREETING: hello after preview', 'Say hello after the preview');
    await stagingShows('process · auto promotion · OutOfSync · Healthy · paused · @2');
    user.pressOn = (s) => (s.modal && s.message.startsWith('Sync staging with') ? 'Sync now' : undefined);
    try {
      const result = await vscode.commands.executeCommand<SyncResult>('conveyor.previewSync', 'staging');
      assert.ok(result);
      assert.equal(result.dryRun, false, 'the sync, not the preview');
      assert.deepEqual([result.deployment?.trigger, result.deployment?.status, result.deployment?.toRelease], ['sync', 'succeeded', 3]);
    } finally {
      user.pressOn = () => undefined;
    }
    assert.equal(await served(), 'hello after preview');
    await stagingShows('process · auto promotion · Synced · Healthy · paused · @3');
  });

  it('Resume Reconcile: the next commit to the state branch is applied on its own', async function () {
    const info = await vscode.commands.executeCommand<SyncInfo>('conveyor.resumeReconcile', 'staging');
    assert.ok(info);
    assert.equal(info.paused, false);
    const staging = await stagingShows('process · auto promotion · Synced · Healthy · @3');
    assert.match(staging.contextValue!, /\breconcile:active\b/);
    commitState('GREETING: hello after preview', 'GREETING: hello on its own', 'Say hello on its own');
    await stagingShows('process · auto promotion · Synced · Healthy · @4', 'release 4 applied by the reconciler');
    assert.equal(await served(), 'hello on its own');
    const d = (await events()).filter((e): e is Extract<SequencedEvent, { type: 'deployment.changed' }> => e.type === 'deployment.changed' && e.deployment.toRelease === 4).at(-1);
    assert.equal(d?.deployment.trigger, 'sync');
  });

  it('an invalid state file: the tooltip shows the error at its file:line, and Open Desired State selects that line', async function () {
    commitState('replicas: 1', 'replicas: two', 'Ask for two replicas, in words');
    const tooltip = await until(() => {
      const t = envSnap()?.tooltip;
      return t?.includes('$(error) ') ? t : undefined;
    }, 'the error in the tooltip');
    const error = status()!.sync!.error!;
    assert.ok(error.line, 'the agent gave the line');
    const errorLine = tooltip.split('\n').find((l) => l.startsWith('$(error) '))!;
    assert.ok(errorLine.startsWith(`$(error) environments/staging\\.yml:${error.line}:`), errorLine);
    assert.match(errorLine, /"replicas" must be a whole number from 1 to 50, not "two"/);
    assert.equal(envSnap()!.description, 'process · auto promotion · Synced · Healthy · @4', 'the last valid state stays live');

    const opened = await vscode.commands.executeCommand<OpenedDesiredState>('conveyor.openDesiredState', 'staging');
    assert.ok(opened);
    assert.equal(opened.line, error.line);
    const editor = vscode.window.activeTextEditor!;
    assert.equal(editor.document.getText(editor.selection), 'replicas: two');
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');

    commitState('replicas: two', 'replicas: 1', 'Back to one replica');
    await until(() => !envSnap()?.tooltip.includes('$(error) ') && status()?.sync?.error === null, 'the error gone');
    assert.equal(await served(), 'hello on its own');
  });

  it('a failed pipeline on main is an alert: one error notification with Open Run, Snooze and Resolve; the next green run resolves it', async function () {
    const before = shown.length;
    // A commit without the service: its package stage fails.
    git('rm', '-q', 'server.js');
    git('commit', '-q', '-m', 'Lose the service');
    const failed = await session.http!.startRun({ trigger: 'manual' });
    const notice = await until(() => api.alertNotifications.notices.find((n) => n.message.includes(`the pipeline failed on main: run #${failed.id}`)), 'the alert notification', DEPLOY_WAIT);
    assert.deepEqual(notice.actions, ['Open Run', 'Snooze 1 Hour', 'Resolve']);
    const told = shown.slice(before).filter((s) => s.message === notice.message);
    assert.equal(told.length, 1, JSON.stringify(shown.slice(before)));
    assert.equal(told[0].severity, 'error');
    git('revert', '--no-edit', 'HEAD');
    const green = await session.http!.startRun({ trigger: 'manual' });
    await finishedRun(session, green.id, DEPLOY_WAIT);
    await until(async () => {
      const alerts = await session.http!.request<{ id: number; status: string }[]>('GET', '/alerts?all=1');
      return alerts.find((a) => a.id === notice.alertId)?.status === 'resolved';
    }, 'the alert resolved by the green run', DEPLOY_WAIT);
    assert.equal(api.alertNotifications.notices.filter((n) => n.alertId === notice.alertId).length, 1, 'told once');
  });

  it('removes the deployed instance: stops the agent and the process group it recorded', async function () {
    const pid = livePid();
    await session.stopAgent();
    assert.ok(pid && isAlive(pid), 'the instance outlived the agent');
    process.kill(-pid, 'SIGTERM');
    await until(() => !isAlive(pid), 'the instance to stop', 30_000);
  });
});
