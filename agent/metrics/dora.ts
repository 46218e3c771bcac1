/**
 * The four DORA keys of one production environment, from the derived tables (deployments,
 * releases, runs) and the environment's health events: exact counts, no sampling.
 */
import type { DeploymentInfo, DeploymentStatus, DoraBand, DoraReport, HealthStatus, RestoreIncident } from '../protocol';
import type { SqliteDatabase } from '../store/sqlite';
import { ascending, DAY_MS, HOUR_MS, iso, percentile, timeWindow, utcDay, WEEK_MS } from './stats';

/**
 * The band thresholds, from the State of DevOps reports (2019 and 2021), with the gaps between
 * their bands closed: a value belongs to the first band whose limit it meets.
 * Deployment frequency: elite on demand (at least daily), high at least weekly, medium at least
 * monthly. Lead time: elite under an hour, high under a week, medium under six months. Change
 * failure rate: elite up to 15%, high up to 30%, medium up to 45%. Time to restore: elite under
 * an hour, high under a day, medium under a week. Anything else is low.
 */
export const DORA_BANDS = {
  deploymentsPerDay: { elite: 1, high: 1 / 7, medium: 1 / 30 },
  leadTimeMs: { elite: HOUR_MS, high: WEEK_MS, medium: 183 * DAY_MS },
  changeFailureRate: { elite: 0.15, high: 0.3, medium: 0.45 },
  timeToRestoreMs: { elite: HOUR_MS, high: DAY_MS, medium: WEEK_MS },
} as const;

/**
 * Which environment is production: the one named "production", else "prod" (any case), else the
 * last declared environment that is not a preview template. Null when there is none.
 */
export function productionEnvironment(environments: readonly (string | { name: string; preview?: boolean })[]): string | null {
  const declared = environments.map((e) => (typeof e === 'string' ? { name: e, preview: false } : e));
  for (const wanted of ['production', 'prod']) {
    const found = declared.find((e) => e.name.toLowerCase() === wanted);
    if (found) return found.name;
  }
  const real = declared.filter((e) => !e.preview);
  return real.length ? real[real.length - 1].name : null;
}

interface DeploymentRow {
  id: number;
  status: DeploymentStatus;
  trigger: DeploymentInfo['trigger'];
  finished_at: string | null;
}

const FINISHED = new Set<DeploymentStatus>(['succeeded', 'failed', 'rolled_back']);
/** Statuses of a deployment that reached the runtime (for "followed by a rollback"). */
const RAN = new Set<DeploymentStatus>(['running', 'succeeded', 'failed', 'rolled_back']);

/** Computes the DORA report of `environment` over [from, to). */
export function doraReport(db: SqliteDatabase, environment: string, from: number, to: number): DoraReport {
  const fromIso = iso(from);
  const toIso = iso(to);
  // Every deployment that finished from the window's start on, and those still going: the
  // window's own, plus what came after them (a later rollback, a later restore).
  const deployments = db
    .prepare(
      `SELECT id, status, trigger, finished_at FROM deployments
       WHERE environment = ? AND (finished_at >= ? OR finished_at IS NULL) ORDER BY id`,
    )
    .all<DeploymentRow>(environment, fromIso);
  const inWindow = (d: DeploymentRow) => d.finished_at !== null && d.finished_at >= fromIso && d.finished_at < toIso;

  return {
    environment,
    window: timeWindow(from, to),
    deploymentFrequency: frequency(deployments.filter((d) => inWindow(d) && d.trigger !== 'rollback' && d.trigger !== 'heal' && d.status === 'succeeded'), from, to),
    leadTime: leadTime(db, environment, fromIso, toIso),
    changeFailureRate: failureRate(deployments, inWindow),
    timeToRestore: timeToRestore(db, environment, deployments, fromIso, toIso),
  };
}

function frequency(succeeded: DeploymentRow[], from: number, to: number): DoraReport['deploymentFrequency'] {
  const days = (to - from) / DAY_MS;
  const perDay = days > 0 ? succeeded.length / days : 0;
  const counts = new Map<string, number>();
  for (const d of succeeded) {
    const date = d.finished_at!.slice(0, 10);
    counts.set(date, (counts.get(date) ?? 0) + 1);
  }
  const daily: { date: string; deployments: number }[] = [];
  for (let day = utcDay(from); day < to; day += DAY_MS) {
    const date = iso(day).slice(0, 10);
    daily.push({ date, deployments: counts.get(date) ?? 0 });
  }
  const b = DORA_BANDS.deploymentsPerDay;
  return {
    deployments: succeeded.length,
    perDay,
    perWeek: perDay * 7,
    daily,
    band: perDay >= b.elite ? 'elite' : perDay >= b.high ? 'high' : perDay >= b.medium ? 'medium' : 'low',
  };
}

/**
 * Per commit: from its committer date to the end of its first succeeded deployment to the
 * environment (of any release built from it, rollbacks aside), for commits first deployed in the
 * window. The commit time is the one the run that built the release recorded.
 */
