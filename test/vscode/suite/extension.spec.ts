/**
 * Runs inside the real VS Code extension host (code-server), on a temporary git repository whose
 * conveyor.yml test/vscode/extension.test.ts wrote. Every check goes through the extension's real
 * agent: nothing is mocked.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RunSummary } from '../../../agent/protocol';
import type { ConveyorTestApi } from '../../../extension/extension';
import type { LogTerminal } from '../../../extension/logs/logTerminal';
import type { FolderSession } from '../../../extension/session/folderSession';
import type { TreeSnapshot } from '../../../extension/views/pipelines/pipelinesProvider';
import { connectedSession, conveyor, finishedRun, isAlive, readDiscovery, sleep, until, workspaceFolder } from './helpers';

function runIdOf(node: TreeSnapshot): number {
  return Number(/^#(\d+) /.exec(node.label)?.[1]);
}

async function runNodeOf(api: ConveyorTestApi, id: number): Promise<TreeSnapshot | undefined> {
  return (await api.pipelines.snapshot()).find((n) => runIdOf(n) === id);
}

async function runPipeline(opts?: { stages?: string[] }): Promise<RunSummary> {
  const run = await vscode.commands.executeCommand<RunSummary | undefined>('conveyor.runPipeline', opts);
  assert.ok(run, 'conveyor.runPipeline returned the run it started');
  return run;
}

describe('Conveyor in VS Code (real extension host, real agent)', function () {
  this.timeout(180_000);
  let api: ConveyorTestApi;
  let session: FolderSession;
  let folder: string;
  let firstRun: RunSummary;

  before(async function () {
    folder = workspaceFolder();
    api = await conveyor();
  });

  it('activates, and reports how long activate() took', function () {
    assert.equal(typeof api.activationMs, 'number');
    assert.ok(api.activationMs > 0);
    console.log(`CONVEYOR_ACTIVATION_MS=${api.activationMs.toFixed(1)}`);
  });

  it('starts the bundled agent for the folder, with the settings of the workspace', async function () {
    session = await connectedSession(api);
    const d = await until(() => readDiscovery(folder), 'the discovery file');
    assert.equal(d.pid, session.supervisor.pid, 'the agent in the discovery file is the one the extension started');
    assert.equal(session.agentPid, d.pid);
    const argv = fs.readFileSync(`/proc/${d.pid}/cmdline`, 'latin1').split('\0');
    assert.ok(argv.some((a) => a.endsWith(path.join('dist', 'cli.js'))), `bundled agent: ${argv.join(' ')}`);
    assert.ok(argv.includes('--no-commit-trigger'), 'conveyor.runOnCommit: false gives --no-commit-trigger');
    const health = await session.http!.health();
    assert.equal(health.pid, d.pid);
    assert.ok(fs.existsSync(path.join(folder, '.conveyor', 'agent.log')), 'the agent output goes to .conveyor/agent.log');
  });

  it('runs the pipeline with conveyor.runPipeline; the Pipelines tree shows the run, its stages and steps', async function () {
    firstRun = await runPipeline();
    assert.equal(firstRun.trigger, 'manual');
    assert.deepEqual(firstRun.requestedStages, ['build', 'lint', 'test']);
    const done = await finishedRun(session, firstRun.id);
    assert.equal(done.summary.status, 'succeeded', JSON.stringify(done.summary));
    const node = await until(async () => {
      const n = await runNodeOf(api, firstRun.id);
      return n && n.children.length === 3 && n.children.every((c) => c.icon === 'pass-filled') ? n : undefined;
    }, 'the tree to show the run with three succeeded stages');
    assert.equal(node.label, `#${firstRun.id} · initial commit`);
    assert.match(node.description, /^main · [0-9a-f]{7} · (just now|\d+ s ago)$/);
    assert.equal(node.icon, 'pass-filled');
    assert.match(node.contextValue ?? '', /\brerunnable\b/);
    assert.match(node.contextValue ?? '', /\bhasCommit\b/);
    assert.doesNotMatch(node.contextValue ?? '', /\bcancellable\b/);
    assert.deepEqual(
      node.children.map((c) => c.label),
      ['build', 'lint', 'test'],
    );
    for (const stage of node.children) assert.match(stage.description, /^succeeded · [\d.]+ (ms|s)$/, stage.label);
    const build = node.children[0];
    assert.deepEqual(
      build.children.map((s) => s.label),
      ['echo "building demo"', "printf '\\033[32mcompiled ok\\033[0m\\n'"],
    );
    for (const step of build.children) assert.match(step.description, /^exit 0 · /);
    // test needs build and lint: it started after both ended.
    const stages = session.model.get(firstRun.id)!.stages;
    const at = (name: string, key: 'startedAt' | 'finishedAt') => Date.parse(stages.find((s) => s.name === name)![key]!);
    assert.ok(at('test', 'startedAt') >= at('build', 'finishedAt') && at('test', 'startedAt') >= at('lint', 'finishedAt'));
    await until(() => api.statusBar.item.text === `$(check) #${firstRun.id}`, `the status bar to show $(check) #${firstRun.id} (it shows ${api.statusBar.item.text})`);
  });

  it('lists the environments of conveyor.yml in the Environments view', async function () {
    const items = await until(() => {
      const children = api.environments.getChildren();
      return children.length === 2 ? children : undefined;
    }, 'two environments');
    assert.deepEqual(
      items.map((i) => [i.label, i.description]),
      [
        ['staging', 'process · auto promotion'],
        ['production', 'process · manual promotion'],
      ],
    );
  });

  it('shows a finished stage log in a terminal: the whole log, ANSI colours kept, \\r\\n line ends', async function () {
    const pty = await vscode.commands.executeCommand<LogTerminal>('conveyor.showLogs', { runId: firstRun.id, stage: 'build' });
    assert.ok(pty, 'showLogs returned the terminal');
    await pty.ready;
    const t = pty.transcript;
    assert.match(t, /building demo\r\n/);
    assert.ok(t.includes('\x1b[32mcompiled ok\x1b[0m\r\n'), JSON.stringify(t));
    assert.ok(t.indexOf('building demo') < t.indexOf('compiled ok'));
    assert.equal(t.match(/✔ succeeded/g)?.length, 2, 'a footer per step');
    assert.doesNotMatch(t.replace(/\r\n/g, ''), /\n/, 'every newline is written as \\r\\n');
    const step = await vscode.commands.executeCommand<LogTerminal>('conveyor.showLogs', { runId: firstRun.id, stage: 'build', attempt: 1, step: 1 });
    await step.ready;
    assert.ok(step.transcript.includes('compiled ok'));
    assert.ok(!step.transcript.includes('building demo'), 'a step terminal shows that step only');
  });

  it('follows a running stage in its terminal: the log so far, then live output, each line once and in order', async function () {
    const seen: string[] = [];
    const sub = session.model.onDidLog((c) => seen.push(c.text));
    try {
      const run = await runPipeline({ stages: ['slow'] });
      await until(() => seen.join('').includes('slow-line-20\n'), 'the stage to print its 20th line');
      const pty = await vscode.commands.executeCommand<LogTerminal>('conveyor.showLogs', { runId: run.id, stage: 'slow' });
      await pty.ready;
      const done = await finishedRun(session, run.id);
      assert.equal(done.summary.status, 'succeeded');
      await until(() => pty.transcript.includes('✔ succeeded'), 'the terminal to show the step ended');
      assert.deepEqual(
        pty.transcript.match(/slow-line-\d+/g),
        Array.from({ length: 200 }, (_, i) => `slow-line-${i + 1}`),
        JSON.stringify(pty.transcript),
      );
    } finally {
      sub.dispose();
    }
  });

  it('follows a step it did not see start (after Refresh): the log so far, then the rest, each line once', async function () {
    const seen: string[] = [];
    const sub = session.model.onDidLog((c) => seen.push(c.text));
    try {
      const run = await runPipeline({ stages: ['slow'] });
      await until(() => seen.join('').includes('slow-line-20\n'), 'the stage to print its 20th line');
      // Refresh drops the model and loads it again: the step's start is now behind the model.
      await vscode.commands.executeCommand('conveyor.refresh');
      await until(() => session.state === 'connected' && session.model.get(run.id)?.complete, 'the model to reload');
      const pty = await vscode.commands.executeCommand<LogTerminal>('conveyor.showLogs', { runId: run.id, stage: 'slow' });
      await pty.ready;
      await finishedRun(session, run.id);
      await until(() => pty.transcript.includes('✔ succeeded'), 'the terminal to show the step ended');
      assert.deepEqual(pty.transcript.match(/slow-line-\d+/g), Array.from({ length: 200 }, (_, i) => `slow-line-${i + 1}`), JSON.stringify(pty.transcript));
    } finally {
      sub.dispose();
    }
  });

  it('runs one stage with Run Stage, and re-runs a run with Re-run', async function () {
    const lint = await vscode.commands.executeCommand<RunSummary>('conveyor.runStage', undefined, 'lint');
    assert.ok(lint);
    assert.deepEqual(lint.requestedStages, ['lint']);
    assert.equal((await finishedRun(session, lint.id)).summary.status, 'succeeded');
    const again = await vscode.commands.executeCommand<RunSummary>('conveyor.rerunRun', firstRun.id);
    assert.ok(again && again.id > lint.id);
    assert.equal(again.commit, firstRun.commit);
    assert.deepEqual(again.requestedStages, firstRun.requestedStages);
    assert.equal((await finishedRun(session, again.id)).summary.status, 'succeeded');
  });

  it('shows conveyor.yml problems at their exact line and column as you type, and clears them when fixed or deleted', async function () {
    const dir = path.join(folder, 'drafts');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'conveyor.yml');
    fs.writeFileSync(file, 'pipeline:\n  stages:\n    - name: build\n      run: echo hi\n    - name: test\n      needs: [biuld]\n      run: echo t\n');
    const uri = vscode.Uri.file(file);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    const diags = await until(() => {
      const d = vscode.languages.getDiagnostics(uri);
      return d.length ? d : undefined;
    }, 'diagnostics for the broken file');
    assert.equal(diags.length, 1);
    const [d] = diags;
    assert.deepEqual([d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character], [5, 14, 5, 19]);
    assert.equal(doc.getText(d.range), 'biuld');
    assert.equal(d.severity, vscode.DiagnosticSeverity.Error);
    assert.equal(d.code, 'unknown-need');
    assert.equal(d.source, 'conveyor');
    assert.match(d.message, /stage "test" needs "biuld", but no stage has that name \(fix: did you mean "build"\?\)/);

    // Fixed in the editor, unsaved: the problem goes.
    const fix = new vscode.WorkspaceEdit();
    fix.replace(uri, d.range, 'build');
    assert.ok(await vscode.workspace.applyEdit(fix));
    await until(() => vscode.languages.getDiagnostics(uri).length === 0, 'the diagnostics to clear once fixed');

    // A cycle: one diagnostic, with every edge as related information in this document.
    const cycle = new vscode.WorkspaceEdit();
    cycle.insert(uri, new vscode.Position(3, 0), '      needs: [test]\n');
    assert.ok(await vscode.workspace.applyEdit(cycle));
    const [c] = await until(() => {
      const x = vscode.languages.getDiagnostics(uri);
      return x.length ? x : undefined;
    }, 'the cycle diagnostic');
    assert.equal(c.code, 'cycle');
    assert.deepEqual([c.range.start.line, c.range.start.character], [3, 14]);
    assert.equal(c.relatedInformation?.length, 2);
    assert.deepEqual(
      c.relatedInformation!.map((r) => [r.location.uri.toString(), r.location.range.start.line, r.message]),
      [
        [uri.toString(), 3, '"build" needs "test"'],
        [uri.toString(), 6, '"test" needs "build"'],
      ],
    );

    // Closed: cleared.
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
    await until(() => vscode.languages.getDiagnostics(uri).length === 0, 'the diagnostics to clear once the editor is closed');

    // Opened again (the broken text on disk): back. Deleted under the open editor: cleared.
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
    await until(() => vscode.languages.getDiagnostics(uri).length === 1, 'the diagnostics of the reopened file');
    fs.rmSync(dir, { recursive: true, force: true });
    await until(() => vscode.languages.getDiagnostics(uri).length === 0, 'the diagnostics to clear once the file is gone');
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
  });

  it('Open Commit opens the commit a run was pinned to', async function () {
    const how = await vscode.commands.executeCommand<'changes' | 'document'>('conveyor.openCommit', firstRun.id);
    assert.ok(how === 'changes' || how === 'document', String(how));
    const sha = firstRun.commit!.slice(0, 7);
    const tab = await until(
      () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.label.includes(sha)),
      `a tab for commit ${sha}`,
    );
    console.log(`Open Commit opened ${how}: "${tab.label}"`);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('cancels a long-running run', async function () {
    const run = await runPipeline({ stages: ['long'] });
    await until(() => session.model.get(run.id)?.stages.find((s) => s.name === 'long')?.status === 'running', 'the long stage to run');
    const node = await until(() => runNodeOf(api, run.id), 'the run in the tree');
    assert.equal(node.icon, 'sync~spin', 'a running run spins');
    assert.match(node.contextValue ?? '', /\bcancellable\b/);
    await until(() => api.statusBar.item.text === `$(sync~spin) #${run.id} long`, `the status bar to show the running stage (it shows ${api.statusBar.item.text})`);
    const cancelled = await vscode.commands.executeCommand<RunSummary>('conveyor.cancelRun', run.id);
    assert.ok(cancelled);
    const done = await finishedRun(session, run.id, 30_000);
    assert.equal(done.summary.status, 'cancelled');
    assert.equal(done.stages.find((s) => s.name === 'long')?.status, 'cancelled');
    await until(async () => (await runNodeOf(api, run.id))?.icon === 'circle-slash', 'the tree to show the run cancelled');
  });

  it('coalesces tree refreshes under an event storm (150 steps: at most one refresh per 100 ms)', async function () {
    // The view on screen: VS Code asks for the run's node, which is then refreshed as it changes.
    await vscode.commands.executeCommand('conveyor.pipelines.focus');
    let events = 0;
    const sub = session.model.onDidChangeStep(() => events++);
    const firedBefore = api.pipelines.scheduler.fired;
    const started = Date.now();
    try {
      const run = await runPipeline({ stages: ['storm'] });
      const done = await finishedRun(session, run.id, 120_000);
      assert.equal(done.summary.status, 'succeeded');
      assert.equal(done.steps.length, 150);
      await sleep(300);
    } finally {
      sub.dispose();
    }
    const elapsed = Date.now() - started;
    const fired = api.pipelines.scheduler.fired - firedBefore;
    console.log(`      ${events} step events, ${fired} tree refreshes in ${elapsed} ms`);
    assert.equal(events, 300, 'each step ran and ended');
    assert.ok(fired > 3, `the tree was refreshed as the run went on (${fired} times)`);
    assert.ok(fired <= Math.ceil(elapsed / 100) + 1, `${fired} refreshes in ${elapsed} ms`);
    assert.ok(fired < events / 2, `${fired} refreshes for ${events} changes`);
  });

  it('restarts the agent after it is killed and resumes the event stream: no run missing, none twice', async function () {
    const before = readDiscovery(folder)!;
    const crashesBefore = api.sessions.notices.filter((n) => n.kind === 'crashed').length;
    process.kill(before.pid, 'SIGKILL');
    const after = await until(() => {
      const d = readDiscovery(folder);
      return d && d.pid !== before.pid && isAlive(d.pid) && session.state === 'connected' && session.agentPid === d.pid ? d : undefined;
    }, 'a new agent and the session connected to it', 90_000);
    assert.equal(session.supervisor.pid, after.pid, 'the extension restarted the agent itself');
    assert.equal(api.sessions.notices.filter((n) => n.kind === 'crashed').length, crashesBefore + 1, 'one warning for the crash');

    const run = await runPipeline();
    const done = await finishedRun(session, run.id);
    assert.equal(done.summary.status, 'succeeded');

    const http = session.http!;
    const health = await http.health();
    await until(() => session.model.lastSeq >= health.lastSeq, 'the model to catch up with the agent');
    const fromAgent = await http.listRuns(50);
    const tree = await until(async () => {
      const nodes = await api.pipelines.snapshot();
      return nodes.length === fromAgent.length && runIdOf(nodes[0]) === run.id ? nodes : undefined;
    }, 'the tree to list every run');
    const ids = tree.map(runIdOf);
    assert.deepEqual(ids, fromAgent.map((r) => r.id), 'the tree lists exactly the agent runs, newest first');
    assert.equal(new Set(ids).size, ids.length, 'no run twice');
    for (const r of fromAgent) {
      const mine = session.model.get(r.id)!;
      assert.equal(mine.summary.status, r.status, `run #${r.id}`);
      const detail = await http.getRun(r.id);
      await session.ensureDetail(r.id);
      assert.deepEqual(
        session.model.get(r.id)!.stages.map((s) => [s.name, s.status]),
        detail.stages.map((s) => [s.name, s.status]),
        `stages of run #${r.id}`,
      );
    }
  });

  it('connects to an agent it did not start; exit code 3 (another agent holds the lock) means connect to that one', async function () {
    await vscode.commands.executeCommand('conveyor.stopAgent');
    assert.equal(session.state, 'offline');
    await until(() => api.statusBar.item.text === '$(debug-disconnect) Conveyor agent offline', `the status bar to say offline (it shows ${api.statusBar.item.text})`);
    assert.deepEqual(await api.pipelines.snapshot(), [], 'an empty tree: the welcome view offers Start Agent');

    // An agent started outside the editor, whose discovery file is not there yet.
    const cli = path.join(vscode.extensions.getExtension('conveyor.conveyor')!.extensionPath, 'dist', 'cli.js');
    const outside = spawn(process.execPath, [cli, 'agent', '--workspace', folder, '--no-commit-trigger'], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: 'ignore',
    });
    try {
      const d = await until(() => {
        const x = readDiscovery(folder);
        return x && x.pid === outside.pid ? x : undefined;
      }, 'the outside agent to write its discovery file');
      const discovery = path.join(folder, '.conveyor', 'agent.json');
      fs.renameSync(discovery, `${discovery}.hidden`);
      const states: string[] = [];
      const sub = session.supervisor.onDidChangeState((s) => states.push(s));
      const started = vscode.commands.executeCommand<boolean>('conveyor.startAgent');
      await until(() => states.includes('starting') && states[states.length - 1] === 'idle', 'the spawned agent to exit (code 3)');
      sub.dispose();
      fs.renameSync(`${discovery}.hidden`, discovery);
      assert.equal(await started, true);
      assert.equal(session.state, 'connected');
      assert.equal(session.agentPid, d.pid, 'connected to the outside agent');
      assert.equal(session.ownsAgent, false);
      assert.equal(api.sessions.notices.filter((n) => n.message.includes('code 3')).length, 0, 'exit code 3 is not a crash');

      // Stop Agent stops an outside agent too.
      await vscode.commands.executeCommand('conveyor.stopAgent');
      await until(() => outside.exitCode !== null, 'the outside agent to stop');
      assert.equal(outside.exitCode, 0);
    } finally {
      if (outside.exitCode === null) outside.kill('SIGKILL');
    }
    assert.equal(await vscode.commands.executeCommand<boolean>('conveyor.startAgent'), true);
    assert.equal(session.ownsAgent, true);
    await until(async () => (await api.pipelines.snapshot()).length > 0, 'the runs to show again');
  });

  it('restarts a crashing agent with backoff, warns once, and gives up with one error', async function () {
    this.timeout(120_000);
    const fake = path.join(path.dirname(folder), `${path.basename(folder)}-failing-agent.js`);
    fs.writeFileSync(fake, "process.stderr.write('failing agent: cannot start\\n'); process.exit(1);\n");
    const config = vscode.workspace.getConfiguration('conveyor');
    const noticesBefore = api.sessions.notices.length;
    await config.update('agent.path', fake, vscode.ConfigurationTarget.Global);
    try {
      await vscode.commands.executeCommand('conveyor.stopAgent');
      const attempts: number[] = [];
      const sub = session.supervisor.onDidChangeState((s) => {
        if (s === 'starting') attempts.push(Date.now());
      });
      void vscode.commands.executeCommand('conveyor.startAgent');
      await until(() => session.supervisor.state === 'gaveUp' && session.state === 'offline', 'the supervisor to give up', 90_000);
      sub.dispose();
      assert.equal(attempts.length, 5, 'five attempts');
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
      for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] > gaps[i - 1], `the delays grow: ${gaps.join(', ')} ms`);
      const notices = api.sessions.notices.slice(noticesBefore);
      assert.deepEqual(
        notices.map((n) => n.kind),
        ['crashed', 'gaveUp'],
        JSON.stringify(notices),
      );
      assert.match(notices[0].message, /exited with code 1/);
    } finally {
      await config.update('agent.path', undefined, vscode.ConfigurationTarget.Global);
      fs.rmSync(fake, { force: true });
    }
    assert.equal(await vscode.commands.executeCommand<boolean>('conveyor.startAgent'), true);
    assert.equal(session.state, 'connected');
    await until(() => /^\$\(check\) #\d+$/.test(api.statusBar.item.text), `the status bar to show the latest run (it shows ${api.statusBar.item.text})`);
    await sleep(10);
  });
});

describe('Conveyor: Create Starter conveyor.yml', function () {
  this.timeout(60_000);

  it('writes a starter pipeline that fits the project (npm ci, npm test), valid for the agent, and opens it', async function () {
    const api = await conveyor();
    const session = await connectedSession(api);
    const folder = workspaceFolder();
    const config = path.join(folder, 'conveyor.yml');
    const saved = fs.readFileSync(config, 'utf8');
    fs.writeFileSync(path.join(folder, 'package.json'), JSON.stringify({ name: 'demo', scripts: { build: 'tsc', test: 'mocha' } }));
    fs.writeFileSync(path.join(folder, 'package-lock.json'), '{}');
    fs.rmSync(config);
    try {
      const uri = await vscode.commands.executeCommand<vscode.Uri>('conveyor.createStarterConfig', folder);
      assert.ok(uri, 'the command returned the file it wrote');
      assert.equal(uri.fsPath, config);
      const text = fs.readFileSync(config, 'utf8');
      assert.match(text, /- name: install\n\s+run: npm ci\n/);
      assert.match(text, /- name: build\n\s+needs: \[install\]\n\s+run: npm run build\n/);
      assert.match(text, /- name: test\n\s+needs: \[build\]\n\s+run: npm test\n/);
      assert.equal(vscode.window.activeTextEditor?.document.uri.fsPath, config, 'the new file is open in the editor');
      assert.deepEqual(await session.http!.validate(text), [], 'the agent finds no problem in it');
      // Asked again: the file is there, so it is opened, not overwritten.
      fs.appendFileSync(config, '# mine\n');
      await vscode.commands.executeCommand('conveyor.createStarterConfig', folder);
      assert.match(fs.readFileSync(config, 'utf8'), /# mine\n$/);
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      fs.writeFileSync(config, saved);
      fs.rmSync(path.join(folder, 'package.json'), { force: true });
      fs.rmSync(path.join(folder, 'package-lock.json'), { force: true });
    }
  });
});
