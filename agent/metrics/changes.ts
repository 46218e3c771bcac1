/**
 * What changed before an incident: the commits between the last good release and the failing
 * one (from git, with their diff stats), the config changes and the deployments in that window.
 */
import type { ChangedCommit, ChangesBefore, CommitDiff, DeploymentInfo, IncidentRef, ReleasePoint, SequencedEvent } from '../protocol';
import { git, GitError, resolveCommit } from '../engine/git';
import type { Store } from '../store/store';
import { DAY_MS, InputError, iso, timeWindow } from './stats';
import { describeEvent } from './titles';
import { rowToItem, type EventRow } from './timeline';

/** How far back to look when an incident has no earlier good state to start from. */
export const DEFAULT_LOOKBACK_MS = 7 * DAY_MS;
/** The longest patch `commitDiff` answers; the rest is cut. */
export const MAX_PATCH_BYTES = 1024 * 1024;
/** At most this many config changes and deployments are listed. */
const MAX_LISTED = 100;

/** An incident, resolved: when, where, and the releases (or runs) on either side of it. */
interface Resolved {
  seq: number | null;
  time: number;
  title: string;
  environment: string | null;
  deployment: number | null;
  good: ReleasePoint | null;
  bad: ReleasePoint | null;
  /** When the good state began; null when there is none. */
  since: number | null;
}

/** What changed before the incident, newest first in every list. */
export async function changesBefore(
  store: Store,
  repo: string | null,
  ref: IncidentRef,
  maxCommits: number,
): Promise<ChangesBefore> {
  const r = resolve(store, ref);
  const from = r.since ?? r.time - DEFAULT_LOOKBACK_MS;
  const db = store.database;
  const configChanges = db
    .prepare(
      `SELECT seq, time, type, run_id, environment, body FROM events
       WHERE type = 'config.changed' AND time > ? AND time <= ? ORDER BY seq DESC LIMIT ${MAX_LISTED}`,
    )
    .all<EventRow>(iso(from), iso(r.time))
    .map((row) => rowToItem(row));
  const deployments = db
    .prepare(
      `SELECT body FROM deployments
       WHERE (finished_at > @from AND finished_at <= @to) OR (queued_at > @from AND queued_at <= @to)
       ORDER BY id DESC LIMIT ${MAX_LISTED}`,
    )
    .all<{ body: string }>({ from: iso(from), to: iso(r.time) })
    .map((row) => JSON.parse(row.body) as DeploymentInfo);
  const commits = await listCommits(repo, r.good?.commit ?? null, r.bad?.commit ?? null, from, r.time, maxCommits);
  return {
    incident: { seq: r.seq, time: iso(r.time), title: r.title, environment: r.environment, deployment: r.deployment },
    window: timeWindow(from, r.time),
    good: r.good,
    bad: r.bad,
    ...commits,
    configChanges,
    deployments,
  };
}

function resolve(store: Store, ref: IncidentRef): Resolved {
  if ('deployment' in ref) {
    const d = store.getDeployment(ref.deployment);
    if (!d) throw new InputError(`no deployment #${ref.deployment}`, 'give the id of a recorded deployment (the environment view and `conveyor envs` show them)');
    return fromDeployment(store, d, null, Date.parse(d.finishedAt ?? d.startedAt ?? d.queuedAt));
  }
  const row = store.database.prepare('SELECT seq, time, type, run_id, environment, body FROM events WHERE seq = ?').get<EventRow>(ref.seq);
  if (!row) throw new InputError(`no event #${ref.seq}`, `give a sequence number from 1 to ${store.lastSeq}`);
  const e = JSON.parse(row.body) as SequencedEvent;
  const time = Date.parse(row.time);
  if (e.type === 'deployment.changed') return fromDeployment(store, e.deployment, row.seq, time);
  const base = { seq: row.seq, time, title: describeEvent(e).title, environment: row.environment, deployment: null };
  if (row.environment !== null) {
    // The release live at the time, and the different one live before it.
    const live = lastSucceeded(store, row.environment, Number.MAX_SAFE_INTEGER, null, row.time);
    const before = live ? lastSucceeded(store, row.environment, live.id, live.toRelease, row.time) : undefined;
    return {
      ...base,
      bad: live ? point(store, row.environment, live.toRelease) : null,
      good: before ? point(store, row.environment, before.toRelease) : null,
      since: before?.finishedAt ? Date.parse(before.finishedAt) : null,
    };
  }
  const run = row.run_id !== null ? store.getRun(row.run_id) : undefined;
  if (run?.commit) {
    const good = store.database
      .prepare(
        `SELECT commit_sha, queued_at FROM runs
         WHERE id < ? AND status = 'succeeded' AND commit_sha IS NOT NULL AND commit_sha != ? AND branch IS ? ORDER BY id DESC LIMIT 1`,
      )
      .get<{ commit_sha: string; queued_at: string }>(run.id, run.commit, run.branch);
    return {
      ...base,
      bad: { environment: null, release: null, commit: run.commit },
      good: good ? { environment: null, release: null, commit: good.commit_sha } : null,
      since: good ? Date.parse(good.queued_at) : null,
    };
  }
  return { ...base, bad: null, good: null, since: null };
}

/**
 * A failed or rolled-back deployment: its release against the last different release that
 * succeeded before it. A rollback: the release it leaves against the one it goes back to.
 */
