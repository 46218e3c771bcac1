/**
 * Runs inside the real VS Code extension host (code-server), on a copy of test/fixtures/develop
 * that test/vscode/testing.test.ts made: the agent's test results in the Testing view and as
 * problems at the failing assertions, through the extension's real agent and real mocha.
 * In another workspace (the main suite's) it skips itself.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { WatchState } from '../../../agent/protocol';
import type { ConveyorTestApi } from '../../../extension/extension';
import type { FolderSession } from '../../../extension/session/folderSession';
import type { ConveyorTesting, TestNodeSnapshot } from '../../../extension/testing/testing';
import { connectedSession, conveyor, finishedRun, until, workspaceFolder } from './helpers';

/** The suite's title: test/vscode/testing.test.ts runs only it (CONVEYOR_SUITE_GREP), by this text. */
const TESTING_SUITE = 'Conveyor Testing view and test problems';

/** The fixture's failing assertions, 1-based as in its README. */
const MATH_FAILURE = { line: 10, column: 12, expected: '13', actual: '12' };
const WORDS_FAILURE = { line: 11, column: 14 };

describe(TESTING_SUITE, function () {
  this.timeout(90_000);
  let folder: string;
  let api: ConveyorTestApi;
  let session: FolderSession;
  let testing: ConveyorTesting;
  let mathUri: vscode.Uri;
  let wordsUri: vscode.Uri;
  let manualRunId = 0;

  const ids = {
    math: () => mathUri.toString(),
    mathSuite: () => `${mathUri}#math`,
    adds: () => `${mathUri}#math#adds`,
    multiplies: () => `${mathUri}#math#multiplies`,
    divides: () => `${mathUri}#math#divides`,
    shouts: () => `${wordsUri}##shouts`,
    emptyWord: () => `${wordsUri}#words edge cases#keeps an empty word empty`,
  };

  function find(id: string, nodes: TestNodeSnapshot[] = testing.snapshot()): TestNodeSnapshot | undefined {
    for (const n of nodes) {
      if (n.id === id) return n;
      const inner = find(id, n.children);
      if (inner) return inner;
    }
    return undefined;
  }

  function problems(uri: vscode.Uri): vscode.Diagnostic[] {
    return vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'Conveyor tests');
  }

  async function watchState(): Promise<WatchState> {
    return session.http!.request<WatchState>('GET', '/watch');
  }

  /** Runs every test with VS Code's own "Run All Tests" (the default Run profile); returns the agent's run. */
  async function runAllTests(): Promise<number> {
    const before = Math.max(0, ...session.model.list().map((r) => r.summary.id));
    await vscode.commands.executeCommand('testing.runAll');
    const run = await until(() => session.model.list().find((r) => r.summary.id > before), 'the Run profile to start an agent run', 20_000);
    assert.equal(run.summary.trigger, 'manual');
    assert.equal(run.summary.commit, null, 'a run of the working tree');
    assert.deepEqual(run.summary.requestedStages, ['test'], 'the watch stages');
    await finishedRun(session, run.summary.id);
    await until(async () => {
      await testing.settled();
      return find(ids.adds())?.runId === run.summary.id;
    }, `the results of run #${run.summary.id}`);
    return run.summary.id;
  }

  async function editAndSave(uri: vscode.Uri, from: string, to: string): Promise<void> {
    const doc = await vscode.workspace.openTextDocument(uri);
    const at = doc.getText().indexOf(from);
    assert.ok(at >= 0, `${path.basename(uri.fsPath)} holds ${from}`);
    const edit = new vscode.WorkspaceEdit();
    edit.replace(uri, new vscode.Range(doc.positionAt(at), doc.positionAt(at + from.length)), to);
    assert.ok(await vscode.workspace.applyEdit(edit));
    assert.ok(await doc.save(), 'saved');
  }

  before(async function () {
    folder = workspaceFolder();
    if (!fs.existsSync(path.join(folder, 'test', 'math.test.js'))) this.skip();
    mathUri = vscode.Uri.file(path.join(folder, 'test', 'math.test.js'));
    wordsUri = vscode.Uri.file(path.join(folder, 'test', 'words.test.js'));
    api = await conveyor();
    testing = api.testing;
    session = await connectedSession(api);
    // Saves start runs only while a continuous run is on.
    const state = await session.http!.request<WatchState>('POST', '/watch', { enabled: false });
    assert.equal(state.enabled, false);
    assert.deepEqual(state.stages, ['test']);
  });

  it('lists the test files conveyor.yml declares before any run', async function () {
    await until(() => find(ids.math()) && find(wordsUri.toString()), 'file items for test/*.test.js');
    assert.deepEqual(
      testing.snapshot().map((n) => [n.label, n.kind]),
      [
        ['test/math.test.js', 'file'],
        ['test/words.test.js', 'file'],
      ],
    );
  });

  it('runs the tests through the Run profile: file → suite → test items with their states and places', async function () {
    manualRunId = await runAllTests();
    const math = find(ids.math())!;
    assert.deepEqual(
      math.children.map((c) => [c.id, c.kind]),
      [[ids.mathSuite(), 'suite']],
    );
    assert.deepEqual(
      math.children[0].children.map((c) => [c.label, c.kind, c.status, c.runId]),
      [
        ['adds', 'test', 'passed', manualRunId],
        ['divides', 'test', 'skipped', manualRunId],
        ['multiplies', 'test', 'failed', manualRunId],
      ],
    );
    // Items sit on their declarations (0-based): describe at line 4, it('adds') at 5, it('multiplies') at 9.
    assert.deepEqual(math.children[0].range, [3, 0]);
    assert.deepEqual(find(ids.adds())!.range, [4, 2]);
    assert.deepEqual(find(ids.multiplies())!.range, [8, 2]);
    assert.deepEqual(find(ids.divides())!.range, [12, 2]);

    const words = find(wordsUri.toString())!;
    assert.deepEqual(
      words.children.map((c) => [c.label, c.kind]),
      [
        ['shouts', 'test'],
        ['words edge cases', 'suite'],
      ],
      'a top-level test sits under its file; nested describes are one suite path',
    );
    assert.equal(find(ids.shouts())!.status, 'passed');
    assert.equal(find(ids.emptyWord())!.status, 'failed');
    assert.deepEqual(find(ids.emptyWord())!.range, [9, 4]);
  });

  it('shows a failure as a problem at the assertion, and its TestMessage carries expected and actual', async function () {
    const [d, ...more] = problems(mathUri);
    assert.ok(d, 'a problem in test/math.test.js');
    assert.equal(more.length, 0, 'one problem per failing test');
    assert.equal(d.range.start.line, MATH_FAILURE.line - 1, 'the assertion line');
    assert.equal(d.range.start.character, MATH_FAILURE.column - 1, 'the assertion column');
    const lineText = fs.readFileSync(mathUri.fsPath, 'utf8').split('\n')[MATH_FAILURE.line - 1];
    assert.equal(lineText.indexOf('strictEqual'), MATH_FAILURE.column - 1, 'the fixture still has its assertion there');
    assert.equal(d.severity, vscode.DiagnosticSeverity.Error);
    assert.match(d.message, /^math multiplies: /);
    assert.match(d.message, /\nexpected: 13\nactual: 12$/);
    const code = d.code as { value: string; target: vscode.Uri };
    assert.equal(code.value, `run #${manualRunId}`);
    assert.equal(code.target.scheme, 'command');
    assert.equal(code.target.path, 'conveyor.revealRun');

    const [w] = problems(wordsUri);
    assert.ok(w, 'a problem in test/words.test.js');
    assert.deepEqual([w.range.start.line, w.range.start.character], [WORDS_FAILURE.line - 1, WORDS_FAILURE.column - 1]);
    assert.match(w.message, /^words edge cases keeps an empty word empty: /);

    const [message] = testing.messagesOf(ids.multiplies()) ?? [];
    assert.ok(message, 'the failure was reported with a message');
    assert.equal(message.expectedOutput, MATH_FAILURE.expected);
    assert.equal(message.actualOutput, MATH_FAILURE.actual);
    assert.match(String(message.message), /strictly equal/);
    assert.equal(message.location?.uri.toString(), mathUri.toString());
    assert.deepEqual([message.location!.range.start.line, message.location!.range.start.character], [MATH_FAILURE.line - 1, MATH_FAILURE.column - 1]);

    const counts = testing.statusBar.counts(session);
    assert.deepEqual(counts, { runId: manualRunId, trigger: 'manual', passed: 2, failed: 2, skipped: 1 });
    assert.equal(testing.statusBar.item.text, '$(beaker) 2 ✓ 2 ✗');
  });

  it('fixing the assertion and running again removes its problem (and only its)', async function () {
    await editAndSave(mathUri, 'multiply(3, 4), 13)', 'multiply(3, 4), 12)');
    const runId = await runAllTests();
    assert.ok(runId > manualRunId);
    assert.equal(find(ids.multiplies())!.status, 'passed');
    assert.deepEqual(problems(mathUri), [], 'the fixed test has no problem any more');
    assert.equal(problems(wordsUri).length, 1, 'the other failure keeps its problem');
    assert.equal(testing.messagesOf(ids.multiplies()), undefined);
    manualRunId = runId;
  });

  it('a continuous run turns the develop loop on: save runs report the tests they ran, the others keep their state', async function () {
    const profile = testing.runProfile;
    assert.equal(profile.supportsContinuousRun, true);
    const cts = new vscode.CancellationTokenSource();
    const running = Promise.resolve(profile.runHandler(new vscode.TestRunRequest(undefined, undefined, profile, true), cts.token));
    try {
      await until(async () => (await watchState()).enabled, 'the develop loop to be on');
      await until(async () => (await watchState()).ready, 'the develop loop to be ready');
      // Breaks math's first test: the save runs test/math.test.js only.
      await editAndSave(mathUri, 'add(2, 2), 4)', 'add(2, 2), 5)');
      const save = await until(() => session.model.list().find((r) => r.summary.trigger === 'save'), 'a save run', 30_000);
      assert.deepEqual(save.summary.impact?.tests, ['test/math.test.js']);
      await finishedRun(session, save.summary.id);
      await until(async () => {
        await testing.settled();
        return find(ids.adds())?.runId === save.summary.id;
      }, 'the save run results');
      assert.equal(find(ids.adds())!.status, 'failed');
      assert.equal(find(ids.multiplies())!.status, 'passed');
      assert.equal(find(ids.shouts())!.runId, manualRunId, 'words.test.js did not run: its tests keep their last result');
      assert.equal(find(ids.emptyWord())!.status, 'failed');
      const [d] = problems(mathUri);
      assert.equal(d?.range.start.line, 5, 'the new failure is at its own assertion');
      assert.match(d.message, /^math adds: .*\nexpected: 5\nactual: 4$/s);
      assert.equal(d.code && (d.code as { value: string }).value, `run #${save.summary.id}`);
      assert.equal(testing.statusBar.item.text, '$(beaker) 1 ✓ 1 ✗', 'the status bar counts the latest save run');
    } finally {
      cts.cancel();
      await running;
      cts.dispose();
    }
    assert.equal((await watchState()).enabled, false, 'cancelling the continuous run turns the develop loop off');
  });

  it('deleting a test file removes its items and its problems', async function () {
    assert.equal(problems(wordsUri).length, 1);
    fs.rmSync(wordsUri.fsPath);
    await until(() => problems(wordsUri).length === 0 && !find(wordsUri.toString()), 'the deleted file to leave the Testing view and the problems');
    assert.ok(find(ids.adds()), 'the other file stays');
    assert.equal(problems(mathUri).length, 1);
  });

  it('cancelling the TestRun cancels the agent run', async function () {
    // A test that takes 20 s: the run is still going when it is cancelled.
    const slow = path.join(folder, 'test', 'slow.test.js');
    fs.writeFileSync(slow, "it('waits', function (done) {\n  this.timeout(30000);\n  setTimeout(done, 20000);\n});\n");
    const cts = new vscode.CancellationTokenSource();
    try {
      const prior = Math.max(0, ...session.model.list().map((r) => r.summary.id));
      const profile = testing.runProfile;
      const handled = Promise.resolve(profile.runHandler(new vscode.TestRunRequest(undefined, undefined, profile), cts.token));
      const run = await until(() => session.model.list().find((r) => r.summary.id > prior && r.summary.status === 'running'), 'the run to start', 20_000);
      cts.cancel();
      const done = await finishedRun(session, run.summary.id, 15_000);
      assert.equal(done.summary.status, 'cancelled');
      await handled;
      await testing.settled();
      assert.notEqual(find(ids.adds())!.runId, run.summary.id, 'a cancelled run reports nothing');
    } finally {
      cts.dispose();
      fs.rmSync(slow, { force: true });
    }
  });

  it('warns once when the report cannot be read, and keeps the last results', async function () {
    // mocha cannot load this file, so it writes no report (the one of the run before stays, stale).
    fs.writeFileSync(path.join(folder, 'test', 'broken.test.js'), 'describe("broken", () => {\n');
    try {
      const before = testing.warnings.length;
      const lastResult = find(ids.adds())!.runId;
      const prior = Math.max(0, ...session.model.list().map((r) => r.summary.id));
      await vscode.commands.executeCommand('testing.runAll');
      const run = await until(() => session.model.list().find((r) => r.summary.id > prior), 'the run', 20_000);
      await finishedRun(session, run.summary.id);
      await until(() => testing.warnings.length > before, 'the unreadable report warning');
      await testing.settled();
      assert.equal(testing.warnings.length, before + 1, 'one warning for the run');
      assert.match(
        testing.warnings[before],
        new RegExp(`^run #${run.summary.id}: the test report of stage "test" \\(reports/mocha\\.json\\) could not be read: .*(no report at|stale)`),
      );
      assert.equal(find(ids.adds())!.runId, lastResult, 'no result replaced the last one');
    } finally {
      fs.rmSync(path.join(folder, 'test', 'broken.test.js'), { force: true });
    }
  });

  it('loads the latest results again when the folder reconnects: newest last, deleted files left out', async function () {
    const before = testing.snapshot();
    const problemsBefore = problems(mathUri).map((d) => [d.range.start.line, d.range.start.character, d.message]);
    assert.ok(session.model.list().length >= 4);
    session.refresh();
    await until(() => session.state === 'connected' && session.model.list().length > 0, 'the folder to reconnect');
    await testing.settled();
    assert.deepEqual(testing.snapshot(), before, 'the same tests, states, runs and places');
    assert.deepEqual(
      problems(mathUri).map((d) => [d.range.start.line, d.range.start.character, d.message]),
      problemsBefore,
    );
    assert.equal(find(wordsUri.toString()), undefined, 'the deleted file did not come back');
    assert.deepEqual(problems(wordsUri), []);
  });
});
