/**
 * The monitoring queries over the agent's history, for the dashboards and the alert rules:
 * DORA keys, builds per day, stage durations with regressions, the timeline, and what changed
 * before an incident. Every answer comes from the event log and the tables derived from it.
 *
 * Inputs come from API callers: a bad one is answered with an ApiError that says what to send
 * instead, and a failure to read the history is answered the same way, never thrown.
 */
import type {
  ApiError,
  BuildStats,
  ChangesBefore,
  CommitDiff,
  DoraReport,
  DurationSubject,
  DurationTrends,
  IncidentRef,
  LoadTrend,
  SlowdownEvidence,
  TimelinePage,
  TimelineQuery,
} from '../protocol';
import type { Store } from '../store/store';
import { err, ok, type Result } from '../util/lifecycle';
import { buildStats } from './builds';
import { changesBefore, commitDiff } from './changes';
import { doraReport } from './dora';
import { loadTrends } from './load';
import { durationTrends, slowdown } from './durations';
import { DAY_MS, InputError, intParam, nameParam, pctParam, timeParam } from './stats';
import { checkKind, TIMELINE_LIMIT, TIMELINE_SCAN_SPAN, timelinePage } from './timeline';

export interface MetricsOptions {
  /** The repository the runs were built from (its commits are listed by "what changed before"). */
  repo?: string | null;
  /** Now, for windows that end now (default: the system clock). */
  clock?: () => Date;
  /** How many sequence numbers a timeline page with a stage or text filter looks at. */
  timelineScanSpan?: number;
}

/** The default "regression" threshold: percent above the p95 of the 4 weeks before. */
export const DEFAULT_THRESHOLD_PCT = 20;

/** The dashboards' and alert rules' queries over one history. */
export class Metrics {
  constructor(
    private readonly store: Store,
    private readonly opts: MetricsOptions = {},
  ) {}

  /**
   * The DORA keys of a production environment (see `productionEnvironment`) over a window: the
   * `days` (default 30) before `to` (default now), or from `from` to `to`.
   */
  dora(q: { environment: string; days?: number; from?: string; to?: string }): Result<DoraReport, ApiError> {
    return this.answer(() => {
      const environment = nameParam(q.environment, 'environment');
      if (environment === undefined) throw new InputError('"environment" is required', 'name the production environment, e.g. environment=production');
      const to = timeParam(q.to, 'to', this.now());
      if (q.from !== undefined && q.days !== undefined) throw new InputError('give "from" or "days", not both', 'e.g. days=30, or from=2026-05-01T00:00:00Z');
      const from = q.from !== undefined ? timeParam(q.from, 'from', 0) : to - intParam(q.days, 'days', 30, 1, 3660) * DAY_MS;
      if (from >= to) throw new InputError('"from" must be before "to"', 'swap them, or leave "to" out for now');
      return doraReport(this.store.database, environment, from, to);
    });
  }

  /** Runs per UTC day by status, and the success rate, over the `days` (default 30) up to today. */
  builds(q: { days?: number; to?: string } = {}): Result<BuildStats, ApiError> {
    return this.answer(() => buildStats(this.store.database, intParam(q.days, 'days', 30, 1, 3660), timeParam(q.to, 'to', this.now())));
  }

  /**
   * Stage durations p50/p95 per week over `weeks` (default 12) 7-day weeks ending at `to`
   * (default now), with regression markers at `thresholdPct` (default 20).
   */
  durations(q: { weeks?: number; to?: string; thresholdPct?: number } = {}): Result<DurationTrends, ApiError> {
    return this.answer(() =>
      durationTrends(
        this.store.database,
        intParam(q.weeks, 'weeks', 12, 1, 520),
        timeParam(q.to, 'to', this.now()),
        pctParam(q.thresholdPct, 'thresholdPct', DEFAULT_THRESHOLD_PCT),
      ),
    );
  }

