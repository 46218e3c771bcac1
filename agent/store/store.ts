import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  AgentEvent,
  ArtifactInfo,
  RunDetail,
  RunStatus,
  RunSummary,
  SequencedEvent,
  StageInfo,
  StageTestResults,
  StepInfo,
  ApprovalInfo,
  DeploymentInfo,
  PreviewInfo,
  Release,
  TestImpact,
  TestResult,
} from '../protocol';
import { Emitter, type Event, type IDisposable } from '../util/lifecycle';
import { MIGRATIONS } from './migrations';
import { openDatabase, type EngineInfo, type OpenOptions, type SqliteDatabase } from './sqlite';

/** An event as persisted, with its JSON text made once and shared by every subscriber. */
export interface StoredEvent {
  seq: number;
  json: string;
}

/** How many bytes of recent event JSON stay in memory for subscribers that keep up. */
const RING_BYTES = 16 * 1024 * 1024;
/** Appends are written in one transaction per tick, or sooner when this many are waiting. */
const FLUSH_AT = 2048;

/**
 * A step's process group, recorded while it may run so that the agent started after a crash can
 * stop it (see `stepProcesses`).
 */
export interface StepProcess {
  /** The process group id: the pid of the step's shell, which leads the group. */
  pgid: number;
  /** Tells the group's leader from a later process given the same pid; null where there is no /proc. */
  identity: string | null;
  runId: number;
  stage: string;
  attempt: number;
  index: number;
}

/** Which SQLite engine (see `./sqlite`), and the size of the in-memory ring. */
export interface StoreOptions extends OpenOptions {
  /** Bytes of recent event JSON kept in memory (default 16 MiB). */
  ringBytes?: number;
  /** The clock that stamps appended events (default: the system clock). */
  clock?: () => Date;
}

/**
 * The agent's history: an append-only event log in SQLite (WAL) and the tables derived from it.
 * It runs on either SQLite engine (see `./sqlite`); `engine` says which one.
 *
 * Every state change is appended here before anyone hears of it: `append` gives the event its
 * sequence number, the batch is written in one transaction (with the derived rows) at the end
 * of the tick, and only then does `onDidAppend` fire. Readers call `flush()` implicitly, so a
 * query always sees every event appended before it.
 */
export class Store implements IDisposable {
  private readonly db: SqliteDatabase;
  private readonly ringLimit: number;
  private readonly clock: () => Date;
  private seq: number;
  private pending: SequencedEvent[] = [];
  private flushScheduled = false;
  /** Recent events, oldest at `ringHead`: trimming moves the head, compaction is occasional. */
  private ring: StoredEvent[] = [];
  private ringHead = 0;
  private ringBytes = 0;
  private readonly _onDidAppend = new Emitter<StoredEvent[]>();
  /** Fires after a batch is committed, in sequence order. */
  readonly onDidAppend: Event<StoredEvent[]> = this._onDidAppend.event;
  private readonly stmts: ReturnType<Store['prepare']>;
  private closed = false;

  static open(file: string, options: StoreOptions = {}): Store {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    return Store.on(openDatabase(file, options), options);
  }

  static memory(options: StoreOptions = {}): Store {
    return Store.on(openDatabase(':memory:', options), options);
  }

