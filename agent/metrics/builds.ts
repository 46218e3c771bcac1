/**
 * Builds per day: the runs queued each UTC day, by status, and their success rate.
 */
import type { BuildDay, BuildStats, RunStatus } from '../protocol';
import type { SqliteDatabase } from '../store/sqlite';
import { DAY_MS, iso, timeWindow, utcDay } from './stats';

const STATUSES: readonly RunStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'];

/**
 * The `days` UTC days up to and including the one that holds `now`, oldest first, every day
 * present (zero when nothing ran). Success rate: succeeded over succeeded plus failed; cancelled
 * (superseded) and interrupted runs say nothing about the code.
 */
export function buildStats(db: SqliteDatabase, days: number, now: number): BuildStats {
  const to = utcDay(now) + DAY_MS;
  const from = to - days * DAY_MS;
  const rows = db
    .prepare(
      `SELECT substr(queued_at, 1, 10) AS day, status, COUNT(*) AS n FROM runs
       WHERE queued_at >= ? AND queued_at < ? GROUP BY day, status`,
    )
    .all<{ day: string; status: RunStatus; n: number }>(iso(from), iso(to));
  const byDay = new Map<string, BuildDay>();
  const list: BuildDay[] = [];
  for (let day = from; day < to; day += DAY_MS) {
    const entry: BuildDay = { date: iso(day).slice(0, 10), runs: 0, byStatus: zeros(), successRate: null };
    byDay.set(entry.date, entry);
    list.push(entry);
  }
  const total = zeros();
  for (const r of rows) {
    const entry = byDay.get(r.day);
    if (!entry) continue;
    const n = Number(r.n);
    entry.byStatus[r.status] = (entry.byStatus[r.status] ?? 0) + n;
    entry.runs += n;
    total[r.status] = (total[r.status] ?? 0) + n;
  }
  for (const entry of list) entry.successRate = successRate(entry.byStatus);
  return {
    window: timeWindow(from, to),
    days: list,
    runs: list.reduce((sum, d) => sum + d.runs, 0),
    byStatus: total,
    successRate: successRate(total),
  };
}

function zeros(): Record<RunStatus, number> {
  return Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;
}

function successRate(byStatus: Record<RunStatus, number>): number | null {
  const decided = byStatus.succeeded + byStatus.failed;
  return decided ? byStatus.succeeded / decided : null;
}
