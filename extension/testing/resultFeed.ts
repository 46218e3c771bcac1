import * as vscode from 'vscode';
import type { RunDetail, RunSummary, SequencedEvent, StageTestResults } from '../../agent/protocol';
import { FINISHED_RUN_STATUSES, FINISHED_STAGE_STATUSES } from '../../agent/protocol';
import type { AgentHttp } from '../agent/agentApi';
import type { ModelChange } from '../model/runModel';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage } from '../util/async';

/** How many finished runs the feed loads results of when a folder connects. */
export const SEED_RUNS = 10;

/** A stage's report the agent could not read (the `report.unreadable` event). */
export interface ReportProblem {
  stage: string;
  attempt: number;
  path: string;
  reason: string;
}

/** The results of a run loaded when a folder connected. */
export interface SeededResults {
  run: RunSummary;
  groups: StageTestResults[];
}

/**
 * What the feed reports, per folder: the test side of each run, once each and in order (the
 * start, each stage attempt's results, the unreadable reports, the end). The feed awaits each
 * call before the next one of the same run.
 */
export interface ResultFeedListener {
  /** The folder connected: the results of its latest finished runs, oldest first. */
  seeded(session: FolderSession, runs: SeededResults[]): Promise<void>;
  runStarted(session: FolderSession, run: RunSummary): Promise<void>;
  results(session: FolderSession, run: RunSummary, group: StageTestResults): Promise<void>;
  reportUnreadable(session: FolderSession, run: RunSummary, problem: ReportProblem): Promise<void>;
  runFinished(session: FolderSession, run: RunSummary): Promise<void>;
}

/**
 * Follows the test results of every folder's runs through the folder session the rest of the
 * extension uses: its RunModel says when a run starts, when a stage ends (the agent sends
 * `tests.reported` or `report.unreadable` just before the stage's final `stage.changed`) and
 * when the run finishes; the results themselves come from GET /api/runs/:id/tests, which
 * holds exactly what `tests.reported` carried, keyed by stage and attempt. An unreadable
 * report is looked up in the event log (GET /api/events) only when a stage with a report
 * ends with no results.
 *
 * ```
 *  connected ──> seed: results of the latest SEED_RUNS finished runs; follow the active ones
 *  model change ──> a run above the seed (or active at seeding) ──> follow it:
 *      queued → running ...................... runStarted
 *      a stage ends or retries ............... fetch → results (new stage attempts only)
 *      a stage with a report ends, no results  its report.unreadable → reportUnreadable
 *      the run finishes ...................... fetch, check → runFinished, forget the run
 * ```
 */