  private static on(db: SqliteDatabase, options: StoreOptions): Store {
    try {
      return new Store(db, options);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  private constructor(db: SqliteDatabase, options: StoreOptions) {
    this.db = db;
    this.ringLimit = options.ringBytes ?? RING_BYTES;
    this.clock = options.clock ?? (() => new Date());
    // One file for both engines: WAL, with the lock held for the connection's life. The WASM
    // engine has no shared memory and opens a WAL file only in exclusive mode; the native engine
    // uses the same mode so that the file is always left the same way. The agent is the only
    // process that opens the file (its lock file sees to it), so no reader elsewhere is shut out.
    db.pragma('locking_mode', 'EXCLUSIVE');
    db.pragma('journal_mode', 'WAL');
    db.pragma('synchronous', 'NORMAL');
    db.pragma('busy_timeout', 5000);
    migrate(db);
    this.stmts = this.prepare();
    this.seq = (db.prepare('SELECT MAX(seq) AS s FROM events').get() as { s: number | null }).s ?? 0;
  }

  private prepare() {
    const db = this.db;
    return {
      insertEvent: db.prepare('INSERT INTO events (seq, time, type, run_id, environment, body) VALUES (?, ?, ?, ?, ?, ?)'),
      upsertRun: db.prepare(`INSERT INTO runs (id, pipeline, trigger, status, commit_sha, commit_time, branch, title, requested, queued_at, started_at, finished_at, reason, impact)
        VALUES (@id, @pipeline, @trigger, @status, @commit, @commitTime, @branch, @title, @requested, @queuedAt, @startedAt, @finishedAt, @reason, @impact)
        ON CONFLICT(id) DO UPDATE SET status=excluded.status, started_at=excluded.started_at, finished_at=excluded.finished_at, reason=excluded.reason`),
      upsertStage: db.prepare(`INSERT INTO stages (run_id, name, position, kind, status, needs, attempt, started_at, finished_at, message, matrix)
        VALUES (@runId, @name, (SELECT COUNT(*) FROM stages WHERE run_id = @runId), @kind, @status, @needs, @attempt, @startedAt, @finishedAt, @message, @matrix)
        ON CONFLICT(run_id, name) DO UPDATE SET status=excluded.status, attempt=excluded.attempt, started_at=excluded.started_at, finished_at=excluded.finished_at, message=excluded.message`),
      upsertStep: db.prepare(`INSERT INTO steps (run_id, stage, attempt, idx, command, status, exit_code, started_at, finished_at)
        VALUES (@runId, @stage, @attempt, @index, @command, @status, @exitCode, @startedAt, @finishedAt)
        ON CONFLICT(run_id, stage, attempt, idx) DO UPDATE SET status=excluded.status, exit_code=excluded.exit_code, started_at=excluded.started_at, finished_at=excluded.finished_at`),
      insertTest: db.prepare(`INSERT OR REPLACE INTO test_results (run_id, stage, attempt, ord, suite, name, status, duration_ms, message, expected, actual, stack, file, line, col)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      insertArtifact: db.prepare('INSERT OR REPLACE INTO artifacts (run_id, stage, path, digest, size, kind) VALUES (?, ?, ?, ?, ?, ?)'),
      eventsSince: db.prepare('SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),
      listRuns: db.prepare('SELECT * FROM runs ORDER BY id DESC LIMIT ?'),
      getRun: db.prepare('SELECT * FROM runs WHERE id = ?'),
      stagesOf: db.prepare('SELECT * FROM stages WHERE run_id = ? ORDER BY position'),
      stepsOf: db.prepare('SELECT * FROM steps WHERE run_id = ? ORDER BY stage, attempt, idx'),
      testsOf: db.prepare('SELECT * FROM test_results WHERE run_id = ? ORDER BY stage, attempt, ord'),
      artifactsOf: db.prepare('SELECT * FROM artifacts WHERE run_id = ? ORDER BY stage, path'),
      unfinished: db.prepare("SELECT * FROM runs WHERE status IN ('queued', 'running') ORDER BY id"),
      upsertRelease: db.prepare(`INSERT OR REPLACE INTO releases (environment, number, digest, body, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
      upsertDeployment: db.prepare(`INSERT OR REPLACE INTO deployments (id, environment, from_release, to_release, status, trigger, run_id, queued_at, finished_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      upsertApproval: db.prepare(`INSERT OR REPLACE INTO approvals (id, deployment_id, environment, status, body) VALUES (?, ?, ?, ?, ?)`),
      releasesOf: db.prepare('SELECT body FROM releases WHERE environment = ? ORDER BY number DESC LIMIT ?'),
      getRelease: db.prepare('SELECT body FROM releases WHERE environment = ? AND number = ?'),
      maxRelease: db.prepare('SELECT MAX(number) AS m FROM releases WHERE environment = ?'),
      deploymentsOf: db.prepare('SELECT body FROM deployments WHERE environment = ? ORDER BY id DESC LIMIT ?'),
      getDeployment: db.prepare('SELECT body FROM deployments WHERE id = ?'),
      maxDeployment: db.prepare('SELECT MAX(id) AS m FROM deployments'),
      unfinishedDeployments: db.prepare("SELECT body FROM deployments WHERE status IN ('queued', 'waiting', 'running') ORDER BY id"),
      lastSucceeded: db.prepare("SELECT body FROM deployments WHERE environment = ? AND status IN ('succeeded') ORDER BY id DESC LIMIT 1"),
      getApproval: db.prepare('SELECT body FROM approvals WHERE id = ?'),
      maxApproval: db.prepare('SELECT MAX(id) AS m FROM approvals'),
      pendingApprovals: db.prepare("SELECT body FROM approvals WHERE status = 'pending' ORDER BY id"),
      upsertPreview: db.prepare('INSERT INTO previews (name, body, destroyed) VALUES (?, ?, 0) ON CONFLICT(name) DO UPDATE SET body = excluded.body, destroyed = 0'),
      destroyPreview: db.prepare('UPDATE previews SET destroyed = 1 WHERE name = ?'),
      livePreviews: db.prepare('SELECT body FROM previews WHERE destroyed = 0 ORDER BY name'),
      deleteMeta: db.prepare('DELETE FROM meta WHERE key = ?'),
      firstSeq: db.prepare('SELECT MIN(seq) AS s FROM events WHERE run_id = ?'),
      maxRunId: db.prepare('SELECT MAX(id) AS m FROM runs'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      recordStepProcess: db.prepare(`INSERT OR REPLACE INTO step_processes (pgid, identity, run_id, stage, attempt, idx)
        VALUES (@pgid, @identity, @runId, @stage, @attempt, @index)`),
      forgetStepProcess: db.prepare('DELETE FROM step_processes WHERE pgid = ?'),
      stepProcesses: db.prepare('SELECT * FROM step_processes ORDER BY run_id, stage, attempt, idx'),
    };
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Gives the event its sequence number and queues it for the next commit. */
  append(event: AgentEvent): SequencedEvent {
    if (this.closed) throw new Error('store is closed');
    const sequenced = { ...event, seq: ++this.seq, time: this.clock().toISOString() } as SequencedEvent;
    this.pending.push(sequenced);
    if (this.pending.length >= FLUSH_AT) {
      this.flush();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return sequenced;
  }

  /** Commits every queued event with its derived rows, then tells the subscribers. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.closed) return;
    const batch = this.pending;
    this.pending = [];
    const stored: StoredEvent[] = batch.map((e) => ({ seq: e.seq, json: JSON.stringify(e) }));
    this.db.transaction(() => {
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i];
        this.stmts.insertEvent.run(e.seq, e.time, e.type, runIdOf(e), environmentOf(e), stored[i].json);
        this.project(e);
      }
    });
    for (const s of stored) {
      this.ring.push(s);
      this.ringBytes += s.json.length;
    }
    while (this.ringBytes > this.ringLimit && this.ring.length - this.ringHead > 1) {
      this.ringBytes -= this.ring[this.ringHead++].json.length;
    }
    if (this.ringHead > 4096 && this.ringHead * 2 > this.ring.length) {
      this.ring = this.ring.slice(this.ringHead);
      this.ringHead = 0;
    }
    this._onDidAppend.fire(stored);
  }

  /** The derived tables: a pure function of each event. */
  private project(e: SequencedEvent): void {
    switch (e.type) {
      case 'run.queued':
      case 'run.started':
      case 'run.finished': {
        const r = e.run;
        this.stmts.upsertRun.run({ ...r, commitTime: r.commitTime ?? null, requested: JSON.stringify(r.requestedStages), impact: r.impact ? JSON.stringify(r.impact) : null });
        break;
      }
      case 'stage.changed':
        this.stmts.upsertStage.run({ ...e.stage, needs: JSON.stringify(e.stage.needs), matrix: e.stage.matrix ? JSON.stringify(e.stage.matrix) : null });
        break;
      case 'step.changed':
        this.stmts.upsertStep.run(e.step);
        break;
      case 'tests.reported':
        // A big report comes in several events: each one's results follow the ones before.
        e.results.forEach((t, i) =>
          this.stmts.insertTest.run(
            e.runId, e.stage, e.attempt, (e.first ?? 0) + i, t.suite, t.name, t.status, t.durationMs, t.message, t.expected,
            t.actual, t.stack, t.location?.file ?? null, t.location?.line ?? null, t.location?.column ?? null,
          ),
        );
        break;
      case 'artifact.recorded': {
        const a = e.artifact;
        this.stmts.insertArtifact.run(a.runId, a.stage, a.path, a.digest, a.size, a.kind);
        break;
      }
      case 'release.created': {
        const r = e.release;
        this.stmts.upsertRelease.run(r.environment, r.number, r.artifact.digest, JSON.stringify(r), r.runId, r.createdAt);
        break;
      }
      case 'deployment.changed': {
        const d = e.deployment;
        this.stmts.upsertDeployment.run(d.id, d.environment, d.fromRelease, d.toRelease, d.status, d.trigger, d.runId, d.queuedAt, d.finishedAt, JSON.stringify(d));
        break;
      }
      case 'approval.changed': {
        const a = e.approval;
        this.stmts.upsertApproval.run(a.id, a.deploymentId, a.environment, a.status, JSON.stringify(a));
        break;
      }
      case 'preview.created':
        this.stmts.upsertPreview.run(e.preview.name, JSON.stringify(e.preview));
        break;
      case 'preview.destroyed':
        this.stmts.destroyPreview.run(e.name);
        break;
      case 'agent.started':
      case 'config.changed':
      case 'log':
      case 'report.unreadable':
      case 'deployment.progress':
      case 'environment.health':
        break;
    }
  }

  previews(): PreviewInfo[] {
    this.flush();
    return (this.stmts.livePreviews.all() as { body: string }[]).map((r) => JSON.parse(r.body) as PreviewInfo);
  }

  deleteMeta(key: string): void {
    this.stmts.deleteMeta.run(key);
  }

  releases(environment: string, limit: number): Release[] {
    this.flush();
    return (this.stmts.releasesOf.all(environment, limit) as { body: string }[]).map((r) => JSON.parse(r.body) as Release);
  }

  getRelease(environment: string, number: number): Release | undefined {
    this.flush();
    const row = this.stmts.getRelease.get(environment, number) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as Release) : undefined;
  }

  nextReleaseNumber(environment: string): number {
    this.flush();
    return ((this.stmts.maxRelease.get(environment) as { m: number | null }).m ?? 0) + 1;
  }

  deployments(environment: string, limit: number): DeploymentInfo[] {
    this.flush();
    return (this.stmts.deploymentsOf.all(environment, limit) as { body: string }[]).map((r) => JSON.parse(r.body) as DeploymentInfo);
  }

  getDeployment(id: number): DeploymentInfo | undefined {
    this.flush();
    const row = this.stmts.getDeployment.get(id) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as DeploymentInfo) : undefined;
  }

  /** The deployment that made the environment's live release, if any succeeded. */
  lastSucceededDeployment(environment: string): DeploymentInfo | undefined {
    this.flush();
    const row = this.stmts.lastSucceeded.get(environment) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as DeploymentInfo) : undefined;
  }

  unfinishedDeployments(): DeploymentInfo[] {
    this.flush();
    return (this.stmts.unfinishedDeployments.all() as { body: string }[]).map((r) => JSON.parse(r.body) as DeploymentInfo);
  }

  nextDeploymentId(): number {
    this.flush();
    return ((this.stmts.maxDeployment.get() as { m: number | null }).m ?? 0) + 1;
  }

  getApproval(id: number): ApprovalInfo | undefined {
    this.flush();
    const row = this.stmts.getApproval.get(id) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as ApprovalInfo) : undefined;
  }

  pendingApprovals(): ApprovalInfo[] {
    this.flush();
    return (this.stmts.pendingApprovals.all() as { body: string }[]).map((r) => JSON.parse(r.body) as ApprovalInfo);
  }

  nextApprovalId(): number {
    this.flush();
    return ((this.stmts.maxApproval.get() as { m: number | null }).m ?? 0) + 1;
  }

  /**
   * Events after `since`, oldest first, at most `limit`. Served from memory when the ring still
   * holds them, else from the database.
   */
  eventsAfter(since: number, limit: number): StoredEvent[] {
    this.flush();
    const first = this.ring[this.ringHead];
    if (first && since >= first.seq - 1) {
      const start = this.ringHead + since - first.seq + 1;
      return this.ring.slice(start, start + limit);
    }
    const rows = this.stmts.eventsSince.all(since, limit) as { seq: number; body: string }[];
    return rows.map((r) => ({ seq: r.seq, json: r.body }));
  }

  events(since: number, limit: number): SequencedEvent[] {
    return this.eventsAfter(since, limit).map((s) => JSON.parse(s.json) as SequencedEvent);
  }

  nextRunId(): number {
    this.flush();
    const m = (this.stmts.maxRunId.get() as { m: number | null }).m ?? 0;
    return m + 1;
  }

  listRuns(limit: number): RunSummary[] {
    this.flush();
    return (this.stmts.listRuns.all(limit) as RunRow[]).map(toRun);
  }

  getRun(id: number): RunDetail | undefined {
    this.flush();
    const row = this.stmts.getRun.get(id) as RunRow | undefined;
    if (!row) return undefined;
    return {
      ...toRun(row),
      firstSeq: (this.stmts.firstSeq.get(id) as { s: number | null }).s ?? 0,
      stages: (this.stmts.stagesOf.all(id) as StageRow[]).map(toStage),
      steps: (this.stmts.stepsOf.all(id) as StepRow[]).map(toStep),
      artifacts: (this.stmts.artifactsOf.all(id) as ArtifactRow[]).map(toArtifact),
    };
  }

  /** Runs that were queued or running: after a crash, the ones to mark interrupted. */
  unfinishedRuns(): RunDetail[] {
    this.flush();
    return (this.stmts.unfinished.all() as RunRow[]).map((r) => this.getRun(r.id)!);
  }

  getTests(runId: number): StageTestResults[] {
    this.flush();
    const out = new Map<string, StageTestResults>();
    for (const r of this.stmts.testsOf.all(runId) as TestRow[]) {
      const key = `${r.stage}\u0000${r.attempt}`;
      let group = out.get(key);
      if (!group) {
        group = { runId, stage: r.stage, attempt: r.attempt, results: [] };
        out.set(key, group);
      }
      group.results.push(toTest(r));
    }
    return [...out.values()];
  }

  getMeta(key: string): string | undefined {
    return (this.stmts.getMeta.get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.stmts.setMeta.run(key, value);
  }

  /**
   * Records a step's process group as it starts. Written at once, not with the next batch of
   * events: an agent killed a moment later leaves the record for the next one.
   */
  recordStepProcess(p: StepProcess): void {
    if (this.closed) return;
    this.stmts.recordStepProcess.run({ ...p });
  }

  /** Forgets a step's process group once it has been killed. */
  forgetStepProcess(pgid: number): void {
    if (this.closed) return;
    this.stmts.forgetStepProcess.run(pgid);
  }

  /** The step process groups recorded and not forgotten: at start, the ones a stopped agent left. */
  stepProcesses(): StepProcess[] {
    return (this.stmts.stepProcesses.all() as StepProcessRow[]).map((r) => ({
      pgid: r.pgid,
      identity: r.identity,
      runId: r.run_id,
      stage: r.stage,
      attempt: r.attempt,
      index: r.idx,
    }));
  }

  /** Raw SQL access for the metrics and dashboards that read the derived tables. */
  get database(): SqliteDatabase {
    return this.db;
  }

  /** The SQLite engine in use (native or WASM) and why: for the agent's log and health. */
  get engine(): EngineInfo {
    return this.db.engine;
  }

  dispose(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this._onDidAppend.dispose();
    this.db.close();
  }
}

function migrate(db: SqliteDatabase): void {
  const current = Number(db.pragma('user_version'));
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the history database is from a newer Conveyor (schema ${current}, this one knows ${MIGRATIONS.length}); upgrade Conveyor or move .conveyor/history.db away`,
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma('user_version', v + 1);
    });
  }
}

/** The run an event belongs to, if any. */
export function runIdOf(e: AgentEvent): number | null {
  switch (e.type) {
    case 'run.queued':
    case 'run.started':
    case 'run.finished':
      return e.run.id;
    case 'stage.changed':
      return e.stage.runId;
    case 'step.changed':
      return e.step.runId;
    case 'log':
    case 'tests.reported':
    case 'report.unreadable':
    case 'load.reported':
    case 'scan.reported':
      return e.runId;
    case 'artifact.recorded':
      return e.artifact.runId;
    case 'release.created':
      return e.release.runId;
    case 'deployment.changed':
      return e.deployment.runId;
    case 'approval.changed':
      return e.approval.runId;
    case 'agent.started':
    case 'config.changed':
    case 'deployment.progress':
    case 'environment.health':
    case 'preview.created':
    case 'preview.destroyed':
    case 'sync.changed':
    case 'drift.detected':
    case 'state.committed':
    case 'image.update':
    case 'alert.changed':
    case 'alert.delivery':
      return null;
  }
}

/**
 * The environment an event is about, if any: a preview's name, or the first `environment` text
 * of the event or of one of its objects (a release, a deployment, an approval, a sync status...).
 * Kept in its own column (migration 4 fills it in the same way for older events).
 */
export function environmentOf(e: AgentEvent): string | null {
  if (e.type === 'preview.created') return e.preview.name;
  if (e.type === 'preview.destroyed') return e.name;
  const fields = e as unknown as Record<string, unknown>;
  if (typeof fields.environment === 'string') return fields.environment;
  for (const value of Object.values(fields)) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const nested = (value as Record<string, unknown>).environment;
      if (typeof nested === 'string') return nested;
    }
  }
  return null;
}

interface RunRow {
  id: number;
  pipeline: string;
  trigger: RunSummary['trigger'];
  status: RunStatus;
  commit_sha: string | null;
  commit_time: string | null;
  branch: string | null;
  title: string | null;
  requested: string;
  queued_at: string;
  started_at: string | null;
  finished_at: string | null;
  reason: string | null;
  impact: string | null;
}
interface StageRow {
  run_id: number;
  name: string;
  kind: StageInfo['kind'];
  status: StageInfo['status'];
  needs: string;
  attempt: number;
  started_at: string | null;
  finished_at: string | null;
  message: string | null;
  matrix: string | null;
}
interface StepRow {
  run_id: number;
  stage: string;
  attempt: number;
  idx: number;
  command: string;
  status: StepInfo['status'];
  exit_code: number | null;
  started_at: string | null;
  finished_at: string | null;
}
interface StepProcessRow {
  pgid: number;
  identity: string | null;
  run_id: number;
  stage: string;
  attempt: number;
  idx: number;
}
interface TestRow {
  stage: string;
  attempt: number;
  suite: string;
  name: string;
  status: TestResult['status'];
  duration_ms: number | null;
  message: string | null;
  expected: string | null;
  actual: string | null;
  stack: string | null;
  file: string | null;
  line: number | null;
  col: number | null;
}
interface ArtifactRow {
  run_id: number;
  stage: string;
  kind: ArtifactInfo['kind'];
  path: string;
  digest: string;
  size: number;
}

const toRun = (r: RunRow): RunSummary => ({
  id: r.id,
  pipeline: r.pipeline,
  trigger: r.trigger,
  status: r.status,
  commit: r.commit_sha,
  commitTime: r.commit_time,
  branch: r.branch,
  title: r.title,
  requestedStages: JSON.parse(r.requested) as string[],
  queuedAt: r.queued_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  reason: r.reason,
  impact: r.impact ? (JSON.parse(r.impact) as TestImpact) : null,
});
const toStage = (r: StageRow): StageInfo => ({
  runId: r.run_id,
  name: r.name,
  kind: r.kind,
  status: r.status,
  needs: JSON.parse(r.needs) as string[],
  attempt: r.attempt,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  message: r.message,
  ...(r.matrix ? { matrix: JSON.parse(r.matrix) as StageInfo['matrix'] } : {}),
});
const toStep = (r: StepRow): StepInfo => ({
  runId: r.run_id,
  stage: r.stage,
  attempt: r.attempt,
  index: r.idx,
  command: r.command,
  status: r.status,
  exitCode: r.exit_code,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});
const toTest = (r: TestRow): TestResult => ({
  suite: r.suite,
  name: r.name,
  status: r.status,
  durationMs: r.duration_ms,
  message: r.message,
  expected: r.expected,
  actual: r.actual,
  stack: r.stack,
  location: r.file ? { file: r.file, line: r.line ?? 1, column: r.col ?? 1 } : null,
});
const toArtifact = (r: ArtifactRow): ArtifactInfo => ({
  runId: r.run_id,
  stage: r.stage,
  kind: r.kind,
  path: r.path,
  digest: r.digest,
  size: r.size,
});
