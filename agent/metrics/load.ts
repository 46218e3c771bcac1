import type { LoadTrend, LoadTrendPoint, SequencedEvent } from '../protocol';
import type { SqliteDatabase } from '../store/sqlite';

/**
 * Load test results over time: each `load.reported` event (one per load stage attempt), newest
 * `limit` of them, optionally of one stage, oldest first for charts. Read through the events
 * table's type index; the figures are the run's own, not sampled.
 */
export function loadTrends(db: SqliteDatabase, limit: number, stage: string | undefined): LoadTrend {
  const rows = db
    .prepare(
      stage === undefined
        ? `SELECT body FROM events WHERE type = 'load.reported' ORDER BY seq DESC LIMIT ?`
        : `SELECT body FROM events WHERE type = 'load.reported' AND json_extract(body, '$.stage') = ? ORDER BY seq DESC LIMIT ?`,
    )
    .all<{ body: string }>(...(stage === undefined ? [limit] : [stage, limit]));
  const points: LoadTrendPoint[] = rows
    .map((r) => JSON.parse(r.body) as Extract<SequencedEvent, { type: 'load.reported' }>)
    .reverse()
    .map((e) => ({
      runId: e.runId,
      stage: e.stage,
      attempt: e.attempt,
      environment: e.environment,
      time: e.time,
      throughput: e.result.throughput,
      errorRate: e.result.errorRate,
      p50: e.result.latencyMs.p50,
      p95: e.result.latencyMs.p95,
      p99: e.result.latencyMs.p99,
      requests: e.result.requests,
      generatorCpuShare: e.result.generator.cpuShare,
    }));
  return { stages: [...new Set(points.map((p) => p.stage))], points };
}
