import type { Agent } from '../agent/agent';
import type { AgentEvent, Release } from '../agent/protocol';

/** One benchmark's printed lines and its figures (written to test-output/bench.json). */
export interface BenchResult {
  name: string;
  lines: string[];
  figures: Record<string, number>;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Waits until an event after `since` satisfies `match`; resolves with the time it was seen. */
export async function waitEvent(agent: Agent, since: number, match: (e: AgentEvent) => boolean, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let cursor = since;
  while (Date.now() < deadline) {
    for (const e of agent.store.events(cursor, 10_000)) {
      cursor = e.seq;
      if (match(e)) return performance.now();
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('timed out waiting for an event');
}

/** Release `number` of an image for `environment`: one replica serving on 8080. */
export function imageRelease(environment: string, number: number, image: { repository: string; digest: string }): Release {
  return {
    environment,
    number,
    artifact: { kind: 'image', repository: image.repository, digest: image.digest },
    command: [],
    env: {},
    containerPort: 8080,
    replicas: 1,
    runId: null,
    commit: null,
    createdAt: new Date().toISOString(),
    createdBy: 'bench',
  };
}