export class ResultFeed implements vscode.Disposable {
  private readonly feeds = new Map<FolderSession, SessionFeed>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sessions: SessionManager,
    private readonly listener: ResultFeedListener,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(sessions.onDidChangeSessions(() => this.sync()));
    this.sync();
  }

  private sync(): void {
    const live = new Set(this.sessions.list());
    for (const [s, feed] of this.feeds) {
      if (live.has(s)) continue;
      feed.dispose();
      this.feeds.delete(s);
    }
    for (const s of live) if (!this.feeds.has(s)) this.feeds.set(s, new SessionFeed(s, this.listener, this.log));
  }

  /** Resolves when every folder's feed has delivered what it has begun to (tests wait on it). */
  async settled(): Promise<void> {
    await Promise.all([...this.feeds.values()].map((f) => f.settled()));
  }

  dispose(): void {
    for (const f of this.feeds.values()) f.dispose();
    this.feeds.clear();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

interface FollowedRun {
  id: number;
  /** The newest summary seen. */
  summary: RunSummary;
  started: boolean;
  finished: boolean;
  /** `status:attempt` of each stage as last seen. */
  stages: Map<string, string>;
  /** `stage\0attempt` of the results delivered. */
  delivered: Set<string>;
  /** `stage\0attempt` of the stages whose report was looked up. */
  checked: Set<string>;
  /** A fetch is queued and has not begun. */
  fetchQueued: boolean;
  /** A fetch failed (no agent): fetch again when the folder reconnects. */
  stale: boolean;
  queue: Promise<void>;
}

const key = (stage: string, attempt: number) => `${stage}\u0000${attempt}`;

class SessionFeed implements vscode.Disposable {
  private readonly runs = new Map<number, FollowedRun>();
  /** Runs done with (seeded, or followed to their end). */
  private readonly done = new Set<number>();
  /** Runs at or below it that are not followed were seeded or are older. -1: not seeded yet. */
  private baseline = -1;
  private seeding: Promise<void> = Promise.resolve();
  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;

  constructor(
    private readonly session: FolderSession,
    private readonly listener: ResultFeedListener,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      session.onDidChangeState((state) => {
        if (state === 'connected') this.onConnected();
      }),
      session.model.onDidChange((c) => this.onModelChange(c)),
    );
    if (session.state === 'connected') this.onConnected();
  }

  private onConnected(): void {
    // On a reconnect the model replays what was missed and the followed runs see it; only a
    // first connection (or one after the agent's history restarted) loads results.
    if (this.baseline < 0) this.seed();
    for (const f of this.runs.values()) if (f.stale) this.fetchSoon(f);
    this.onModelChange({ runs: new Set(this.runs.keys()), listChanged: true, configChanged: false });
  }

  /**
   * Loads the results of the newest finished runs and follows the active ones. Runs followed
   * live wait for it, so older results never overwrite newer ones.
   */
  private seed(): void {
    const http = this.session.http;
    if (!http) return;
    const runs = this.session.model.list();
    this.baseline = Math.max(0, ...runs.map((r) => r.summary.id));
    const finished = runs.filter((r) => FINISHED_RUN_STATUSES.includes(r.summary.status) && !this.done.has(r.summary.id)).slice(0, SEED_RUNS);
    for (const r of finished) this.done.add(r.summary.id);
    this.seeding = this.seeding
      .then(async () => {
        const loaded = await Promise.all(
          finished.map(async (r) => {
            try {
              return { run: r.summary, groups: await http.request<StageTestResults[]>('GET', `/runs/${r.summary.id}/tests`) };
            } catch (e) {
              this.log.warn(`${this.session.folder.name}: results of run #${r.summary.id}: ${errorMessage(e)}`);
              return { run: r.summary, groups: [] };
            }
          }),
        );
        const withResults = loaded.filter((l) => l.groups.length > 0).sort((a, b) => a.run.id - b.run.id);
        if (!this.disposed) await this.listener.seeded(this.session, withResults);
      })
      .catch((e: unknown) => this.log.error(`${this.session.folder.name}: loading test results: ${errorMessage(e)}`));
    for (const r of runs) if (!FINISHED_RUN_STATUSES.includes(r.summary.status)) this.follow(r.summary);
  }

  private follow(summary: RunSummary): FollowedRun {
    let f = this.runs.get(summary.id);
    if (!f) {
      f = {
        id: summary.id,
        summary,
        started: false,
        finished: false,
        stages: new Map(),
        delivered: new Set(),
        checked: new Set(),
        fetchQueued: false,
        stale: false,
        queue: this.seeding,
      };
      this.runs.set(summary.id, f);
    }
    return f;
  }

  private onModelChange(change: ModelChange): void {
    const model = this.session.model;
    if (model.lastSeq === 0 && model.list().length === 0) {
      // The model was reset (a refresh, or the agent's history restarted): load again.
      this.runs.clear();
      this.done.clear();
      this.baseline = -1;
      return;
    }
    if (this.baseline < 0) return;
    const ids = new Set(change.runs);
    if (change.listChanged) for (const r of model.list()) if (r.summary.id > this.baseline) ids.add(r.summary.id);
    for (const id of ids) {
      const run = model.get(id);
      if (!run || this.done.has(id)) continue;
      if (!this.runs.has(id) && id <= this.baseline) continue;
      const summary = run.summary;
      const f = this.follow(summary);
      f.summary = summary;
      if (!f.started && summary.status !== 'queued') {
        f.started = true;
        this.enqueue(f, () => this.listener.runStarted(this.session, f.summary));
      }
      let stageEnded = false;
      for (const st of run.stages) {
        const sig = `${st.status}:${st.attempt}`;
        const before = f.stages.get(st.name);
        if (before === sig) continue;
        f.stages.set(st.name, sig);
        // A retry ends the attempt before it, which may have reported.
        const retried = before !== undefined ? st.attempt > Number(before.split(':')[1]) : st.attempt > 1;
        if (FINISHED_STAGE_STATUSES.includes(st.status) || retried) stageEnded = true;
      }
      if (FINISHED_RUN_STATUSES.includes(summary.status) && !f.finished) {
        f.finished = true;
        this.enqueue(f, async () => {
          await this.fetchAndCheck(f);
          this.runs.delete(f.id);
          this.done.add(f.id);
          await this.listener.runFinished(this.session, f.summary);
        });
      } else if (stageEnded) {
        this.fetchSoon(f);
      }
    }
  }

  private fetchSoon(f: FollowedRun): void {
    if (f.fetchQueued) return;
    f.fetchQueued = true;
    this.enqueue(f, () => this.fetchAndCheck(f));
  }

  private async fetchAndCheck(f: FollowedRun): Promise<void> {
    await this.fetch(f);
    if (await this.checkReports(f)) await this.fetch(f);
  }

  private enqueue(f: FollowedRun, work: () => Promise<void>): void {
    f.queue = f.queue
      .then(() => (this.disposed ? undefined : work()))
      .catch((e: unknown) => this.log.error(`${this.session.folder.name}: test results of run #${f.id}: ${errorMessage(e)}`));
  }

  /** Delivers the stage attempts of the run not delivered yet, in the agent's order. */
  private async fetch(f: FollowedRun): Promise<void> {
    f.fetchQueued = false;
    const http = this.session.http;
    if (!http) {
      f.stale = true;
      return;
    }
    let groups: StageTestResults[];
    try {
      groups = await http.request<StageTestResults[]>('GET', `/runs/${f.id}/tests`);
    } catch (e) {
      f.stale = true;
      this.log.warn(`${this.session.folder.name}: results of run #${f.id}: ${errorMessage(e)}`);
      return;
    }
    f.stale = false;
    for (const g of groups) {
      const k = key(g.stage, g.attempt);
      if (f.delivered.has(k)) continue;
      f.delivered.add(k);
      await this.listener.results(this.session, f.summary, g);
    }
  }

  /**
   * Stages with a report that ended with no results delivered: their `report.unreadable`,
   * told once. True when a stage did report after the last fetch: fetch again.
   */
  private async checkReports(f: FollowedRun): Promise<boolean> {
    const run = this.session.model.get(f.id);
    const config = this.session.model.config;
    const http = this.session.http;
    let refetch = false;
    if (!run || !http || f.stale) return refetch;
    for (const st of run.stages) {
      if (!FINISHED_STAGE_STATUSES.includes(st.status) || st.attempt < 1) continue;
      // No report is read after a cancelled attempt, nor for a stage that never ran.
      if (st.status === 'cancelled' || st.status === 'skipped' || st.status === 'interrupted') continue;
      const k = key(st.name, st.attempt);
      if (f.delivered.has(k) || f.checked.has(k)) continue;
      if (config?.valid && !config.config.pipeline.stages.find((s) => s.name === st.name)?.report) continue;
      f.checked.add(k);
      const found = await this.findReportEvent(http, f.id, st.name, st.attempt);
      if (found === 'reported') refetch = true;
      else if (found) await this.listener.reportUnreadable(this.session, f.summary, found);
    }
    return refetch;
  }

  /**
   * What the event log says of a stage attempt's report: unreadable (and why), reported, or
   * nothing (undefined).
   */
  private async findReportEvent(http: AgentHttp, runId: number, stage: string, attempt: number): Promise<ReportProblem | 'reported' | undefined> {
    try {
      const detail = await http.request<RunDetail>('GET', `/runs/${runId}`);
      let since = Math.max(0, detail.firstSeq - 1);
      for (let page = 0; page < 20; page++) {
        const events = await http.request<SequencedEvent[]>('GET', `/events?since=${since}&limit=2000`);
        for (const e of events) {
          if (e.type === 'report.unreadable' && e.runId === runId && e.stage === stage && e.attempt === attempt) {
            return { stage, attempt, path: e.path, reason: e.reason };
          }
          if (e.type === 'tests.reported' && e.runId === runId && e.stage === stage && e.attempt === attempt) return 'reported';
          if (e.type === 'run.finished' && e.run.id === runId) return undefined;
        }
        if (events.length === 0) return undefined;
        since = events[events.length - 1].seq;
      }
    } catch (e) {
      this.log.warn(`${this.session.folder.name}: events of run #${runId}: ${errorMessage(e)}`);
    }
    return undefined;
  }

  async settled(): Promise<void> {
    await this.seeding;
    await Promise.all([...this.runs.values()].map((f) => f.queue));
  }

  dispose(): void {
    this.disposed = true;
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
