import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RunSummary, StageTestResults, TestResult, TestStatus, WatchState } from '../../agent/protocol';
import type { AgentHttp } from '../agent/agentApi';
import { Commands } from '../constants';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { Deferred, errorMessage } from '../util/async';
import { failureDiagnostic, testMessage, toLocation } from './messages';
import { ResultFeed, type ReportProblem, type ResultFeedListener, type SeededResults } from './resultFeed';
import { TestDiagnostics } from './testDiagnostics';
import { TestFileResolver } from './testFiles';
import { TestStatusBar } from './testStatusBar';
import { TestTree, type ItemKind } from './testTree';

export const TEST_CONTROLLER_ID = 'conveyor';

/** Where one agent run's results go in the Testing view. */
interface RunSink {
  testRun: vscode.TestRun;
  /** Started by a run profile, which ends it; the others end with the agent's run. */
  owned: boolean;
  /** The tests the profile's request asked for. */
  requested: readonly vscode.TestItem[];
  reported: Set<vscode.TestItem>;
  problems: ReportProblem[];
  /** The run's end (owned sinks): its summary; undefined when its folder went away. */
  finished: Deferred<RunSummary | undefined>;
}

/** What is gathered of one agent run while it runs. */
interface RunTrack {
  sink?: RunSink;
  /** The tests each file item had in the run's results: the file's other tests are gone. */
  files: Map<vscode.TestItem, Set<vscode.TestItem>>;
}

/** One item of the tree, for the editor's tests. */
export interface TestNodeSnapshot {
  id: string;
  label: string;
  kind: ItemKind;
  /** 0-based [line, character] of the range's start. */
  range?: [number, number];
  status?: TestStatus;
  runId?: number;
  error?: string;
  children: TestNodeSnapshot[];
}

/**
 * The develop loop in the editor: the agent's test results in the Testing view (one
 * TestController, "Conveyor": file → suite → test) and as problems at the failing lines; Run
 * and Debug profiles that run the watch stages through the agent; a continuous run that is the
 * agent's develop loop (POST /api/watch); and a status bar item with the latest save run's
 * counts.
 *
 * Every agent run that reports results gets a TestRun: the profile's own when it started the
 * run, a continuous run's for save runs while one is on, else one of its own named after the
 * run. The latest result of each test wins; a run updates only the tests it reported.
 */
