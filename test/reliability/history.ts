import { isDeepStrictEqual } from 'node:util';
import type { AgentClient } from '../../agent/cli/client';
import type { DeploymentInfo, DeploymentStatus, RunSummary, SequencedEvent } from '../../agent/protocol';

/** Every event of the agent's history, through the API, oldest first. */
export async function allEvents(client: AgentClient): Promise<SequencedEvent[]> {
  const out: SequencedEvent[] = [];
  for (;;) {
    const batch = await client.request<SequencedEvent[]>('GET', `/events?since=${out.length ? out[out.length - 1].seq : 0}&limit=10000`);
    if (batch.length === 0) return out;
    out.push(...batch);
  }
}

/**
 * Events of `before` that `after` does not hold at the same place, unchanged: what a restart lost
 * or rewrote. `before` is what someone saw (a snapshot, a client's stream); it must be an exact
 * prefix of the history after.
 */
export function lostEvents(before: readonly SequencedEvent[], after: readonly SequencedEvent[]): number {
  let lost = 0;
  for (let i = 0; i < before.length; i++) if (!isDeepStrictEqual(before[i], after[i])) lost++;
  return lost;
}

/** Places where the sequence numbers are not 1, 2, 3, ...: a gap, a repeat or a step back. */
export function sequenceBreaks(events: readonly SequencedEvent[]): number {
  let breaks = 0;
  for (let i = 0; i < events.length; i++) if (events[i].seq !== i + 1) breaks++;
  return breaks;
}

const TERMINAL: readonly DeploymentStatus[] = ['succeeded', 'rolled_back', 'failed', 'rejected', 'cancelled'];

/**
 * History written twice: a run queued or finished twice, a release created twice, a deployment
 * that ended twice. One line per duplicate.
 */
export function duplicatedHistory(events: readonly SequencedEvent[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const once = (k: string, e: SequencedEvent) => {
    if (seen.has(k)) out.push(`${k} again at seq ${e.seq}`);
    seen.add(k);
  };
  for (const e of events) {
    if (e.type === 'run.queued' || e.type === 'run.finished') once(`${e.type} #${e.run.id}`, e);
    else if (e.type === 'release.created') once(`release ${e.release.environment}@${e.release.number}`, e);
    else if (e.type === 'deployment.changed' && TERMINAL.includes(e.deployment.status)) once(`deployment #${e.deployment.id} ended`, e);
  }
  return out;
}

/**
 * Where the derived tables disagree with the events: a run whose row is not its last run event's
 * summary, a deployment whose row is not its last deployment.changed. One line per disagreement.
 */
export async function tablesAgainstEvents(client: AgentClient, events: readonly SequencedEvent[]): Promise<string[]> {
  const runs = new Map<number, RunSummary>();
  const deployments = new Map<number, DeploymentInfo>();
  for (const e of events) {
    if (e.type === 'run.queued' || e.type === 'run.started' || e.type === 'run.finished') runs.set(e.run.id, e.run);
    else if (e.type === 'deployment.changed') deployments.set(e.deployment.id, e.deployment);
  }
  const out: string[] = [];
  const rows = await client.request<RunSummary[]>('GET', '/runs?limit=500');
  for (const [id, run] of runs) {
    const row = rows.find((r) => r.id === id);
    if (!row) out.push(`run #${id} has events but no row`);
    else if (row.status !== run.status || row.finishedAt !== run.finishedAt || row.startedAt !== run.startedAt) {
      out.push(`run #${id}: row says ${row.status}, its last event ${run.status}`);
    }
  }
  for (const row of rows) if (!runs.has(row.id)) out.push(`run #${row.id} has a row but no event`);
  for (const [id, d] of deployments) {
    const row = await client.request<DeploymentInfo>('GET', `/deployments/${id}`).catch(() => undefined);
    if (!isDeepStrictEqual(row, d)) out.push(`deployment #${id}: row ${row ? row.status : 'missing'}, its last event ${d.status}`);
  }
  return out;
}