function leadTime(db: SqliteDatabase, environment: string, fromIso: string, toIso: string): DoraReport['leadTime'] {
  // SQLite takes the bare column commit_time from the row that holds MIN(finished_at).
  const rows = db
    .prepare(
      `SELECT MIN(d.finished_at) AS deployed, r.commit_time AS committed
       FROM deployments d
       JOIN releases rel ON rel.environment = d.environment AND rel.number = d.to_release
       JOIN runs r ON r.id = rel.run_id
       WHERE d.environment = ? AND d.status = 'succeeded' AND d.trigger NOT IN ('rollback', 'heal') AND r.commit_sha IS NOT NULL
       GROUP BY r.commit_sha
       HAVING deployed >= ? AND deployed < ?`,
    )
    .all<{ deployed: string; committed: string | null }>(environment, fromIso, toIso);
  const samples = ascending(rows.filter((r) => r.committed !== null).map((r) => Date.parse(r.deployed) - Date.parse(r.committed!)));
  const median = percentile(samples, 50);
  return {
    samples: samples.length,
    withoutCommitTime: rows.length - samples.length,
    medianMs: median,
    p90Ms: percentile(samples, 90),
    band: median === null ? null : below(median, DORA_BANDS.leadTimeMs),
  };
}

/**
 * Changes are the deployments of a release (rollbacks are not changes) that finished in the
 * window; a change failed when it failed, rolled back, or the next deployment that reached the
 * runtime was a rollback.
 */
function failureRate(deployments: DeploymentRow[], inWindow: (d: DeploymentRow) => boolean): DoraReport['changeFailureRate'] {
  const failed: number[] = [];
  let changes = 0;
  deployments.forEach((d, i) => {
    // A heal applies the same release again after drift: not a change.
    if (!inWindow(d) || d.trigger === 'rollback' || d.trigger === 'heal' || !FINISHED.has(d.status)) return;
    changes++;
    let next = i + 1;
    while (next < deployments.length && !RAN.has(deployments[next].status)) next++;
    if (d.status !== 'succeeded' || deployments[next]?.trigger === 'rollback') failed.push(d.id);
  });
  const rate = changes ? failed.length / changes : null;
  const b = DORA_BANDS.changeFailureRate;
  return {
    deployments: changes,
    failures: failed.length,
    rate,
    failed,
    band: rate === null ? null : rate <= b.elite ? 'elite' : rate <= b.high ? 'high' : rate <= b.medium ? 'medium' : 'low',
  };
}

interface Signal {
  time: string;
  failure: boolean;
  what: string;
}

/**
 * Incidents: a failed or rolled-back deployment, or health turning Degraded or Missing, while the
 * environment was not already failing; each lasts until the next succeeded deployment or Healthy
 * health. Incidents that began in the window count; the state at the window's start comes from
 * the last signal before it.
 */
function timeToRestore(db: SqliteDatabase, environment: string, deployments: DeploymentRow[], fromIso: string, toIso: string): DoraReport['timeToRestore'] {
  const health = db
    .prepare(
      `SELECT time, json_extract(body, '$.health') AS health FROM events
       WHERE type = 'environment.health' AND environment = ? AND time >= ? ORDER BY time, seq`,
    )
    .all<{ time: string; health: HealthStatus }>(environment, fromIso);
  const signals: Signal[] = [];
  for (const d of deployments) {
    if (!FINISHED.has(d.status) || d.finished_at === null) continue;
    signals.push({ time: d.finished_at, failure: d.status !== 'succeeded', what: `deploy #${d.id} ${d.status.replace('_', ' ')}` });
  }
  for (const h of health) {
    if (h.health !== 'Progressing') signals.push({ time: h.time, failure: h.health !== 'Healthy', what: `health ${h.health}` });
  }
  signals.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));

  let failingBefore = failingAt(db, environment, fromIso);
  let open: RestoreIncident | null = null;
  const incidents: RestoreIncident[] = [];
  for (const s of signals) {
    if (s.failure) {
      if (open || failingBefore || s.time >= toIso) continue;
      open = { startedAt: s.time, cause: s.what, restoredAt: null, restoredBy: null, durationMs: null };
      incidents.push(open);
    } else {
      failingBefore = false;
      if (open) {
        open.restoredAt = s.time;
        open.restoredBy = s.what;
        open.durationMs = Date.parse(s.time) - Date.parse(open.startedAt);
        open = null;
      }
    }
  }
  const durations = ascending(incidents.filter((i) => i.durationMs !== null).map((i) => i.durationMs!));
  const median = percentile(durations, 50);
  return { incidents, medianMs: median, band: median === null ? null : below(median, DORA_BANDS.timeToRestoreMs) };
}

/** Whether the environment's last failure or restore signal before `beforeIso` was a failure. */
function failingAt(db: SqliteDatabase, environment: string, beforeIso: string): boolean {
  const d = db
    .prepare(
      `SELECT status, finished_at FROM deployments
       WHERE environment = ? AND finished_at < ? AND status IN ('succeeded', 'failed', 'rolled_back') ORDER BY id DESC LIMIT 1`,
    )
    .get<{ status: DeploymentStatus; finished_at: string }>(environment, beforeIso);
  const h = db
    .prepare(
      `SELECT time, json_extract(body, '$.health') AS health FROM events
       WHERE type = 'environment.health' AND environment = ? AND time < ? AND json_extract(body, '$.health') != 'Progressing'
       ORDER BY time DESC, seq DESC LIMIT 1`,
    )
    .get<{ time: string; health: HealthStatus }>(environment, beforeIso);
  if (d && (!h || d.finished_at >= h.time)) return d.status !== 'succeeded';
  return h ? h.health !== 'Healthy' : false;
}

function below(ms: number, limits: { elite: number; high: number; medium: number }): DoraBand {
  return ms < limits.elite ? 'elite' : ms < limits.high ? 'high' : ms < limits.medium ? 'medium' : 'low';
}