  /**
   * The alert rule's check: is the newest duration of a stage (or of a deployment to an
   * environment), which started at `startedAt`, more than `thresholdPct` above the p95 of the
   * 4 weeks before it? With the evidence.
   */
  slowdown(subject: DurationSubject, newest: { durationMs: number; startedAt: string }, thresholdPct?: number): Result<SlowdownEvidence, ApiError> {
    return this.answer(() => {
      const checked: DurationSubject =
        subject && 'stage' in subject
          ? { stage: nameParam(subject.stage, 'stage')! }
          : subject && 'environment' in subject
            ? { environment: nameParam(subject.environment, 'environment')! }
            : badSubject();
      if (typeof newest?.durationMs !== 'number' || !Number.isFinite(newest.durationMs) || newest.durationMs < 0) {
        throw new InputError('"durationMs" must be a duration in milliseconds, 0 or more', 'e.g. durationMs=95000');
      }
      const at = timeParam(newest.startedAt, 'startedAt', Number.NaN);
      if (Number.isNaN(at)) throw new InputError('"startedAt" is required', 'give when the newest one started, e.g. startedAt=2026-05-01T10:00:00Z');
      return slowdown(this.store.database, checked, newest.durationMs, at, pctParam(thresholdPct, 'thresholdPct', DEFAULT_THRESHOLD_PCT));
    });
  }

  /** The newest `limit` (default 100) load test results, of one stage or all, oldest first. */
  load(q: { limit?: number; stage?: string } = {}): Result<LoadTrend, ApiError> {
    return this.answer(() => loadTrends(this.store.database, intParam(q.limit, 'limit', 100, 1, 1000), nameParam(q.stage, 'stage')));
  }

  /** A page of the timeline, newest first; pass the answer's `next` as `before` for the next page. */
  timeline(q: TimelineQuery = {}): Result<TimelinePage, ApiError> {
    return this.answer(() => {
      const last = this.store.lastSeq;
      if (q.kinds !== undefined && !Array.isArray(q.kinds)) throw new InputError('"kinds" must be a list', 'e.g. kinds=deploy,run.finished');
      q.kinds?.forEach(checkKind);
      if (q.text !== undefined && (typeof q.text !== 'string' || q.text.trim() === '' || q.text.length > 200)) {
        throw new InputError('"text" must be 1 to 200 characters', 'e.g. text=timeout');
      }
      return timelinePage(
        this.store.database,
        {
          before: intParam(q.before, 'before', last + 1, 1, Number.MAX_SAFE_INTEGER),
          limit: intParam(q.limit, 'limit', TIMELINE_LIMIT.default, 1, TIMELINE_LIMIT.max),
          environment: nameParam(q.environment, 'environment'),
          stage: nameParam(q.stage, 'stage'),
          kinds: q.kinds,
          text: q.text?.trim(),
          includeLogs: q.includeLogs === true,
        },
        this.opts.timelineScanSpan ?? TIMELINE_SCAN_SPAN,
      );
    });
  }

  /**
   * What changed before an incident (a deployment, or any event by seq): the commits between the
   * last good release and the failing one with their diff stats (at most `maxCommits`, default
   * 100), and the config changes and deployments in that window.
   */
  async changesBefore(incident: IncidentRef, maxCommits?: number): Promise<Result<ChangesBefore, ApiError>> {
    return this.answerAsync(async () => {
      const max = intParam(maxCommits, 'maxCommits', 100, 1, 1000);
      if (incident && 'deployment' in incident) intParam(incident.deployment, 'deployment', 1, 1, Number.MAX_SAFE_INTEGER);
      else if (incident && 'seq' in incident) intParam(incident.seq, 'seq', 1, 1, Number.MAX_SAFE_INTEGER);
      else throw new InputError('name the incident', 'give {"deployment": <id>} or {"seq": <event number>}');
      this.store.flush();
      return changesBefore(this.store, this.opts.repo ?? null, incident, max);
    });
  }

  /** One commit's patch (cut at 1 MiB), for a commit in "what changed before". */
  async commitDiff(sha: string): Promise<Result<CommitDiff, ApiError>> {
    return this.answerAsync(() => commitDiff(this.opts.repo ?? null, sha));
  }

  private now(): number {
    return (this.opts.clock?.() ?? new Date()).getTime();
  }

  private answer<T>(fn: () => T): Result<T, ApiError> {
    try {
      this.store.flush();
      return ok(fn());
    } catch (e) {
      return err(toApiError(e));
    }
  }

  private async answerAsync<T>(fn: () => Promise<T>): Promise<Result<T, ApiError>> {
    try {
      return ok(await fn());
    } catch (e) {
      return err(toApiError(e));
    }
  }
}

function badSubject(): never {
  throw new InputError('say whose duration it is', 'give {"stage": "<name>"} or {"environment": "<name>"}');
}

function toApiError(e: unknown): ApiError {
  if (e instanceof InputError) return e.toApiError();
  return { error: `the history could not be read: ${e instanceof Error ? e.message : String(e)}`, fix: 'see the agent log; if the database is damaged, move .conveyor/history.db away and restart the agent' };
}

export { productionEnvironment, DORA_BANDS } from './dora';
