/**
 * How long stages and deployments take: weekly p50/p95 per stage with regression markers, and
 * the alert rule's check of one new duration against the 4 weeks before it.
 */
import type { DurationSubject, DurationTrends, DurationWeek, SlowdownEvidence, StageDurationTrend } from '../protocol';
import type { SqliteDatabase } from '../store/sqlite';
import { formatDuration, iso, percentile, timeWindow, WEEK_MS } from './stats';

/** How many weeks before a week (or a new duration) make its baseline. */
export const BASELINE_WEEKS = 4;

/**
 * p50 and p95 of each stage's succeeded durations (finish minus start), per week, for the
 * `weeks` 7-day weeks that end at `to`, oldest first. A week is a regression when its p95 is
 * more than `thresholdPct` percent above the p95 of the 4 weeks before it, pooled.
 */
export function durationTrends(db: SqliteDatabase, weeks: number, to: number, thresholdPct: number): DurationTrends {
  const buckets = weeks + BASELINE_WEEKS;
  const start = to - buckets * WEEK_MS;
  const read = stageDurations(db);
  const stages: StageDurationTrend[] = [];
  for (const stage of stageNames(db)) {
    const sorted = Array.from({ length: buckets }, (_, k) => read(stage, start + k * WEEK_MS, start + (k + 1) * WEEK_MS));
    if (sorted.every((w) => w.length === 0)) continue;
    const list: DurationWeek[] = [];
    for (let k = BASELINE_WEEKS; k < buckets; k++) {
      const p95 = percentile(sorted[k], 95);
      const baseline = percentile(mergeSorted(sorted.slice(k - BASELINE_WEEKS, k)), 95);
      list.push({
        from: iso(start + k * WEEK_MS),
        to: iso(start + (k + 1) * WEEK_MS),
        samples: sorted[k].length,
        p50Ms: percentile(sorted[k], 50),
        p95Ms: p95,
        baselineP95Ms: baseline,
        regression: p95 !== null && baseline !== null && p95 > baseline * (1 + thresholdPct / 100),
      });
    }
    stages.push({ stage, weeks: list });
  }
  return { window: timeWindow(start + BASELINE_WEEKS * WEEK_MS, to), thresholdPct, stages };
}

/** A stage's start and duration in milliseconds: the expressions of the stages_durations index (migration 4). */
const STARTED_MS = 'CAST(ROUND((julianday(started_at) - 2440587.5) * 86400000.0) AS INTEGER)';
const DURATION_MS = 'CAST(ROUND((julianday(finished_at) - julianday(started_at)) * 86400000.0) AS INTEGER)';

/**
 * The succeeded durations of a stage that started in [from, to), as one list: written with the
 * index's own expressions, SQLite answers it from the index alone.
 */
export const STAGE_DURATIONS_SQL = `SELECT group_concat(${DURATION_MS}) AS ms FROM stages
  WHERE status = 'succeeded' AND name = ? AND ${STARTED_MS} >= ? AND ${STARTED_MS} < ? AND ${DURATION_MS} IS NOT NULL`;

/** Reads the succeeded durations of a stage that started in [from, to), sorted ascending. */
function stageDurations(db: SqliteDatabase): (stage: string, from: number, to: number) => Float64Array {
  const stmt = db.prepare(STAGE_DURATIONS_SQL);
  return (stage, from, to) => {
    const ms = stmt.get<{ ms: string | null }>(stage, from, to)?.ms;
    // A list of integers is a JSON array once bracketed: the fastest way to read it.
    return ms ? Float64Array.from(JSON.parse(`[${ms}]`) as number[]).sort() : new Float64Array(0);
  };
}

/** The names of the stages that ever succeeded, read off the index one name at a time. */
function stageNames(db: SqliteDatabase): string[] {
  return db
    .prepare(
      `WITH RECURSIVE n(name) AS (
         SELECT (SELECT MIN(name) FROM stages WHERE status = 'succeeded')
         UNION ALL
         SELECT (SELECT MIN(name) FROM stages WHERE status = 'succeeded' AND name > n.name) FROM n WHERE n.name IS NOT NULL
       ) SELECT name FROM n WHERE name IS NOT NULL`,
    )
    .all<{ name: string }>()
    .map((r) => r.name);
}

/** One ascending list from several ascending lists. */
function mergeSorted(lists: Float64Array[]): Float64Array {
  let out = new Float64Array(0);
  for (const list of lists) {
    const merged = new Float64Array(out.length + list.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < out.length && j < list.length) merged[k++] = out[i] <= list[j] ? out[i++] : list[j++];
    while (i < out.length) merged[k++] = out[i++];
    while (j < list.length) merged[k++] = list[j++];
    out = merged;
  }
  return out;
}

/**
 * Whether a new duration of a stage (or of a deployment to an environment) that started at `at`
 * is more than `thresholdPct` percent above the p95 of the succeeded ones that started in the 4
 * weeks before it; with the evidence either way.
 */
export function slowdown(db: SqliteDatabase, subject: DurationSubject, durationMs: number, at: number, thresholdPct: number): SlowdownEvidence {
  const from = at - BASELINE_WEEKS * WEEK_MS;
  const samples =
    'stage' in subject
      ? stageDurations(db)(subject.stage, from, at)
      : Float64Array.from(
          db
            .prepare(
              `SELECT json_extract(body, '$.startedAt') AS started_at, finished_at FROM deployments
               WHERE environment = ? AND status = 'succeeded' AND finished_at >= ?`,
            )
            .all<{ started_at: string | null; finished_at: string }>(subject.environment, iso(from))
            .filter((r) => r.started_at !== null && r.started_at >= iso(from) && r.started_at < iso(at))
            .map((r) => Date.parse(r.finished_at) - Date.parse(r.started_at!)),
        ).sort();
  const p95 = percentile(samples, 95);
  const limit = p95 === null ? null : p95 * (1 + thresholdPct / 100);
  const pctAbove = p95 === null || p95 === 0 ? null : ((durationMs - p95) / p95) * 100;
  const slower = limit !== null && durationMs > limit;
  const name = 'stage' in subject ? subject.stage : `deploying ${subject.environment}`;
  const message =
    p95 === null
      ? `${name} took ${formatDuration(durationMs)}; nothing to compare with: no succeeded one in the ${BASELINE_WEEKS} weeks before`
      : `${name} took ${formatDuration(durationMs)}, ${describePct(pctAbove)} its ${BASELINE_WEEKS}-week p95 of ${formatDuration(p95)} (${samples.length} before it)` +
        (slower ? `: more than ${thresholdPct}% slower` : '');
  return {
    subject,
    durationMs,
    baseline: timeWindow(from, at),
    samples: samples.length,
    baselineP95Ms: p95,
    thresholdPct,
    limitMs: limit,
    pctAbove,
    slower,
    message,
  };
}

function describePct(pct: number | null): string {
  if (pct === null) return 'against';
  const rounded = Math.round(pct);
  return rounded > 0 ? `${rounded}% above` : rounded < 0 ? `${-rounded}% below` : 'the same as';
}
