import * as assert from 'node:assert/strict';
import type { Agent } from '../../../agent/agent';
import type { LoadSummary, RunDetail, SequencedEvent } from '../../../agent/protocol';
import { freePort } from '../../support/docker';
import { eventsOf, finished, startAgent, startRun, TempRepo } from '../../support/fixtures';
import { PACKAGE_STAGE, STAGING_STAGE, stopDeployTest } from '../../support/service';

const SERVER = `
const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === '/fail') { res.writeHead(500); return res.end('broken'); }
  res.end('ok');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const LOAD = (name: string, load: string) => `    - name: ${name}
      kind: load
      environment: staging
      needs: [staging]
      load: ${load}`;

const CONFIG = (stages: string) => `
pipeline:
  stages:
${PACKAGE_STAGE}
${STAGING_STAGE}
${stages}
environments:
  staging:
    promotion: auto
    start: node server.js
    health: { http: /, timeout: 10s, interval: 100ms }
`;

/** The load kind end to end against a service deployed on the process runtime. */
describe('load stage', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;

  const runWith = async (stages: string): Promise<{ run: RunDetail; events: SequencedEvent[] }> => {
    repo.write({ 'conveyor.yml': CONFIG(stages) });
    repo.commit('load');
    const id = await startRun(agent, { trigger: 'manual' });
    return { run: await finished(agent, id), events: eventsOf(agent, id) };
  };
  const logOf = (events: SequencedEvent[], stage: string) =>
    events
      .filter((e) => e.type === 'log' && e.stage === stage)
      .map((e) => (e as { text: string }).text)
      .join('');

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG(''), 'server.js': SERVER });
    agent = await startAgent(repo);
  });

  after(async () => {
    await stopDeployTest(agent, repo, ['staging']);
  });

  it('loads the environment, logs progress and a table, records the result and checks each threshold', async () => {
    const { run, events } = await runWith(
      [
        LOAD('perf', '{ path: /, connections: 2, duration: 1500ms, thresholds: { errorRate: "< 1%", p99: < 5s, throughput: ">= 1/s" } }'),
        LOAD('broken', '{ path: /fail, connections: 1, duration: 500ms, thresholds: { errorRate: "< 1%" } }'),
      ].join('\n'),
    );
    assert.equal(run.status, 'failed');
    const perf = run.stages.find((s) => s.name === 'perf')!;
    assert.equal(perf.status, 'succeeded', perf.message ?? '');
    const log = logOf(events, 'perf');
    assert.match(log, /^ +1(\.\d)? s {2}\d+ requests, 0 errors, \d+\/s$/m, 'progress about once a second');
    for (const row of ['requests', 'throughput', 'latency', 'statuses', 'errors', 'received', 'duration', 'dropped', 'generator']) {
      assert.match(log, new RegExp(`^${row} +\\S`, 'm'), `the table has a ${row} row`);
    }
    assert.match(log, /^✓ errorRate < 1%: 0\.00%$/m);

    const reported = events.filter((e): e is Extract<SequencedEvent, { type: 'load.reported' }> => e.type === 'load.reported');
    assert.deepEqual(reported.map((e) => e.stage).sort(), ['broken', 'perf']);
    const summary: LoadSummary = reported.find((e) => e.stage === 'perf')!.result;
    assert.ok(summary.requests > 0 && summary.errors === 0, JSON.stringify(summary));
    assert.equal(summary.statusCounts['200'], summary.requests);
    assert.match(reported[0].url, /^http:\/\/127\.0\.0\.1:\d+\/(fail)?$/);
    // Trended for the Metrics page: the same figures, per stage.
    const trend = agent.metrics.load({ stage: 'perf' });
    assert.ok(trend.ok);
    assert.deepEqual(trend.value.stages, ['perf']);
    assert.equal(trend.value.points.length, 1);
    assert.equal(trend.value.points[0].runId, run.id);
    assert.equal(trend.value.points[0].requests, summary.requests);
    assert.equal(trend.value.points[0].p95, summary.latencyMs.p95);

    const tests = agent.store.getTests(run.id);
    const perfTests = tests.find((t) => t.stage === 'perf')!.results;
    assert.deepEqual(
      perfTests.map((t) => [t.name, t.status]),
      [
        ['errorRate < 1%', 'passed'],
        ['p99 < 5s', 'passed'],
        ['throughput >= 1/s', 'passed'],
      ],
    );
    assert.ok(perfTests.every((t) => t.location && t.location.line === 15), JSON.stringify(perfTests.map((t) => t.location)));

    const broken = run.stages.find((s) => s.name === 'broken')!;
    assert.equal(broken.status, 'failed');
    assert.equal(broken.message, 'errorRate < 1% breached: 100.00%');
    const breach = tests.find((t) => t.stage === 'broken')!.results[0];
    assert.deepEqual([breach.status, breach.expected, breach.actual], ['failed', '< 1.00%', '100.00%']);
  });

  it('fails at once, naming the URL, when the target does not answer', async () => {
    const closed = await freePort();
    const { run } = await runWith(LOAD('perf', `{ url: "http://127.0.0.1:${closed}/api", duration: 10s }`));
    const perf = run.stages.find((s) => s.name === 'perf')!;
    assert.equal(perf.status, 'failed');
    assert.equal(perf.message, `could not connect to http://127.0.0.1:${closed}/api: connection refused: nothing listens there (is the environment deployed and running?)`);
  });
});
