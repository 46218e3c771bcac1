import * as path from 'node:path';
import type { TestImpact, WatchConfig } from '../protocol';
import { Disposable, Emitter, reportUnexpected, toDisposable, type Event } from '../util/lifecycle';
import { FileWatcher, type FileChangeSet } from './files';
import { GlobSet, TestImpactAnalyzer } from './impact';

/**
 * `watch.tests`: globs of the test files. Read defensively, so that a config built before the
 * key existed (or by hand, in a test) means "no test files declared".
 */
export function watchTests(watch: Omit<WatchConfig, 'tests'> & { tests?: unknown }): string[] {
  const tests = watch.tests;
  return Array.isArray(tests) ? tests.filter((t): t is string => typeof t === 'string' && t !== '') : [];
}

export type DevelopState = 'starting' | 'idle' | 'debouncing' | 'analysing' | 'running' | 'disposed';

export interface DevelopLoopOptions {
  /** Absolute path of the workspace folder. */
  root: string;
  /**
   * The config's `watch` section: include, exclude and tests globs. What the watch stages write
   * into the workspace (reports, artifacts) must be git-ignored or excluded, or each run's
   * output would start the next run.
   */
  watch: WatchConfig;
  /**
   * Starts a save run for this impact. The promise should settle when that run has ended
   * (finished, failed or cancelled): until then the loop counts the run as in flight, and a
   * save that supersedes it carries its tests over. A rejection is reported, not retried.
   */
  start(impact: TestImpact): Promise<void>;
  /** Quiet period that ends a burst of saves, in ms. Default 100. */
  quietMs?: number;
  /** Longest a burst is held, in ms. Default 1000. */
  maxWaitMs?: number;
  /**
   * Start a run even when a change affects no test file (a source no test imports), so that
   * the other watch stages (a build, a linter) still run. Default false: nothing to test,
   * nothing started.
   */
  startWhenNoTests?: boolean;
}

/** What the loop made of one change set. */
export interface DevelopIteration {
  impact: TestImpact;
  /** False when nothing was started: no test affected. */
  started: boolean;
}

/**
 * The develop loop: saves in the workspace start runs of the tests they affect, on the working
 * tree.
 *
 * ```
 *              ready
 *  starting ─────────> idle <─────────────────────────────────────────────┐
 *                       │ first event of a burst                          │
 *                       v                                                 │
 *                  debouncing <── more events: the quiet period           │
 *                       │   │     starts over (for at most maxWaitMs)     │
 *                       │   └── the burst changed nothing (a temporary    │
 *                       │       file came and went) ──> back to idle,     │
 *                       │       or to running if a run is in flight       │
 *                       │ quiet for quietMs: a change set                 │
 *                       v                                                 │
 *                  analysing ── no test affected: nothing started ──> idle, or running
 *                       │                                                 │
 *                       │ start(impact ∪ impact of the run in flight)     │
 *                       v                                                 │ start() settled:
 *                    running ─────────────────────────────────────────────┘ the run ended
 *                       │
 *                       │ first event of a burst while the run goes on
 *                       └──> debouncing ──> analysing ──> start() again: the engine cancels
 *                            the run this one supersedes, and since this one also runs the
 *                            superseded run's tests, no result is lost; when the superseded
 *                            run's start() settles, nothing happens
 *
 *  any state ── dispose ──> disposed
 * ```
 *
 * The state follows from three facts: a burst is in progress (debouncing), a change set is
 * being analysed (analysing), a run is in flight (running); the first that holds wins.
 * The watcher debounces (one `Debouncer`), the analyzer keeps the import graph, the injected
 * `start` asks the engine for the run. Change sets that arrive while one is being analysed are
 * merged and analysed together, once. Between iterations the loop keeps only the impact of the
 * run in flight: nothing of an ended iteration stays reachable.
 */
export class DevelopLoop extends Disposable {
  private readonly _onDidChangeState = this._register(new Emitter<DevelopState>());
  readonly onDidChangeState: Event<DevelopState> = this._onDidChangeState.event;

  private readonly _onDidAnalyse = this._register(new Emitter<DevelopIteration>());
  /** A change set was analysed: its impact, and whether a run was started for it. */
  readonly onDidAnalyse: Event<DevelopIteration> = this._onDidAnalyse.event;

  /** Resolves when the watcher has listed the workspace and the import graph is built. */
  readonly ready: Promise<void>;

  private _state: DevelopState = 'starting';
  private readonly watcher: FileWatcher;
  /** `watch.include`: the saves that start runs. The others only keep the import graph up to date. */
  private readonly include: GlobSet;
  private readonly analyzer: Promise<TestImpactAnalyzer | Error>;
  private built: TestImpactAnalyzer | undefined;
  /** Change sets waiting for the analysis in progress to end, merged. */
  private queued: Map<string, boolean> | undefined;
  private analysing: Promise<void> | undefined;
  /** The run in flight: its impact, and a number that tells a superseded run's end from it. */
  private inFlight: { impact: TestImpact; generation: number } | undefined;
  private generation = 0;
  /** Between the first event of a burst and its end. */
  private burst = false;
  private analysingNow = false;
  private isReady = false;
  private disposed = false;

