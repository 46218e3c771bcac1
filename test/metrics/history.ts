import type { DeploymentInfo, DeploymentStatus, HealthStatus, Release, RunStatus, RunSummary, SequencedEvent, StageInfo } from '../../agent/protocol';
import type { EngineName } from '../../agent/store/sqlite';
import { Store } from '../../agent/store/store';

/**
 * A history written the way the agent writes it: real events through `Store.append`, each
 * stamped by a clock the test sets, so that every answer can be worked out by hand.
 */
export class History {
  private now = Date.parse('2026-01-01T00:00:00.000Z');
  private nextDeployment = 1;
  readonly store: Store;

  constructor(file: string, engine: EngineName) {
    this.store = Store.open(file, { engine, clock: () => new Date(this.now) });
  }

  /** Sets the clock; later appends are stamped with this time. */
  at(time: string): this {
    this.now = Date.parse(time);
    return this;
  }

  /** A finished run with its stages, queued at `queuedAt`; its events are stamped with their own times. */
  run(
    id: number,
    opts: {
      queuedAt: string;
      status?: RunStatus;
      commit?: string | null;
      commitTime?: string | null;
      trigger?: RunSummary['trigger'];
      branch?: string;
      stages?: { name: string; startedAt: string; durationMs: number | null; status?: StageInfo['status'] }[];
    },
  ): SequencedEvent[] {
    const out: SequencedEvent[] = [];
    const stages = opts.stages ?? [];
    const summary: RunSummary = {
      id,
      pipeline: 'app',
      trigger: opts.trigger ?? 'commit',
      status: 'queued',
      commit: opts.commit === undefined ? `c${id}`.padEnd(40, '0') : opts.commit,
      commitTime: opts.commitTime ?? null,
      branch: opts.branch ?? 'main',
      title: `change ${id}`,
      requestedStages: stages.map((s) => s.name),
      queuedAt: opts.queuedAt,
      startedAt: null,
      finishedAt: null,
      reason: null,
      impact: null,
    };
    this.at(opts.queuedAt);
    out.push(this.store.append({ type: 'run.queued', run: summary }));
    out.push(this.store.append({ type: 'run.started', run: { ...summary, status: 'running', startedAt: opts.queuedAt } }));
    let end = opts.queuedAt;
    for (const s of stages) {
      const info: StageInfo = { runId: id, name: s.name, kind: 'command', status: 'running', needs: [], attempt: 1, startedAt: s.startedAt, finishedAt: null, message: null };
      this.at(s.startedAt);
      out.push(this.store.append({ type: 'stage.changed', stage: info }));
      if (s.durationMs !== null) {
        const finishedAt = new Date(Date.parse(s.startedAt) + s.durationMs).toISOString();
        this.at(finishedAt);
        out.push(this.store.append({ type: 'stage.changed', stage: { ...info, status: s.status ?? 'succeeded', finishedAt } }));
        if (finishedAt > end) end = finishedAt;
      }
    }
    this.at(end);
    const status = opts.status ?? 'succeeded';
    if (status !== 'running' && status !== 'queued') {
      out.push(this.store.append({ type: 'run.finished', run: { ...summary, status, startedAt: opts.queuedAt, finishedAt: end } }));
    }
    return out;
  }

  /** A release of a run's build to an environment, created at `at`. */
  release(environment: string, number: number, runId: number | null, at: string, commit: string | null = runId === null ? null : `c${runId}`.padEnd(40, '0')): Release {
    const release: Release = {
      environment,
      number,
      artifact: { kind: 'files', digest: `sha256:${String(number).padStart(64, '0')}`, name: 'app.tgz' },
      command: ['node', 'server.js'],
      env: {},
      containerPort: 8080,
      replicas: 1,
      runId,
      commit,
      createdAt: at,
      createdBy: 'pipeline',
    };
    this.at(at);
    this.store.append({ type: 'release.created', release });
    return release;
  }

  /**
   * A deployment from queued to its end: queued at `startedAt` (or `queuedAt`), running, then
   * `status` at `finishedAt`. Each change is one event, stamped with its own time.
   */
  deploy(
    environment: string,
    toRelease: number,
    opts: {
      status: DeploymentStatus;
      startedAt: string;
      finishedAt: string;
      trigger?: DeploymentInfo['trigger'];
      fromRelease?: number | null;
      reason?: string | null;
      runId?: number | null;
    },
  ): DeploymentInfo {
    const d: DeploymentInfo = {
      id: this.nextDeployment++,
      environment,
      fromRelease: opts.fromRelease ?? null,
      toRelease,
      strategy: 'recreate',
      trigger: opts.trigger ?? 'pipeline',
      status: 'queued',
      reason: null,
      runId: opts.runId ?? null,
      stage: opts.trigger === 'rollback' ? null : `deploy-${environment}`,
      requestedBy: 'pipeline',
      queuedAt: opts.startedAt,
      startedAt: null,
      finishedAt: null,
    };
    this.at(opts.startedAt);
    this.store.append({ type: 'deployment.changed', deployment: d });
    const ran = opts.status !== 'rejected' && opts.status !== 'cancelled';
    if (ran) this.store.append({ type: 'deployment.changed', deployment: { ...d, status: 'running', startedAt: opts.startedAt } });
    this.at(opts.finishedAt);
    const last: DeploymentInfo = { ...d, status: opts.status, startedAt: ran ? opts.startedAt : null, finishedAt: opts.finishedAt, reason: opts.reason ?? null };
    this.store.append({ type: 'deployment.changed', deployment: last });
    return last;
  }

  health(environment: string, health: HealthStatus, release: number | null, at: string): SequencedEvent {
    this.at(at);
    return this.store.append({ type: 'environment.health', environment, health, release });
  }

  dispose(): void {
    this.store.dispose();
  }
}

/** Milliseconds in readable units, for expected values. */
export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;
