import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Alerts } from '../../../agent/alerts/alerts';
import { deliverWebhook } from '../../../agent/alerts/webhook';
import { Metrics } from '../../../agent/metrics/metrics';
import type { Alert, AlertsConfig, TestResult } from '../../../agent/protocol';
import { History } from '../../metrics/history';
import { TempDir } from '../store/helpers';
import { cli, finished, pipelineYaml, startAgent, startRun, TempRepo, until } from '../../support/fixtures';
import { events } from '../../support/events';

const ALL: AlertsConfig = {
  pipelineFailed: { branches: [] },
  slower: { percent: 50, minSamples: 5 },
  drift: {},
  rollback: {},
  vulnerability: { severity: 'high' },
  flaky: { window: 10, flips: 2 },
  webhook: null,
};

const test = (name: string, status: 'passed' | 'failed'): TestResult => ({ suite: 'api', name, status, durationMs: 1, message: status === 'failed' ? 'expected 200, got 500' : null, expected: null, actual: null, stack: null, location: null });

/** The rules on histories written as the agent writes them. */
describe('alerts: rules', () => {
  let tmp: TempDir;
  let h: History;
  let alerts: Alerts;
  let config: AlertsConfig;
  const open = (): Alert[] => alerts.list();

  beforeEach(() => {
    tmp = new TempDir();
    h = new History(tmp.file('history.db'), 'native');
    const metrics = new Metrics(h.store);
    config = { ...ALL };
    alerts = new Alerts({
      store: h.store,
      config: () => config,
      branches: () => [],
      slowdown: (subject, newest, pct) => {
        const r = metrics.slowdown(subject, newest, pct);
        return r.ok ? r.value : null;
      },
    });
  });
  afterEach(() => {
    alerts.dispose();
    h.dispose();
    tmp.dispose();
  });

  it('a failed run on main fires once; repeats count on the open alert; a green run resolves it', () => {
    h.run(1, { queuedAt: '2026-03-01T10:00:00.000Z', status: 'failed', branch: 'main' });
    h.run(2, { queuedAt: '2026-03-01T11:00:00.000Z', status: 'failed', branch: 'feature' });
    h.run(3, { queuedAt: '2026-03-01T12:00:00.000Z', status: 'failed', branch: 'main' });
    h.store.flush();
    assert.equal(open().length, 1);
    const [a] = open();
    assert.equal(a.rule, 'pipelineFailed');
    assert.equal(a.count, 2);
    assert.equal(a.runId, 3);
    assert.match(a.title, /^the pipeline failed on main: run #3$/);
    h.run(4, { queuedAt: '2026-03-01T13:00:00.000Z', status: 'succeeded', branch: 'main' });
    h.store.flush();
    assert.equal(open().length, 0);
    assert.equal(alerts.get(a.id)!.status, 'resolved');
    assert.equal(alerts.get(a.id)!.resolvedBy, 'run #4 passed');
  });

  it('a stage slower than its 4-week p95 by more than the rule allows fires, with the evidence', () => {
    const day = (d: number) => `2026-03-${String(d).padStart(2, '0')}T10:00:00.000Z`;
    for (let i = 1; i <= 6; i++) h.run(i, { queuedAt: day(i), status: 'succeeded', branch: 'main', stages: [{ name: 'test', startedAt: day(i), durationMs: 10_000 + i * 100 }] });
    h.store.flush();
    assert.equal(open().length, 0);
    h.run(7, { queuedAt: day(8), status: 'succeeded', branch: 'main', stages: [{ name: 'test', startedAt: day(8), durationMs: 15_000 }] });
    h.store.flush();
    assert.equal(open().length, 0, '15 s is within 50% of the p95 (10.6 s)');
    h.run(8, { queuedAt: day(9), status: 'succeeded', branch: 'main', stages: [{ name: 'test', startedAt: day(9), durationMs: 30_000 }] });
    h.store.flush();
    const [a] = open();
    assert.equal(a.rule, 'slower');
    assert.equal(a.stage, 'test');
    assert.equal(a.runId, 8);
    assert.match(a.title, /test took 30(\.0)? ?s/);
  });

  it('a test that flips between pass and fail is flaky; a steady one is not', () => {
    const outcomes: ['passed' | 'failed', 'passed' | 'failed'][] = [
      ['passed', 'failed'],
      ['failed', 'failed'],
      ['passed', 'failed'],
    ];
    outcomes.forEach(([flaky, broken], i) => {
      h.store.append({ type: 'tests.reported', runId: i + 1, stage: 'test', attempt: 1, passed: 0, failed: 0, skipped: 0, results: [test('retries the upload', flaky), test('rejects bad input', broken)] });
    });
    h.store.flush();
    const list = open();
    assert.deepEqual(list.map((a) => a.rule), ['flaky']);
    assert.match(list[0].title, /^flaky test: test › api › retries the upload flipped 2 times in its last 3 results$/);
    assert.deepEqual(list[0].detail[0], 'results, oldest first: pass FAIL pass');
  });

  it('drift that is reported fires and is resolved when the environment is Synced again; healed drift never fires', () => {
    const item = { path: 'replicas', kind: 'missing' as const, desired: '1', live: '0', message: 'no instance of staging@3 runs (1 desired)' };
    h.store.append({ type: 'drift.detected', environment: 'prod', revision: 'abc', items: [item], action: 'healing' });
    h.store.append({ type: 'drift.detected', environment: 'prod', revision: 'abc', items: [item], action: 'healed' });
    h.store.append({ type: 'drift.detected', environment: 'staging', revision: 'abc', items: [item], action: 'reported' });
    h.store.flush();
    const [a] = open();
    assert.equal(open().length, 1);
    assert.equal(a.title, 'drift in staging: no instance of staging@3 runs (1 desired)');
    h.store.append({ type: 'sync.changed', status: { environment: 'staging', sync: 'Synced', health: 'Healthy', revision: 'abc', causes: [], diff: [], policy: { selfHeal: false, prune: false, manual: false }, paused: false, file: 'environments/staging.yml', error: null, checkedAt: '' } });
    h.store.flush();
    assert.equal(open().length, 0);
  });

  it('an automatic rollback fires; a rollback by a person does not', () => {
    h.release('prod', 1, null, '2026-03-01T10:00:00.000Z');
    h.deploy('prod', 1, { status: 'rolled_back', startedAt: '2026-03-01T10:00:00.000Z', finishedAt: '2026-03-01T10:01:00.000Z' });
    h.deploy('prod', 1, { status: 'succeeded', trigger: 'rollback', startedAt: '2026-03-01T11:00:00.000Z', finishedAt: '2026-03-01T11:01:00.000Z' });
    h.store.flush();
    const list = open();
    assert.equal(list.length, 1);
    assert.match(list[0].title, /^prod: release 1 was rolled back automatically$/);
  });

  it('a scan with a finding at or above the severity fires; below it does not; a rule set to false is off', () => {
    const finding = (severity: 'moderate' | 'high', id: string) => ({ id, aliases: [], summary: 'Prototype pollution', severity, severityBasis: 'advisory' as const, cvssScore: null, package: 'qs', version: '6.5.2', fixedIn: '6.5.3', lockfile: 'package-lock.json', declared: null, via: ['qs'], source: 'osv-folder' as const, url: null });
    const report = (findings: ReturnType<typeof finding>[]) => ({ packages: 10, findings, sources: [], lockfiles: ['package-lock.json'] });
    h.store.append({ type: 'scan.reported', runId: 1, stage: 'audit', attempt: 1, failOn: 'high', ok: true, verdict: '', report: report([finding('moderate', 'GHSA-1')]) });
    h.store.flush();
    assert.equal(open().length, 0);
    h.store.append({ type: 'scan.reported', runId: 2, stage: 'audit', attempt: 1, failOn: 'high', ok: false, verdict: '', report: report([finding('high', 'GHSA-2')]) });
    h.store.flush();
    assert.equal(open()[0].title, '1 vulnerable dependency at or above high (worst: high)');
    assert.equal(open()[0].detail[0], 'high qs@6.5.2 GHSA-2 (fixed in 6.5.3): Prototype pollution');
    config = { ...ALL, vulnerability: null };
    h.store.append({ type: 'scan.reported', runId: 3, stage: 'audit', attempt: 1, failOn: 'high', ok: false, verdict: '', report: report([finding('high', 'GHSA-3')]) });
    h.store.flush();
    assert.equal(open().length, 1);
  });
});

describe('alerts: the webhook', function () {
  this.timeout(30_000);
  const alert = { id: 1, title: 'x' } as Alert;

  it('retries a 5xx answer, with the alert as JSON, and stops at the first 2xx', async () => {
    const bodies: string[] = [];
    const server = http.createServer((req, res) => {
      let b = '';
      req.on('data', (d) => (b += d));
      req.on('end', () => {
        bodies.push(b);
        res.writeHead(bodies.length < 3 ? 503 : 204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const r = await deliverWebhook({ url, timeoutMs: 2000, retries: 3 }, alert, async () => undefined);
      assert.deepEqual(r, { ok: true, attempts: 3, error: null });
      assert.equal(bodies.length, 3);
      assert.deepEqual(JSON.parse(bodies[0]), { source: 'conveyor', alert });
    } finally {
      server.close();
    }
  });

  it('gives up after its retries with the reason: refused, a time-out, or a 4xx (not retried)', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    const refused = await deliverWebhook({ url: `http://127.0.0.1:${port}/`, timeoutMs: 1000, retries: 1 }, alert, async () => undefined);
    assert.equal(refused.ok, false);
    assert.equal(refused.attempts, 2);
    assert.match(refused.error!, /ECONNREFUSED/);
    const silent = http.createServer(() => undefined);
    const gone = http.createServer((_q, s) => s.writeHead(404).end());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    try {
      const slow = await deliverWebhook({ url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`, timeoutMs: 200, retries: 0 }, alert);
      assert.match(slow.error!, /did not answer within 200 ms/);
      const notFound = await deliverWebhook({ url: `http://127.0.0.1:${(gone.address() as AddressInfo).port}/`, timeoutMs: 1000, retries: 3 }, alert, async () => undefined);
      assert.deepEqual([notFound.attempts, notFound.error], [1, `http://127.0.0.1:${(gone.address() as AddressInfo).port}/ answered 404`]);
    } finally {
      silent.closeAllConnections();
      silent.close();
      gone.close();
    }
  });
});

/** End to end: a real agent, a real failing pipeline, the webhook and the CLI. */
describe('alerts: through the agent and the CLI', function () {
  this.timeout(120_000);

  it('a commit that breaks conveyor.yml on main alerts, with the rules of the last valid config', async () => {
    const config = pipelineYaml('- name: test\n  run: "true"', 'alerts:\n  flaky: false\n');
    const repo = new TempRepo({ 'conveyor.yml': config });
    const agent = await startAgent(repo, { commitTrigger: true, pollMs: 200 });
    try {
      await agent.lookForCommits(); // main's tip is known: the next commit is new
      repo.write({ 'conveyor.yml': config.replace('maxParallel: 4', 'maxParallel: many') });
      repo.commit('Break the pipeline');
      const alert = await until(() => agent.alerts.list().find((a) => a.rule === 'pipelineFailed'), 'the alert');
      assert.match(alert.title, /^the pipeline failed on main: run #\d+$/);
      assert.ok(alert.detail.some((d) => /maxParallel/.test(d)), alert.detail.join('\n'));
      repo.write({ 'conveyor.yml': config });
      repo.commit('Mend the pipeline');
      await until(() => agent.alerts.get(alert.id)?.status === 'resolved', 'resolved by the green run');
    } finally {
      await agent.stop();
      repo.dispose();
    }
  });

  it('a failing pipeline on main alerts once, posts the webhook, and can be snoozed and resolved from the CLI', async () => {
    const posted: unknown[] = [];
    const hook = http.createServer((req, res) => {
      let b = '';
      req.on('data', (d) => (b += d));
      req.on('end', () => {
        posted.push(JSON.parse(b));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`;
    const repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: test\n  run: exit 3', `alerts:\n  flaky: false\n  webhook: { url: "${url}", timeout: 2s, retries: 1 }\n`) });
    const agent = await startAgent(repo);
    try {
      assert.equal((await finished(agent, await startRun(agent, { trigger: 'manual' }))).status, 'failed');
      assert.equal((await finished(agent, await startRun(agent, { trigger: 'manual' }))).status, 'failed');
      await until(() => posted.length === 1 && events(agent, 'alert.delivery').length === 1, 'the webhook posted');
      assert.equal((posted[0] as { alert: Alert }).alert.rule, 'pipelineFailed');
      const list = await cli(['alerts'], { cwd: repo.dir });
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^#1 the pipeline failed on main: run #2$/m);
      assert.match(list.stdout, /pipelineFailed · open · 2 times/);
      const snoozed = await cli(['alerts', 'snooze', '1', '--for', '2h'], { cwd: repo.dir });
      assert.equal(snoozed.code, 0, snoozed.stderr);
      assert.match(snoozed.stdout, /pipelineFailed · snoozed until/);
      assert.equal((await finished(agent, await startRun(agent, { trigger: 'manual' }))).status, 'failed');
      await until(() => agent.alerts.get(1)?.count === 3, 'counted while snoozed');
      assert.equal(agent.alerts.get(1)!.status, 'snoozed');
      assert.equal(posted.length, 1, 'nobody is told again');
      const resolved = await cli(['alerts', 'resolve', '1'], { cwd: repo.dir });
      assert.match(resolved.stdout, /resolved .* \(.*\(cli\)\)/);
      const none = await cli(['alerts'], { cwd: repo.dir });
      assert.match(none.stdout, /no open alerts/);
      const bad = await cli(['alerts', 'snooze', '1', '--for', 'soon'], { cwd: repo.dir });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /"for" must be a duration such as 30m, 1h or 24h/);
    } finally {
      await agent.stop();
      repo.dispose();
      hook.close();
    }
  });
});