  constructor(private readonly opts: DevelopLoopOptions) {
    super();
    const root = path.resolve(opts.root);
    this.include = new GlobSet(opts.watch.include.length > 0 ? opts.watch.include : ['**']);
    // Every save is watched, included or not, so that the graph knows what a test file outside
    // `include` imports now; `exclude` prunes what is never looked at.
    this.watcher = this._register(
      new FileWatcher({
        root,
        exclude: opts.watch.exclude,
        quietMs: opts.quietMs,
        maxWaitMs: opts.maxWaitMs,
      }),
    );
    this.analyzer = TestImpactAnalyzer.create({ root, tests: watchTests(opts.watch) }).then(
      (a) => (this.built = a),
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    this._register(
      this.watcher.onWillChange(() => {
        this.burst = true;
        this.updateState();
      }),
    );
    this._register(this.watcher.onDidChange((set) => this.enqueue(set)));
    this._register(
      this.watcher.onDidSettle(() => {
        this.burst = false;
        this.updateState();
      }),
    );
    this._register(toDisposable(() => (this.disposed = true)));
    this.ready = Promise.all([this.watcher.ready, this.analyzer]).then(() => {
      this.isReady = true;
      this.updateState();
    });
  }

  get state(): DevelopState {
    return this._state;
  }

  /** Reports the pending burst now instead of after the quiet period. */
  flush(): void {
    this.watcher.flush();
  }

  /** Disposes, then waits for the watcher to let go and for an analysis in progress to end. */
  async close(): Promise<void> {
    this.dispose();
    await Promise.all([this.watcher.close(), this.analysing]);
  }

  override dispose(): void {
    if (this.disposed) return;
    this.queued = undefined;
    this.inFlight = undefined;
    this._state = 'disposed';
    this._onDidChangeState.fire('disposed');
    super.dispose();
  }

  /** The state follows from what is going on; see the diagram. */
  private updateState(): void {
    if (this.disposed) return;
    const s: DevelopState = this.burst
      ? 'debouncing'
      : this.analysingNow
        ? 'analysing'
        : this.inFlight
          ? 'running'
          : this.isReady
            ? 'idle'
            : 'starting';
    if (s === this._state) return;
    this._state = s;
    this._onDidChangeState.fire(s);
  }

  private enqueue(set: FileChangeSet): void {
    if (this.disposed) return;
    const queued = (this.queued ??= new Map());
    for (const f of set.changed) queued.set(f, true);
    for (const f of set.deleted) queued.set(f, false);
    if (!this.analysing) this.analysing = this.drain();
  }

  /** Analyses the queued change sets, merged, until none is left. */
  private async drain(): Promise<void> {
    try {
      while (this.queued && !this.disposed) {
        const queued = this.queued;
        this.queued = undefined;
        const set: FileChangeSet = { changed: [], deleted: [] };
        for (const [f, exists] of queued) (exists ? set.changed : set.deleted).push(f);
        this.analysingNow = true;
        this.updateState();
        const impact = await this.analyse(set);
        this.analysingNow = false;
        if (this.disposed) return;
        if (impact) this.act(impact);
        this.updateState();
      }
    } finally {
      // In the same step as the last look at the queue: a change set enqueued from now on starts a new drain.
      this.analysing = undefined;
    }
  }

  /** The impact of a change set; undefined when none of its files is included (the graph is updated all the same). */
  private async analyse(set: FileChangeSet): Promise<TestImpact | undefined> {
    const counts = (f: string): boolean => this.include.matches(f);
    const changed = [...set.changed, ...set.deleted].filter(counts).sort();
    const analyzer = await this.analyzer;
    if (analyzer instanceof Error) {
      if (changed.length === 0) return undefined;
      return { mode: 'all', changed, tests: [], reason: `the import graph could not be built: ${analyzer.message}` };
    }
    try {
      if (changed.length === 0) {
        await analyzer.update(set);
        return undefined;
      }
      return await analyzer.analyze(set, counts);
    } catch (e) {
      reportUnexpected(e);
      if (changed.length === 0) return undefined;
      return { mode: 'all', changed, tests: analyzer.testFiles, reason: `the import graph could not be updated: ${(e as Error)?.message ?? e}` };
    }
  }

  private act(impact: TestImpact): void {
    const nothingToTest = impact.mode === 'affected' && impact.tests.length === 0;
    if (nothingToTest && !this.opts.startWhenNoTests) {
      this._onDidAnalyse.fire({ impact, started: false });
      return;
    }
    let merged = impact;
    if (this.inFlight) {
      merged = mergeImpacts(this.inFlight.impact, impact);
      // A test file deleted since the superseded run started is not run again.
      const built = this.built;
      if (merged.mode === 'affected' && built) merged = { ...merged, tests: merged.tests.filter((t) => built.hasTest(t)) };
    }
    const generation = ++this.generation;
    this.inFlight = { impact: merged, generation };
    this._onDidAnalyse.fire({ impact: merged, started: true });
    let started: Promise<void>;
    try {
      started = this.opts.start(merged);
    } catch (e) {
      started = Promise.reject(e);
    }
    started
      .catch((e: unknown) => reportUnexpected(e))
      .finally(() => this.settled(generation));
  }

  private settled(generation: number): void {
    // A superseded run ending says nothing about the run that replaced it.
    if (this.disposed || this.inFlight?.generation !== generation) return;
    this.inFlight = undefined;
    this.updateState();
  }
}

/**
 * The impact of a run that supersedes another still in flight: the new run also runs the tests
 * the old one would have, since it is cancelled before it could report them.
 */
export function mergeImpacts(older: TestImpact, newer: TestImpact): TestImpact {
  const changed = [...new Set([...older.changed, ...newer.changed])].sort();
  if (newer.mode === 'whole-stage' || older.mode === 'whole-stage') {
    return { mode: 'whole-stage', changed, tests: [], reason: newer.mode === 'whole-stage' ? newer.reason : older.reason };
  }
  if (newer.mode === 'all' || older.mode === 'all') {
    const all = newer.mode === 'all' ? newer : older;
    return { mode: 'all', changed, tests: all.tests, reason: all.reason };
  }
  return { mode: 'affected', changed, tests: [...new Set([...older.tests, ...newer.tests])].sort(), reason: null };
}
