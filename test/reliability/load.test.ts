import * as assert from 'node:assert/strict';
import type { RunSummary, SequencedEvent } from '../../agent/protocol';
import { sleep, TempRepo, until } from '../support/fixtures';
import { AgentProcess } from './agentProcess';
import { info, recordFigures, zero } from './figures';
import { EventFollower } from './follower';
import { allEvents } from './history';
import { scaled } from './mode';
import { median, percentile, ProcessSampler } from './proc';

const CHAINS = 10;
const CLIENTS = 20;
/** The store keeps this much recent event text in memory by design (agent/store/store.ts, RING_BYTES). */
const EVENT_CACHE_BYTES = 16 * 1024 * 1024;

/** Ten chains of two stages side by side, each stage talking for a couple of seconds. */
const CONFIG = `pipeline:
  maxParallel: ${CHAINS}
  onNewRun: queue
  stages:
${Array.from({ length: CHAINS }, (_, i) =>
  [
    `    - name: p${i}-build`,
    `      run: for n in $(seq 1 40); do echo "p${i} build line $n of a busy pipeline"; sleep 0.05; done`,
    `    - name: p${i}-test`,
    `      needs: [p${i}-build]`,
    `      run: for n in $(seq 1 40); do echo "p${i} test $n passed"; sleep 0.05; done`,
  ].join('\n'),
).join('\n')}
`;

describe('reliability: load (20 WebSocket clients, 10 pipelines at once)', function () {
  const SECONDS = scaled(30, 300);
  this.timeout((SECONDS + 240) * 1000);
  let repo: TempRepo;
  let agent: AgentProcess;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG });
    agent = await AgentProcess.start(repo.dir);
  });

  after(async () => {
    await agent?.stop();
    repo?.dispose();
  });

  it(`streams every event to every client for ${SECONDS} s, and the agent's memory stays flat`, async () => {
    const since = (await agent.health()).lastSeq;
    const latencies: number[] = [];
    let received = 0;
    let bytes = 0;
    const clients = Array.from(
      { length: CLIENTS },
      (_, i) =>
        new EventFollower(agent.port, agent.token, since, (e) => {
          latencies.push(Date.now() - Date.parse(e.time));
          received++;
          // One client measures how much event text went by (for the event cache's share).
          if (i === 0) bytes += JSON.stringify(e).length;
        }),
    );
    await Promise.all(clients.map((c) => c.opened));
    const sampler = new ProcessSampler(agent.pid, scaled(500, 1000));
    const t0 = Date.now();
    const bytesAt: { t: number; bytes: number }[] = [];
    // Always a run waiting behind the one in flight, so that the ten chains never stop.
    let runs = 0;
    while (Date.now() - t0 < SECONDS * 1000) {
      const health = await agent.health();
      if (health.activeRuns.length < 2) {
        await agent.client.request<RunSummary>('POST', '/runs', {});
        runs++;
      }
      bytesAt.push({ t: (Date.now() - t0) / 1000, bytes });
      await sleep(250);
    }
    sampler.stop();
    await until(async () => (await agent.health()).activeRuns.length === 0, 'the last runs to end', 180_000);
    const last = (await agent.health()).lastSeq;
    await until(() => clients.every((c) => c.events.length > 0 && c.events[c.events.length - 1].seq >= last), 'every client to catch up', 60_000);
    for (const c of clients) c.close();

    const expected = (await allEvents(agent.client)).filter((e) => e.seq > since && e.seq <= last).map((e) => e.seq);
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    for (const c of clients) {
      const seqs = c.events.filter((e: SequencedEvent) => e.seq <= last).map((e) => e.seq);
      const seen = new Set(seqs);
      lost += expected.filter((s) => !seen.has(s)).length;
      duplicated += seqs.length - seen.size;
      outOfOrder += seqs.filter((s, i) => i > 0 && s < seqs[i - 1]).length;
    }

    // Flat memory: the median of the second 10 s (short) or the first minute (full) against the
    // last stretch of the same length. Allowed: the samples' own spread (GC), plus whatever the
    // store's cache of recent events (bounded at 16 MiB) took in between.
    const [from, to] = scaled([10, 20], [0, 60]);
    const [lateFrom, lateTo] = [SECONDS - (to - from), SECONDS + 1];
    const early = sampler.medianRss(from, to);
    const late = sampler.medianRss(lateFrom, lateTo);
    const window = sampler.samples.filter((s) => s.t >= from && s.t < to).map((s) => s.rss);
    const spread = percentile(window, 90) - percentile(window, 10);
    const eventBytesAt = (t: number) => median(bytesAt.filter((b) => Math.abs(b.t - t) < 1).map((b) => b.bytes)) || 0;
    const cacheGrowth = Math.min(EVENT_CACHE_BYTES, Math.max(0, eventBytesAt((lateFrom + lateTo) / 2) - eventBytesAt((from + to) / 2)));
    const allowed = 2 * spread + cacheGrowth + 8 * 1024 * 1024;
    const growth = late - early;
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

    const suite = 'Load';
    recordFigures([
      info(suite, 'load', `${CLIENTS} WebSocket clients, ${CHAINS} pipelines (stage chains) at once, ${SECONDS} s, ${runs} runs, ${expected.length.toLocaleString('en-US')} events (${Math.round(expected.length / SECONDS)}/s), ${received.toLocaleString('en-US')} deliveries`),
      info(suite, 'latency from event to client', `p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${percentile(latencies, 100)} ms`),
      info(suite, "agent's peak memory (RSS)", mb(sampler.peakRss)),
      info(suite, "agent's CPU share", `${(sampler.cpuShare * 100).toFixed(1)}% of one core`),
      { suite, measure: 'memory growth, early median to late median', value: `${mb(early)} to ${mb(late)} (${growth >= 0 ? '+' : ''}${mb(growth)}; allowed ${mb(allowed)}: GC spread ${mb(spread)}, event cache ${mb(cacheGrowth)})`, target: 'flat', ok: growth <= allowed },
      zero(suite, 'events lost (summed over clients)', lost),
      zero(suite, 'events duplicated', duplicated),
      zero(suite, 'events out of order', outOfOrder),
    ]);
    assert.equal(lost, 0);
    assert.equal(duplicated, 0);
    assert.equal(outOfOrder, 0);
    assert.ok(expected.length > 0 && runs > 1, 'the pipelines streamed');
    assert.ok(growth <= allowed, `memory grew ${mb(growth)} (from ${mb(early)} to ${mb(late)}), more than the ${mb(allowed)} allowed`);
  });
});
