import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Agent } from '../../../agent/agent';
import type { SmokeProbe } from '../../../agent/protocol';
import { jsonPath, runProbe } from '../../../agent/steps/probe';
import { freePort } from '../../support/docker';
import { eventsOf, finished, startAgent, startRun, TempRepo } from '../../support/fixtures';
import { PACKAGE_STAGE, STAGING_STAGE, stopDeployTest } from '../../support/service';

/** A probe with every default of the config, and the given keys. */
function probe(p: Partial<SmokeProbe>): SmokeProbe {
  return { name: 'probe', path: '/', url: null, method: 'GET', headers: {}, body: null, status: [200], contains: [], matches: null, json: {}, withinMs: null, timeoutMs: 5000, location: null, ...p };
}

describe('smoke probes against a real HTTP server', function () {
  let server: http.Server;
  let base: string;
  const hung: http.ServerResponse[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/healthz') return void res.end('ok');
      if (req.url === '/sick') {
        res.writeHead(503);
        return void res.end('database down');
      }
      if (req.url === '/status') {
        res.setHeader('content-type', 'application/json');
        return void res.end(JSON.stringify({ status: 'ok', items: [{ id: 7, tags: ['a'] }], 'odd key': true }));
      }
      if (req.url === '/echo') {
        let body = '';
        req.on('data', (d) => (body += d));
        return void req.on('end', () => res.end(`${req.method} ${req.headers['x-token']} ${body}`));
      }
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 300);
      if (req.url === '/hang') return void hung.push(res);
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const res of hung) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('passes a probe whose answer is what it expects', async () => {
    const o = await runProbe(base, probe({ path: '/healthz', contains: ['ok'], matches: '^ok$' }));
    assert.equal(o.ok, true, o.message ?? '');
    assert.equal(o.status, 200);
    assert.equal(o.url, `${base}/healthz`);
  });

  it('says expected and actual for a wrong status, and checks the body too', async () => {
    const o = await runProbe(base, probe({ path: '/sick', contains: ['ok'] }));
    assert.equal(o.ok, false);
    assert.equal(o.message, 'expected status 200, got 503; expected the body to contain "ok", got "database down"');
    assert.deepEqual([o.expected, o.actual], ['200', '503']);
    assert.equal((await runProbe(base, probe({ path: '/sick', status: [200, 503] }))).ok, true);
  });

  it('checks JSON paths and a pattern', async () => {
    const good = await runProbe(base, probe({ path: '/status', json: { '$.status': 'ok', '$.items[0].id': 7, '$.items[0].tags': ['a'], '$["odd key"]': true } }));
    assert.equal(good.ok, true, good.message ?? '');
    const bad = await runProbe(base, probe({ path: '/status', json: { '$.status': 'degraded', '$.items[3].id': 1 }, matches: '"version"' }));
    assert.equal(bad.ok, false);
    assert.match(bad.message!, /^expected the body to match \/"version"\/, got .*; expected \$\.status to be "degraded", got "ok"; expected \$\.items\[3\]\.id to be 1, got nothing$/);
    const notJson = await runProbe(base, probe({ path: '/healthz', json: { '$.status': 'ok' } }));
    assert.equal(notJson.message, 'expected a JSON body, got "ok"');
  });

  it('sends the method, headers and body it is given', async () => {
    const o = await runProbe(base, probe({ path: '/echo', method: 'POST', headers: { 'x-token': 't1' }, body: 'hello', contains: ['POST t1 hello'] }));
    assert.equal(o.ok, true, o.message ?? '');
  });

  it('fails an answer slower than "within", and a probe with no answer within its timeout', async () => {
    const slow = await runProbe(base, probe({ path: '/slow', withinMs: 50 }));
    assert.equal(slow.ok, false);
    assert.match(slow.message!, /^expected an answer within 50 ms, took \d+(\.\d)? ms$/);
    const hang = await runProbe(base, probe({ path: '/hang', timeoutMs: 200 }));
    assert.equal(hang.ok, false);
    assert.equal(hang.message, `GET ${base}/hang: no answer within 200 ms (the probe's timeout)`);
  });

  it('names the URL when nothing listens there', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const o = await runProbe(url, probe({ path: '/healthz' }));
    assert.equal(o.ok, false);
    assert.equal(o.message, `GET ${url}/healthz: connection refused: nothing listens there (is the environment deployed and running?)`);
  });

  it('reads JSON paths of the dotted form', () => {
    const doc = { a: { b: [10, { c: null }] } };
    assert.deepEqual(jsonPath(doc, '$.a.b[1].c'), { found: true, value: null });
    assert.deepEqual(jsonPath(doc, '$.a.b[2]'), { found: false });
    assert.deepEqual(jsonPath(doc, '$.a.x'), { found: false });
    assert.deepEqual(jsonPath(doc, '$'), { found: true, value: doc });
  });
});

const SERVER = (version: string, status: string) => `
const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  if (req.url === '/api/status') { res.setHeader('content-type', 'application/json'); return res.end(JSON.stringify({ status: ${JSON.stringify(status)}, version: ${JSON.stringify(version)} })); }
  res.end(${JSON.stringify(version)});
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const CONFIG = (port: number) => `
pipeline:
  stages:
${PACKAGE_STAGE}
${STAGING_STAGE}
    - name: smoke
      kind: smoke
      environment: staging
      needs: [staging]
      probes:
        - /healthz
        - path: /api/status
          json: { "$.status": ok }
environments:
  staging:
    promotion: auto
    port: ${port}
    start: node server.js
    health: { http: /healthz, timeout: 10s, interval: 100ms }
`;

/** The smoke kind end to end: a deploy, its smoke stage, test results, and a rollback by default. */
describe('smoke stage after a deploy', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;
  let port: number;

  before(async () => {
    port = await freePort();
    repo = new TempRepo({ 'conveyor.yml': CONFIG(port), 'server.js': SERVER('v1', 'ok') });
    agent = await startAgent(repo);
  });

  after(async () => {
    await stopDeployTest(agent, repo, ['staging']);
  });

  it('reports each probe as a test, and rolls the deploy back when one fails', async () => {
    const first = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(first.status, 'succeeded', JSON.stringify(first.stages));
    const [tests] = agent.store.getTests(first.id);
    assert.equal(tests.stage, 'smoke');
    assert.deepEqual(
      tests.results.map((r) => [r.name, r.status, r.location?.line]),
      [
        ['GET /healthz', 'passed', 16],
        ['GET /api/status', 'passed', 17],
      ],
    );

    repo.write({ 'server.js': SERVER('v2', 'degraded') });
    repo.commit('v2 is healthy but degraded');
    const second = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(second.status, 'failed');
    const smoke = second.stages.find((s) => s.name === 'smoke')!;
    assert.equal(smoke.status, 'failed');
    assert.equal(smoke.message, '1 of 2 probes failed: GET /api/status: expected $.status to be "ok", got "degraded"; rolled staging back to release 1');
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'v1');
    const failed = agent.store.getTests(second.id)[0].results.find((r) => r.status === 'failed')!;
    assert.deepEqual([failed.expected, failed.actual], ['"ok"', '"degraded"']);
    const log = eventsOf(agent, second.id)
      .filter((e) => e.type === 'log' && e.stage === 'smoke')
      .map((e) => (e as { text: string }).text)
      .join('');
    assert.match(log, /✓ GET \/healthz: 200 in /);
    assert.match(log, /✗ GET \/api\/status: expected \$\.status to be "ok", got "degraded"/);
  });
});