function fromDeployment(store: Store, d: DeploymentInfo, seq: number | null, time: number): Resolved {
  const title = describeEvent({ type: 'deployment.changed', deployment: d, seq: seq ?? 0, time: iso(time) }).title;
  const base = { seq, time, title, environment: d.environment, deployment: d.id };
  if (d.trigger === 'rollback') {
    const wentLive = lastSucceeded(store, d.environment, d.id, null, null, d.toRelease);
    return {
      ...base,
      bad: d.fromRelease !== null ? point(store, d.environment, d.fromRelease) : null,
      good: point(store, d.environment, d.toRelease),
      since: wentLive?.finishedAt ? Date.parse(wentLive.finishedAt) : null,
    };
  }
  const before = lastSucceeded(store, d.environment, d.id, d.toRelease, null);
  return {
    ...base,
    bad: point(store, d.environment, d.toRelease),
    good: before ? point(store, d.environment, before.toRelease) : null,
    since: before?.finishedAt ? Date.parse(before.finishedAt) : null,
  };
}

/** The newest succeeded deployment to `environment` with an id below `beforeId`, with the given filters. */
function lastSucceeded(
  store: Store,
  environment: string,
  beforeId: number,
  notRelease: number | null,
  finishedBy: string | null,
  release?: number,
): DeploymentInfo | undefined {
  const row = store.database
    .prepare(
      `SELECT body FROM deployments
       WHERE environment = @environment AND id < @beforeId AND status = 'succeeded'
         AND (@notRelease IS NULL OR to_release != @notRelease)
         AND (@release IS NULL OR to_release = @release)
         AND (@finishedBy IS NULL OR finished_at <= @finishedBy)
       ORDER BY id DESC LIMIT 1`,
    )
    .get<{ body: string }>({ environment, beforeId, notRelease, finishedBy, release: release ?? null });
  return row ? (JSON.parse(row.body) as DeploymentInfo) : undefined;
}

function point(store: Store, environment: string, release: number): ReleasePoint {
  return { environment, release, commit: store.getRelease(environment, release)?.commit ?? null };
}

const SHA = /^[0-9a-f]{4,64}$/i;

/**
 * `git log good..bad` when both are known, else the commits dated in the window (up to `bad`
 * when it is known, HEAD otherwise); at most `max`, newest first.
 */
async function listCommits(
  repo: string | null,
  good: string | null,
  bad: string | null,
  from: number,
  to: number,
  max: number,
): Promise<Pick<ChangesBefore, 'commits' | 'commitsTruncated' | 'gitProblem'>> {
  const none = (gitProblem: string | null) => ({ commits: [], commitsTruncated: false, gitProblem });
  if (!repo) return none('the workspace is not in a git repository');
  for (const sha of [good, bad]) {
    if (sha !== null && (!SHA.test(sha) || !(await resolveCommit(repo, sha)))) {
      return none(`git knows no commit ${sha.slice(0, 12)} in ${repo}: it was recorded from another clone, or not fetched here; fetch it and ask again`);
    }
  }
  if (good && bad && good === bad) return none(null);
  const range = good && bad ? [`${good}..${bad}`] : [`--since=${iso(from)}`, ...(bad ? [] : [`--until=${iso(to)}`]), bad ?? 'HEAD'];
  try {
    const text = await git(repo, ['log', '--no-color', '--no-renames', '--format=%x1e%H%x1f%an%x1f%cI%x1f%s', '--numstat', `-n`, String(max + 1), ...range, '--']);
    const commits = parseLog(text);
    return { commits: commits.slice(0, max), commitsTruncated: commits.length > max, gitProblem: null };
  } catch (e) {
    if (e instanceof GitError) return none(e.message);
    throw e;
  }
}

/** Parses `git log --format=<RS>%H<US>%an<US>%cI<US>%s --numstat`. */
function parseLog(text: string): ChangedCommit[] {
  const out: ChangedCommit[] = [];
  for (const record of text.split('\x1e').slice(1)) {
    const [header, ...lines] = record.split('\n');
    const [sha, author, date, subject] = header.split('\x1f');
    const files: ChangedCommit['files'] = [];
    for (const line of lines) {
      const m = /^(-|\d+)\t(-|\d+)\t(.+)$/.exec(line);
      if (m) files.push({ path: m[3], added: m[1] === '-' ? null : Number(m[1]), deleted: m[2] === '-' ? null : Number(m[2]) });
    }
    out.push({
      sha,
      author,
      committedAt: new Date(date).toISOString(),
      subject,
      files,
      added: files.reduce((n, f) => n + (f.added ?? 0), 0),
      deleted: files.reduce((n, f) => n + (f.deleted ?? 0), 0),
    });
  }
  return out;
}

/** One commit's patch, cut at MAX_PATCH_BYTES. */
export async function commitDiff(repo: string | null, sha: string): Promise<CommitDiff> {
  if (!repo) throw new InputError('the workspace is not in a git repository', 'open a folder inside a git repository');
  if (typeof sha !== 'string' || !SHA.test(sha)) throw new InputError(`${JSON.stringify(sha)} is not a commit SHA`, 'give 4 to 64 hex digits, e.g. 3f2a9c1');
  const full = await resolveCommit(repo, sha);
  if (!full) throw new InputError(`git knows no commit ${sha} in ${repo}`, 'fetch it, or give a SHA from the list of changes');
  const text = await git(repo, ['show', '--no-color', '--format=%H%x1f%s%x1e', '--patch', full, '--']);
  const split = text.indexOf('\x1e');
  const [, subject] = text.slice(0, split).split('\x1f');
  const patch = text.slice(split + 1).replace(/^\n+/, '');
  const bytes = Buffer.byteLength(patch);
  if (bytes <= MAX_PATCH_BYTES) return { sha: full, subject, patch, truncated: false };
  const cut = Buffer.from(patch).subarray(0, MAX_PATCH_BYTES).toString('utf8');
  return { sha: full, subject, patch: cut.slice(0, cut.lastIndexOf('\n') + 1), truncated: true };
}