export class ConveyorTesting implements vscode.Disposable, ResultFeedListener {
  readonly controller: vscode.TestController;
  readonly tree: TestTree;
  readonly diagnostics = new TestDiagnostics();
  readonly statusBar: TestStatusBar;
  readonly runProfile: vscode.TestRunProfile;
  readonly debugProfile: vscode.TestRunProfile;
  /** The report.unreadable warnings shown, in order (the editor's tests read them). */
  readonly warnings: string[] = [];
  private readonly feed: ResultFeed;
  private readonly tracks = new Map<string, RunTrack>();
  /** The continuous run of each folder, while one is on. */
  private readonly continuous = new Map<FolderSession, vscode.TestRunRequest>();
  /** Runs being started by a profile: results of unknown runs wait until they are bound. */
  private readonly starting = new Map<FolderSession, Set<Promise<void>>>();
  private readonly warned = new Set<string>();
  private readonly _onDidUpdate = new vscode.EventEmitter<void>();
  /** Results were applied, a run ended or items were removed. */
  readonly onDidUpdate = this._onDidUpdate.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sessions: SessionManager,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.controller = vscode.tests.createTestController(TEST_CONTROLLER_ID, 'Conveyor');
    this.tree = new TestTree(this.controller);
    this.statusBar = new TestStatusBar(sessions);
    this.runProfile = this.controller.createRunProfile(
      'Run with Conveyor',
      vscode.TestRunProfileKind.Run,
      (request, token) => this.runRequest(request, token),
      true,
      undefined,
      true,
    );
    this.debugProfile = this.controller.createRunProfile(
      'Run with Conveyor (no debugger: the agent runs the tests)',
      vscode.TestRunProfileKind.Debug,
      (request, token) => this.runRequest(request, token),
      true,
    );
    this.controller.resolveHandler = (item) => (item ? undefined : this.discoverAll());
    // Deletions from anywhere: the explorer (onDidDeleteFiles) and outside the editor (the watcher).
    const watcher = vscode.workspace.createFileSystemWatcher('**', true, true, false);
    this.disposables.push(
      this.controller,
      this.diagnostics,
      this.statusBar,
      this._onDidUpdate,
      watcher,
      watcher.onDidDelete((uri) => this.onDeleted(uri)),
      vscode.workspace.onDidDeleteFiles((e) => e.files.forEach((uri) => this.onDeleted(uri))),
      vscode.workspace.onDidRenameFiles((e) => e.files.forEach((f) => this.onDeleted(f.oldUri))),
      vscode.workspace.onDidSaveTextDocument((doc) => this.onSaved(doc)),
      sessions.onDidChangeSessions(() => this.forgetRemovedFolders()),
    );
    this.feed = new ResultFeed(sessions, this, log);
    this.disposables.push(this.feed);
  }

  // -------------------------------------------------------------------------------------------
  // Results from the agent (ResultFeedListener)

  async seeded(session: FolderSession, runs: SeededResults[]): Promise<void> {
    await this.discover(session);
    for (const { run, groups } of runs) {
      for (const g of groups) {
        await this.apply(session, run, g, undefined);
        this.statusBar.record(session, run, g);
      }
    }
    // The loaded state in the Testing view: one run, not kept across reloads (it is loaded again).
    const folder = session.folder.uri.toString();
    const known = this.tree.leaves().filter((t) => this.tree.dataOf(t)?.folder === folder && this.tree.dataOf(t)?.latest);
    if (known.length) {
      const testRun = this.controller.createTestRun(new vscode.TestRunRequest(), `Conveyor: latest results (${session.folder.name})`, false);
      try {
        for (const t of known) this.report(testRun, t, this.tree.dataOf(t)!.latest!.result, this.tree.dataOf(t)!.messages);
      } finally {
        testRun.end();
      }
    }
    this._onDidUpdate.fire();
  }

  async runStarted(session: FolderSession, run: RunSummary): Promise<void> {
    await this.gate(session);
    const track = this.trackOf(session, run.id);
    if (!track.sink && run.trigger === 'save') track.sink = this.passiveSink(session, run);
    if (!track.sink) return;
    const running = track.sink.owned ? track.sink.requested : this.tree.leaves(this.impactFiles(session, run));
    for (const t of running) track.sink.testRun.started(t);
  }

  async results(session: FolderSession, run: RunSummary, group: StageTestResults): Promise<void> {
    await this.gate(session);
    const track = this.trackOf(session, run.id);
    track.sink ??= this.passiveSink(session, run);
    await this.apply(session, run, group, track);
    this.statusBar.record(session, run, group);
  }

  async reportUnreadable(session: FolderSession, run: RunSummary, problem: ReportProblem): Promise<void> {
    await this.gate(session);
    const track = this.trackOf(session, run.id);
    const text = `run #${run.id}: the test report of stage "${problem.stage}" (${problem.path}) could not be read: ${problem.reason}`;
    track.sink?.problems.push(problem);
    track.sink?.testRun.appendOutput(`Conveyor: ${text}\r\n`);
    for (const file of this.impactFiles(session, run)) file.error = text;
    const key = this.trackKey(session, run.id);
    if (this.warned.has(key)) return;
    this.warned.add(key);
    if (this.warned.size > 200) this.warned.delete(this.warned.values().next().value!);
    this.warnings.push(text);
    this.log.warn(`${session.folder.name}: ${text}`);
    void vscode.window
      .showWarningMessage(`Conveyor: ${text}`, 'Show Logs')
      .then((choice) =>
        choice ? vscode.commands.executeCommand(Commands.showLogs, { folder: session.folder.uri.fsPath, runId: run.id, stage: problem.stage, attempt: problem.attempt }) : undefined,
      )
      .then(undefined, () => undefined);
  }

  async runFinished(session: FolderSession, run: RunSummary): Promise<void> {
    await this.gate(session);
    const key = this.trackKey(session, run.id);
    const track = this.tracks.get(key);
    this.tracks.delete(key);
    if (!track) return;
    // A complete run's report lists every test of the files it ran: the others were removed or renamed.
    if (run.status === 'succeeded' || run.status === 'failed') {
      for (const [file, keep] of track.files) for (const gone of this.tree.prune(file, keep)) this.diagnostics.delete(gone.id);
    }
    this.endSink(track.sink, run);
    this._onDidUpdate.fire();
  }

  /** Ends a sink's TestRun, or hands the end to the profile that owns it. */
  private endSink(sink: RunSink | undefined, run: RunSummary | undefined): void {
    if (sink?.owned) sink.finished.resolve(run);
    else sink?.testRun.end();
  }

  /** A folder left the workspace (or lost its conveyor.yml): its runs, items and problems go. */
  private forgetRemovedFolders(): void {
    const live = new Set(this.sessions.list().map((s) => s.folder.uri.toString()));
    for (const [key, track] of [...this.tracks]) {
      if (live.has(key.slice(0, key.lastIndexOf('#')))) continue;
      this.tracks.delete(key);
      this.endSink(track.sink, undefined);
    }
    for (const s of [...this.continuous.keys()]) if (!live.has(s.folder.uri.toString())) this.continuous.delete(s);
    for (const gone of this.tree.removeFolders((folder) => !live.has(folder))) this.diagnostics.delete(gone.id);
    this._onDidUpdate.fire();
  }

  /** Applies one stage attempt's results: items, latest results, problems, and the sink's TestRun. */
  private async apply(session: FolderSession, run: RunSummary, group: StageTestResults, track: RunTrack | undefined): Promise<void> {
    const folder = session.folder;
    const folderKey = folder.uri.toString();
    const config = session.model.config;
    const impact = new Set((run.impact?.tests ?? []).map((rel) => path.join(folder.uri.fsPath, rel)));
    const resolver = new TestFileResolver(folder.uri.fsPath, config?.valid ? config.config.watch.tests : [], (f) => impact.has(f) || this.tree.hasFile(f));
    const texts = new TextCache();
    const files = new Set<vscode.TestItem>();
    for (const r of group.results) {
      const file = resolver.fileOf(r, () => this.tree.knownFileOf(folderKey, r.suite, r.name));
      const fileUri = file ? vscode.Uri.file(file) : undefined;
      // Results loaded from history may name test files deleted since.
      if (!track && fileUri && (await texts.get(fileUri)) === undefined) continue;
      const item = this.tree.testItem(folder, fileUri, group.stage, r.suite, r.name);
      const data = this.tree.dataOf(item)!;
      data.latest = { runId: run.id, trigger: run.trigger, stage: group.stage, attempt: group.attempt, result: r };
      data.messages = r.status === 'failed' ? [testMessage(r)] : undefined;
      if (r.status === 'failed' && r.location) {
        const uri = vscode.Uri.file(r.location.file);
        const lineText = (await texts.get(uri))?.split(/\r?\n/)[r.location.line - 1];
        this.diagnostics.set(item.id, fileUri, uri, failureDiagnostic({ ...r, location: r.location }, run.id, folder.uri.fsPath, lineText));
      } else {
        this.diagnostics.delete(item.id);
      }
      if (track?.sink) {
        this.report(track.sink.testRun, item, r, data.messages);
        track.sink.reported.add(item);
      }
      const fileItem = fileUri ? this.tree.fileItem(folder, fileUri) : undefined;
      if (fileItem) {
        files.add(fileItem);
        if (track) {
          const keep = track.files.get(fileItem) ?? new Set();
          keep.add(item);
          track.files.set(fileItem, keep);
        }
      }
    }
    for (const fileItem of files) {
      fileItem.error = undefined;
      const text = fileItem.uri && (await texts.get(fileItem.uri));
      if (text !== undefined && text !== '') this.tree.applyDeclarations(fileItem, text);
    }
    this._onDidUpdate.fire();
  }

  private report(testRun: vscode.TestRun, item: vscode.TestItem, r: TestResult, messages?: vscode.TestMessage[]): void {
    const duration = r.durationMs ?? undefined;
    switch (r.status) {
      case 'passed':
        testRun.passed(item, duration);
        break;
      case 'skipped':
        testRun.skipped(item);
        break;
      case 'failed':
        testRun.failed(item, messages ?? [testMessage(r)], duration);
        if (r.stack) testRun.appendOutput(`${r.stack.replace(/\r?\n/g, '\r\n')}\r\n`, toLocation(r.location), item);
        break;
    }
  }

  private trackKey(session: FolderSession, runId: number): string {
    return `${session.folder.uri.toString()}#${runId}`;
  }

  private trackOf(session: FolderSession, runId: number): RunTrack {
    const key = this.trackKey(session, runId);
    let track = this.tracks.get(key);
    if (!track) {
      track = { files: new Map() };
      this.tracks.set(key, track);
    }
    return track;
  }

  /** A TestRun for an agent run no profile started: a save run goes into the continuous run, if one is on. */
  private passiveSink(session: FolderSession, run: RunSummary): RunSink {
    const continuous = run.trigger === 'save' ? this.continuous.get(session) : undefined;
    const request = continuous ? new vscode.TestRunRequest(continuous.include, continuous.exclude, continuous.profile, true) : new vscode.TestRunRequest();
    const testRun = this.controller.createTestRun(request, `Conveyor run #${run.id} (${run.trigger})`, false);
    return { testRun, owned: false, requested: [], reported: new Set(), problems: [], finished: new Deferred() };
  }

  /** The file items of the test files a save run chose. */
  private impactFiles(session: FolderSession, run: RunSummary): vscode.TestItem[] {
    const files = (run.impact?.tests ?? []).map((rel) => vscode.Uri.file(path.join(session.folder.uri.fsPath, rel)).toString());
    return files.map((id) => this.controller.items.get(id)).filter((i): i is vscode.TestItem => !!i);
  }

  /** Waits while a profile is starting a run in the folder, so the run's results find its TestRun. */
  private async gate(session: FolderSession): Promise<void> {
    const pending = this.starting.get(session);
    while (pending && pending.size > 0) await Promise.all([...pending]);
  }

  // -------------------------------------------------------------------------------------------
  // Run profiles

  /** The Run and Debug profiles' handler: one working-tree run of the watch stages per folder. */
  private async runRequest(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    if (request.continuous) return this.runContinuously(request, token);
    const testRun = this.controller.createTestRun(request);
    try {
      const targets = this.targets(request);
      if (targets.size === 0) {
        testRun.appendOutput('Conveyor: there is no folder with a conveyor.yml to run tests in.\r\n');
        return;
      }
      await Promise.all([...targets].map(([session, leaves]) => this.runIn(session, leaves, testRun, token)));
    } finally {
      testRun.end();
    }
  }

  /** The folders a request runs in, each with the tests it asked for there. */
  private targets(request: vscode.TestRunRequest): Map<FolderSession, vscode.TestItem[]> {
    const out = new Map<FolderSession, vscode.TestItem[]>();
    if (!request.include) {
      for (const s of this.sessions.list()) {
        const folder = s.folder.uri.toString();
        out.set(s, this.tree.leaves(this.tree.roots().filter((r) => this.tree.dataOf(r)?.folder === folder), request.exclude));
      }
      return out;
    }
    for (const item of request.include) {
      const folder = this.tree.dataOf(item)?.folder;
      const session = folder ? this.sessions.forFolder(vscode.Uri.parse(folder)) : undefined;
      if (!session) continue;
      out.set(session, [...(out.get(session) ?? []), ...this.tree.leaves([item], request.exclude)]);
    }
    return out;
  }

  private async runIn(session: FolderSession, leaves: readonly vscode.TestItem[], testRun: vscode.TestRun, token: vscode.CancellationToken): Promise<void> {
    for (const t of leaves) testRun.enqueued(t);
    const sink: RunSink = { testRun, owned: true, requested: leaves, reported: new Set(), problems: [], finished: new Deferred() };
    let problem: string | undefined;
    let finished: RunSummary | undefined;
    try {
      const http = await session.requireApi();
      if (token.isCancellationRequested) return;
      const stages = await this.watchStages(session, http);
      const runId = await this.startBound(session, http, sink, stages, this.filesOf(session, leaves));
      testRun.appendOutput(`Conveyor: run #${runId} of ${stages.join(', ')} on the working tree of ${session.folder.name}\r\n`);
      const cancel = () => void http.cancelRun(runId).then(undefined, (e: unknown) => this.log.warn(`cancel run #${runId}: ${errorMessage(e)}`));
      const onCancel = token.onCancellationRequested(cancel);
      if (token.isCancellationRequested) cancel();
      try {
        finished = await untilOffline(session, sink.finished.promise);
      } finally {
        onCancel.dispose();
      }
      if (!finished) problem = `the agent of ${session.folder.name} went away before run #${runId} finished`;
      else if (sink.problems.length) problem = sink.problems.map((p) => `stage ${p.stage}: the report ${p.path} could not be read: ${p.reason}`).join('\n');
      else if (finished.status === 'failed') problem = `run #${runId} failed without a result for this test (see its logs)`;
    } catch (e) {
      problem = errorMessage(e);
      this.log.warn(`${session.folder.name}: running tests: ${problem}`);
      testRun.appendOutput(`Conveyor: ${problem.replace(/\r?\n/g, '\r\n')}\r\n`);
    } finally {
      for (const t of leaves) {
        // Reported, or removed by the run (a test renamed or deleted since it was listed).
        if (sink.reported.has(t) || this.tree.find(t.id) !== t) continue;
        if (problem) testRun.errored(t, new vscode.TestMessage(problem));
        else testRun.skipped(t);
      }
    }
  }

  /** Starts the run, holding back the folder's results until the run is bound to `sink`. */
  /**
   * The workspace-relative test files that hold `leaves`, when they are a part of the folder's
   * tests: the run then runs just those files. Undefined (run everything) for the whole folder or
   * when a leaf has no known file.
   */
  private filesOf(session: FolderSession, leaves: readonly vscode.TestItem[]): string[] | undefined {
    const folder = session.folder.uri.toString();
    const all = this.tree.leaves(this.tree.roots().filter((r) => this.tree.dataOf(r)?.folder === folder), undefined);
    if (leaves.length >= all.length) return undefined;
    const files = new Set<string>();
    for (const leaf of leaves) {
      const file = this.tree.dataOf(leaf)?.file;
      if (!file) return undefined;
      const rel = path.relative(session.folder.uri.fsPath, file.fsPath).split(path.sep).join('/');
      if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
      files.add(rel);
    }
    return [...files].sort();
  }

  private async startBound(session: FolderSession, http: AgentHttp, sink: RunSink, stages: string[], tests?: string[]): Promise<number> {
    const bound = new Deferred();
    const pending = this.starting.get(session) ?? new Set();
    this.starting.set(session, pending);
    pending.add(bound.promise);
    try {
      const run = await http.startRun({ workingTree: true, stages, trigger: 'manual', tests });
      this.trackOf(session, run.id).sink = sink;
      return run.id;
    } finally {
      pending.delete(bound.promise);
      bound.resolve();
    }
  }

  /** The stages a save run runs: the agent's answer, else conveyor.yml's watch.stages. */
  private async watchStages(session: FolderSession, http: AgentHttp): Promise<string[]> {
    const state = await http.request<WatchState>('GET', '/watch');
    if (state.stages.length) return state.stages;
    const config = session.model.config;
    const declared = config?.valid ? config.config.watch.stages : [];
    if (declared.length) return declared;
    throw new Error(state.problem ?? 'conveyor.yml names no stage that runs the tests: add "watch: { stages: [test] }"');
  }

  /**
   * Continuous run: the agent's develop loop is on (every save starts a run of the tests it
   * affects, and each run's results come as a TestRun of this request) until the request is
   * cancelled; then the loop is turned off.
   */
  private async runContinuously(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const sessions = request.include ? [...this.targets(request).keys()] : this.sessions.list();
    const on: FolderSession[] = [];
    await Promise.all(
      sessions.map(async (s) => {
        try {
          const state = await (await s.requireApi()).request<WatchState>('POST', '/watch', { enabled: true });
          this.continuous.set(s, request);
          on.push(s);
          if (state.problem) void vscode.window.showWarningMessage(`Conveyor: saves in ${s.folder.name} start no runs: ${state.problem}`).then(undefined, () => undefined);
        } catch (e) {
          void vscode.window.showWarningMessage(`Conveyor: cannot run ${s.folder.name}'s tests continuously: ${errorMessage(e)}`).then(undefined, () => undefined);
        }
      }),
    );
    try {
      await new Promise<void>((resolve) => {
        if (token.isCancellationRequested) return resolve();
        const sub = token.onCancellationRequested(() => {
          sub.dispose();
          resolve();
        });
      });
    } finally {
      await Promise.all(
        on.map(async (s) => {
          if (this.continuous.get(s) !== request) return;
          this.continuous.delete(s);
          try {
            await s.http?.request<WatchState>('POST', '/watch', { enabled: false });
          } catch (e) {
            this.log.warn(`${s.folder.name}: turning the develop loop off: ${errorMessage(e)}`);
          }
        }),
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Files

  private async discoverAll(): Promise<void> {
    await Promise.all(this.sessions.list().map((s) => this.discover(s)));
  }

  /** File items for the test files conveyor.yml declares (watch.tests), so they can be run before any result. */
  private async discover(session: FolderSession): Promise<void> {
    const config = session.model.config;
    if (!config?.valid) return;
    for (const glob of config.config.watch.tests) {
      try {
        const found = await vscode.workspace.findFiles(new vscode.RelativePattern(session.folder, glob), '**/node_modules/**', 1000);
        for (const uri of found) this.tree.fileItem(session.folder, uri);
      } catch (e) {
        this.log.warn(`${session.folder.name}: looking for test files (${glob}): ${errorMessage(e)}`);
      }
    }
  }

  private onDeleted(uri: vscode.Uri): void {
    for (const gone of this.tree.removeUnder(uri)) this.diagnostics.delete(gone.id);
    this.diagnostics.deleteUnder(uri);
    this._onDidUpdate.fire();
  }

  private onSaved(doc: vscode.TextDocument): void {
    const item = this.controller.items.get(doc.uri.toString());
    if (item) this.tree.applyDeclarations(item, doc.getText());
  }

  // -------------------------------------------------------------------------------------------
  // For the editor's tests

  /** Resolves when the results the agent has sent so far are applied. */
  settled(): Promise<void> {
    return this.feed.settled();
  }

  snapshot(): TestNodeSnapshot[] {
    const node = (item: vscode.TestItem): TestNodeSnapshot => {
      const data = this.tree.dataOf(item);
      const children: TestNodeSnapshot[] = [];
      item.children.forEach((c) => children.push(node(c)));
      return {
        id: item.id,
        label: item.label,
        kind: data?.kind ?? 'test',
        range: item.range ? [item.range.start.line, item.range.start.character] : undefined,
        status: data?.latest?.result.status,
        runId: data?.latest?.runId,
        error: typeof item.error === 'string' ? item.error : item.error?.value,
        children: children.sort((a, b) => a.label.localeCompare(b.label)),
      };
    };
    return this.tree
      .roots()
      .map(node)
      .sort((a, b) => a.label.localeCompare(b.label));
  }

  /** The messages reported with a test's latest failure. */
  messagesOf(testId: string): vscode.TestMessage[] | undefined {
    const item = this.tree.find(testId);
    return item ? this.tree.dataOf(item)?.messages : undefined;
  }

  dispose(): void {
    for (const track of this.tracks.values()) this.endSink(track.sink, undefined);
    this.tracks.clear();
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}

/** Resolves with `p`, or undefined when the folder's agent goes offline first. */
function untilOffline<T>(session: FolderSession, p: Promise<T>): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve) => {
    const sub = session.onDidChangeState((state) => {
      if (state !== 'offline') return;
      sub.dispose();
      resolve(undefined);
    });
    p.then(
      (v) => {
        sub.dispose();
        resolve(v);
      },
      () => {
        sub.dispose();
        resolve(undefined);
      },
    );
  });
}

/** File texts read once per batch: the open document's, else the file's on disk. */
class TextCache {
  private readonly texts = new Map<string, Promise<string | undefined>>();

  get(uri: vscode.Uri): Promise<string | undefined> {
    const key = uri.toString();
    let text = this.texts.get(key);
    if (!text) {
      const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === key);
      text = open
        ? Promise.resolve(open.getText())
        : Promise.resolve(vscode.workspace.fs.readFile(uri)).then(
            (bytes) => new TextDecoder().decode(bytes),
            () => undefined,
          );
      this.texts.set(key, text);
    }
    return text;
  }
}

/** Creates the Testing view's controller and what goes with it; disposed with the extension. */
export function registerTesting(context: vscode.ExtensionContext, deps: { sessions: SessionManager; log: vscode.LogOutputChannel }): ConveyorTesting {
  const testing = new ConveyorTesting(deps.sessions, deps.log);
  context.subscriptions.push(testing);
  return testing;
}
