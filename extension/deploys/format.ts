import type { ApprovalInfo, DeploymentInfo, DeploymentStatus, EnvironmentStatus, HealthStatus, Release, SyncInfo } from '../../agent/protocol';
import { relativeTime, shortSha } from '../util/time';
import { FINISHED_DEPLOYMENT_STATUSES } from './commandIds';

/** `staging@7`: a release as people name it. */
export function releaseName(environment: string, release: number): string {
  return `${environment}@${release}`;
}

/** The first 12 hex digits of a `sha256:` digest, as the CLI prints it. */
export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * The releases an environment can go back to, newest first: every release but the live one and
 * those on their way (waiting for approval, deploying, queued), which the tree shows apart.
 */
export function otherReleases(status: EnvironmentStatus): Release[] {
  const busy = new Set<number>([...(status.live ? [status.live.number] : []), ...(status.pendingApproval ? [status.pendingApproval.release] : []), ...(status.current ? [status.current.toRelease] : []), ...status.queue.map((d) => d.toRelease)]);
  return status.releases.filter((r) => !busy.has(r.number));
}

/** `1a2b3c4d5e6f · abc1234 · 3 min ago by ada`: what a release is and where it came from. */
export function releaseLine(release: Release, when: string | null, by: string | null, now = Date.now()): string {
  const at = when ?? release.createdAt;
  const who = by ?? release.createdBy;
  return [shortDigest(release.artifact.digest), shortSha(release.commit), `${relativeTime(at, now)}${who ? ` by ${who}` : ''}`].filter(Boolean).join(' · ');
}

const DEPLOYMENT_WORDS: Record<DeploymentStatus, string> = {
  queued: 'queued',
  waiting: 'waiting for approval',
  running: 'running',
  succeeded: 'succeeded',
  rolled_back: 'rolled back',
  failed: 'failed',
  rejected: 'rejected',
  cancelled: 'cancelled',
};

/** A deployment's status as a word people read: "rolled back". */
export function deploymentWord(status: DeploymentStatus): string {
  return DEPLOYMENT_WORDS[status];
}

export function isFinished(d: DeploymentInfo): boolean {
  return (FINISHED_DEPLOYMENT_STATUSES as readonly DeploymentStatus[]).includes(d.status);
}

/** `deploy #4 (staging 1 → 2)`. */
export function deploymentName(d: DeploymentInfo): string {
  return `deploy #${d.id} (${d.environment} ${d.fromRelease ?? '∅'} → ${d.toRelease})`;
}

/** What a health status means, for tooltips and screen readers. */
export function healthWord(health: HealthStatus): string {
  switch (health) {
    case 'Healthy':
      return 'healthy';
    case 'Progressing':
      return 'progressing';
    case 'Degraded':
      return 'degraded';
    case 'Missing':
      return 'nothing running';
  }
}

/** The first line of an agent's reason: the rest (a log tail) goes to tooltips and logs. */
export function firstLine(text: string | null): string {
  return (text ?? '').split('\n')[0].trim();
}

/** `production@2 is waiting for approval (run #3)`. */
export function approvalTitle(a: ApprovalInfo): string {
  return `${releaseName(a.environment, a.release)} is waiting for approval`;
}

/** A sync status as the tree and the notifications write it: Synced, OutOfSync, "sync unknown". */
export function syncWord(sync: SyncInfo['sync']): string {
  return sync === 'Unknown' ? 'sync unknown' : sync;
}

/** Why an environment is out of sync, in words: "git changed, not applied yet", "changed by hand". */
export function causesWord(causes: SyncInfo['causes']): string {
  return causes.map((c) => (c === 'desired' ? 'git changed, not applied yet' : 'changed by hand (drift)')).join('; ');
}
