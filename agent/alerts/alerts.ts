import type { Alert, AlertRuleName, AlertsConfig, AgentEvent, ApiError, DurationSubject, RunSummary, SequencedEvent, SlowdownEvidence, StageInfo } from '../protocol';
import type { StoredEvent, Store } from '../store/store';
import { Emitter, err, ok, reportUnexpected, type Event, type IDisposable, type Result } from '../util/lifecycle';
import { deliverWebhook } from './webhook';

/** Whether a new duration is slower than the p95 of the 4 weeks before it (agent/metrics). */
export type Slowdown = (subject: DurationSubject, newest: { durationMs: number; startedAt: string }, thresholdPct: number) => SlowdownEvidence | null;

export interface AlertsOptions {
  store: Store;
  config(): AlertsConfig | null;
  /** The branches the pipeline follows, for the default of pipelineFailed. */
  branches(): string[];
  slowdown: Slowdown;
}

/** What a rule says about an event: fire (or fire again) an alert, or resolve one. */
type Verdict = { fire: Omit<Alert, 'id' | 'seq' | 'firstAt' | 'lastAt' | 'count' | 'status' | 'snoozedUntil' | 'resolvedAt' | 'resolvedBy'> } | { resolve: string; by: string };

const WATCHED = /^\{"type":"(run\.finished|stage\.changed|tests\.reported|deployment\.changed|drift\.detected|sync\.changed|scan\.reported)"/;
const META = 'alerts';
const KEEP = 500;
const SEVERITY = ['low', 'moderate', 'high', 'critical'] as const;

/** The longest snooze: a year, well inside what a date can hold. */
export const MAX_SNOOZE_MS = 8760 * 3_600_000;
export const MAX_SNOOZE_TEXT = '8760h (365 days)';

function seconds(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Alert rules over the event stream. Each rule looks at the events it cares about and fires an
 * alert with its evidence. An alert is keyed by its cause (the stage, the environment, the test):
 * while it is open or snoozed, the same cause only counts on it, so nobody is told twice; it is
 * resolved when the cause goes away (the pipeline passes again, the environment is Synced) or by
 * hand. Alerts are events (`alert.changed`), so they are in the history and reach every client;
 * the webhook sink posts each new one.
 */
export class Alerts implements IDisposable {
  private readonly alerts = new Map<number, Alert>();
  private nextId = 1;
  private readonly testHistory = new Map<string, boolean[]>();
  private readonly sub: IDisposable;
  private readonly _onDidFire = new Emitter<Alert>();
  /** A new alert (not a repeat of an open one). */
  readonly onDidFire: Event<Alert> = this._onDidFire.event;
  private disposed = false;

  constructor(private readonly opts: AlertsOptions) {
    try {
      const saved = JSON.parse(opts.store.getMeta(META) ?? '[]') as Alert[];
      for (const a of saved) this.alerts.set(a.id, a);
      this.nextId = Math.max(0, ...saved.map((a) => a.id)) + 1;
    } catch {
      // A damaged snapshot: the alert events are still in the history.
    }
    this.sub = opts.store.onDidAppend((batch) => this.onEvents(batch));
  }

  /** Newest first, bounded; resolved ones only when asked. */
  list(includeResolved = false): Alert[] {
    this.expireSnoozes();
    return [...this.alerts.values()].filter((a) => includeResolved || a.status !== 'resolved').sort((a, b) => b.id - a.id).slice(0, 200);
  }

  get(id: number): Alert | undefined {
    return this.alerts.get(id);
  }

  /** Quiet for `forMs` (at most MAX_SNOOZE_MS): repeats count on it without telling anyone. */
  snooze(id: number, forMs: number, by: string): Result<Alert, ApiError> {
    const a = this.alerts.get(id);
    if (!a) return err({ error: `no alert #${id}`, fix: 'conveyor alerts lists them' });
    if (a.status === 'resolved') return err({ error: `alert #${id} is already resolved` });
    if (!(forMs > 0 && forMs <= MAX_SNOOZE_MS)) return err({ error: `a snooze lasts more than 0 and at most ${MAX_SNOOZE_TEXT}, not ${forMs} ms`, fix: 'e.g. 1h or 24h' });
    return ok(this.change({ ...a, status: 'snoozed', snoozedUntil: new Date(Date.now() + forMs).toISOString() }, `snoozed by ${by}`));
  }

  resolve(id: number, by: string): Result<Alert, ApiError> {
    const a = this.alerts.get(id);
    if (!a) return err({ error: `no alert #${id}`, fix: 'conveyor alerts lists them' });
    if (a.status === 'resolved') return ok(a);
    return ok(this.change({ ...a, status: 'resolved', resolvedAt: new Date().toISOString(), resolvedBy: by, snoozedUntil: null }, null));
  }

  private expireSnoozes(): void {
    const now = Date.now();
    for (const a of this.alerts.values()) {
      if (a.status === 'snoozed' && a.snoozedUntil && Date.parse(a.snoozedUntil) <= now) this.change({ ...a, status: 'open', snoozedUntil: null }, null);
    }
  }

  private onEvents(batch: StoredEvent[]): void {
    if (this.disposed) return;
    const config = this.opts.config();
    if (!config) return;
    for (const stored of batch) {
      if (!WATCHED.test(stored.json)) continue;
      try {
        const e = { ...(JSON.parse(stored.json) as AgentEvent), seq: stored.seq } as SequencedEvent;
        for (const v of this.evaluate(e, config)) this.apply(v, e.seq, config);
      } catch (e) {
        reportUnexpected(e);
      }
    }
  }

  private evaluate(e: SequencedEvent, c: AlertsConfig): Verdict[] {
    switch (e.type) {
      case 'run.finished':
        return this.pipelineFailed(e.run, c);
      case 'stage.changed':
        return this.slowerStage(e.stage, c);
      case 'deployment.changed': {
        const d = e.deployment;
        const out: Verdict[] = [];
        if (c.rollback && (d.status === 'rolled_back' || (d.trigger === 'rollback' && d.status === 'succeeded' && d.requestedBy.startsWith('conveyor')))) {
          out.push({
            fire: {
              rule: 'rollback',
              key: `rollback:${d.environment}:${d.id}`,
              severity: 'error',
              title: d.status === 'rolled_back' ? `${d.environment}: release ${d.toRelease} was rolled back automatically` : `${d.environment}: rolled back to release ${d.toRelease} automatically`,
              detail: [`deployment #${d.id} (${d.trigger}) by ${d.requestedBy}`, ...(d.reason ? [d.reason.split('\n')[0]] : [])],
              runId: d.runId,
              environment: d.environment,
              stage: d.stage,
            },
          });
        }
        if (c.slower && d.status === 'succeeded' && d.startedAt && d.finishedAt) {
          const took = Date.parse(d.finishedAt) - Date.parse(d.startedAt);
          const v = this.slower({ environment: d.environment }, took, d.startedAt, c.slower, { runId: d.runId, environment: d.environment, stage: d.stage });
          if (v) out.push(v);
        }
        return out;
      }
      case 'drift.detected':
        if (!c.drift) return [];
        if (e.action === 'healed') return [{ resolve: `drift:${e.environment}`, by: 'conveyor (healed)' }];
        if (e.action === 'healing') return [];
        return [
          {
            fire: {
              rule: 'drift',
              key: `drift:${e.environment}`,
              severity: 'warning',
              title: `drift in ${e.environment}: ${e.items[0]?.message ?? 'the live state differs from git'}`,
              detail: e.items.slice(0, 10).map((i) => i.message),
              runId: null,
              environment: e.environment,
              stage: null,
            },
          },
        ];
      case 'sync.changed':
        return e.status.sync === 'Synced' ? [{ resolve: `drift:${e.status.environment}`, by: 'conveyor (synced)' }] : [];
      case 'tests.reported':
        return this.flaky(e, c);
      case 'scan.reported':
        return this.vulnerable(e, c);
      default:
        return [];
    }
  }

  private pipelineFailed(run: RunSummary, c: AlertsConfig): Verdict[] {
    if (!c.pipelineFailed || run.trigger === 'save' || !run.branch) return [];
    const branches = c.pipelineFailed.branches.length ? c.pipelineFailed.branches : this.opts.branches().length ? this.opts.branches() : ['main', 'master'];
    if (!branches.includes(run.branch)) return [];
    const key = `pipelineFailed:${run.pipeline}:${run.branch}`;
    if (run.status === 'succeeded') return [{ resolve: key, by: `run #${run.id} passed` }];
    if (run.status !== 'failed') return [];
    return [
      {
        fire: {
          rule: 'pipelineFailed',
          key,
          severity: 'error',
          title: `the pipeline failed on ${run.branch}: run #${run.id}`,
          detail: [`${run.title ?? 'no commit title'}${run.commit ? ` (${run.commit.slice(0, 7)})` : ''}`, ...(run.reason ? [run.reason] : [])],
          runId: run.id,
          environment: null,
          stage: null,
        },
      },
    ];
  }

  private slowerStage(stage: StageInfo, c: AlertsConfig): Verdict[] {
    if (!c.slower || stage.status !== 'succeeded' || !stage.startedAt || !stage.finishedAt) return [];
    const took = Date.parse(stage.finishedAt) - Date.parse(stage.startedAt);
    const v = this.slower({ stage: stage.name }, took, stage.startedAt, c.slower, { runId: stage.runId, environment: null, stage: stage.name });
    return v ? [v] : [];
  }

  private slower(subject: DurationSubject, took: number, startedAt: string, rule: { percent: number; minSamples: number }, where: Pick<Alert, 'runId' | 'environment' | 'stage'>): Verdict | null {
    const e = this.opts.slowdown(subject, { durationMs: took, startedAt }, rule.percent);
    if (!e || !e.slower || e.samples < rule.minSamples) return null;
    const key = 'stage' in subject ? `slower:stage:${subject.stage}` : `slower:deploy:${subject.environment}`;
    return {
      fire: {
        rule: 'slower',
        key,
        severity: 'warning',
        title: e.message,
        detail: [`p95 of the ${e.samples} succeeded ones in the 4 weeks before: ${seconds(e.baselineP95Ms ?? 0)}; the rule allows ${rule.percent}% more`],
        ...where,
      },
    };
  }

  private flaky(e: Extract<AgentEvent, { type: 'tests.reported' }>, c: AlertsConfig): Verdict[] {
    if (!c.flaky) return [];
    const out: Verdict[] = [];
    for (const r of e.results) {
      if (r.status !== 'passed' && r.status !== 'failed') continue;
      const key = `${e.stage} › ${r.suite ? `${r.suite} › ` : ''}${r.name}`;
      const h = this.testHistory.get(key) ?? [];
      h.push(r.status === 'passed');
      while (h.length > c.flaky.window) h.shift();
      this.testHistory.set(key, h);
      let flips = 0;
      for (let i = 1; i < h.length; i++) if (h[i] !== h[i - 1]) flips++;
      if (flips >= c.flaky.flips) {
        out.push({
          fire: {
            rule: 'flaky',
            key: `flaky:${key}`,
            severity: 'warning',
            title: `flaky test: ${key} flipped ${flips} times in its last ${h.length} results`,
            detail: [`results, oldest first: ${h.map((x) => (x ? 'pass' : 'FAIL')).join(' ')}`, ...(r.message ? [r.message.split('\n')[0]] : [])],
            runId: e.runId,
            environment: null,
            stage: e.stage,
          },
        });
      }
    }
    return out;
  }

  private vulnerable(e: Extract<AgentEvent, { type: 'scan.reported' }>, c: AlertsConfig): Verdict[] {
    if (!c.vulnerability) return [];
    const min = SEVERITY.indexOf(c.vulnerability.severity);
    const findings = e.report.findings.filter((f) => SEVERITY.indexOf(f.severity) >= min);
    if (findings.length === 0) return [];
    const ids = [...new Set(findings.map((f) => f.id))].sort();
    const worst = SEVERITY[Math.max(...findings.map((f) => SEVERITY.indexOf(f.severity)))];
    return [
      {
        fire: {
          rule: 'vulnerability',
          key: `vulnerability:${e.stage}:${ids.join(',')}`,
          severity: worst === 'critical' || worst === 'high' ? 'error' : 'warning',
          title: `${findings.length} vulnerable dependenc${findings.length === 1 ? 'y' : 'ies'} at or above ${c.vulnerability.severity} (worst: ${worst})`,
          detail: findings.slice(0, 10).map((f) => `${f.severity} ${f.package}@${f.version} ${f.id}${f.fixedIn ? ` (fixed in ${f.fixedIn})` : ''}: ${f.summary}`),
          runId: e.runId,
          environment: null,
          stage: e.stage,
        },
      },
    ];
  }

  private apply(v: Verdict, seq: number, config: AlertsConfig): void {
    const now = new Date().toISOString();
    if ('resolve' in v) {
      for (const a of this.alerts.values()) {
        if (a.key === v.resolve && a.status !== 'resolved') this.change({ ...a, status: 'resolved', resolvedAt: now, resolvedBy: v.by, snoozedUntil: null, seq }, null);
      }
      return;
    }
    this.expireSnoozes();
    const same = [...this.alerts.values()].find((a) => a.key === v.fire.key && a.status !== 'resolved');
    if (same) {
      this.change({ ...same, ...v.fire, seq, lastAt: now, count: same.count + 1 }, null);
      return;
    }
    const alert: Alert = { ...v.fire, id: this.nextId++, seq, firstAt: now, lastAt: now, count: 1, status: 'open', snoozedUntil: null, resolvedAt: null, resolvedBy: null };
    this.change(alert, null);
    this._onDidFire.fire(alert);
    if (config.webhook) {
      const hook = config.webhook;
      void deliverWebhook(hook, alert).then(
        (r) => {
          if (!this.disposed) this.opts.store.append({ type: 'alert.delivery', alertId: alert.id, sink: 'webhook', ok: r.ok, attempts: r.attempts, error: r.error });
        },
        (e) => reportUnexpected(e),
      );
    }
  }

  private change(a: Alert, _why: string | null): Alert {
    this.alerts.set(a.id, a);
    // Bounded: the oldest resolved alerts go first (they stay in the event history).
    if (this.alerts.size > KEEP) {
      const resolved = [...this.alerts.values()].filter((x) => x.status === 'resolved').sort((x, y) => x.id - y.id);
      for (const x of resolved.slice(0, this.alerts.size - KEEP)) this.alerts.delete(x.id);
    }
    this.opts.store.setMeta(META, JSON.stringify([...this.alerts.values()]));
    this.opts.store.append({ type: 'alert.changed', alert: a });
    return a;
  }

  dispose(): void {
    this.disposed = true;
    this.sub.dispose();
    this._onDidFire.dispose();
  }
}

export type { AlertRuleName };
