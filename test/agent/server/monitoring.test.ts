import * as assert from 'node:assert/strict';
import type { Agent } from '../../../agent/agent';
import type { BuildStats, ChangesBefore, DoraReport, DurationTrends, TimelinePage } from '../../../agent/protocol';
import { finished, startAgent, startRun, TempRepo } from '../../support/fixtures';
import { PACKAGE_STAGE, serviceSource, stopDeployTest } from '../../support/service';

const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
    - name: production
      kind: deploy
      environment: production
      needs: [package]
environments:
  staging: { start: node server.js }
  production:
    promotion: auto
    start: node server.js
    health: { http: /healthz, timeout: 10s, interval: 100ms }
`;

/** The dashboards' routes over a real history: a real run and deploy, answered by the real agent. */
describe('API: monitoring routes', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;
  const get = async <T>(route: string): Promise<{ status: number; body: T }> => {
    const res = await fetch(`http://127.0.0.1:${agent.port}/api${route}`, { headers: { authorization: `Bearer ${agent.discovery.token}` } });
    return { status: res.status, body: (await res.json()) as T };
  };

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': serviceSource('hello') });
    agent = await startAgent(repo);
    assert.equal((await finished(agent, await startRun(agent, { trigger: 'manual' }))).status, 'succeeded');
  });
  after(async () => {
    await stopDeployTest(agent, repo, ['production']);
  });

  it('DORA defaults to the production environment and counts the deploy', async () => {
    const r = await get<DoraReport>('/metrics/dora?days=7');
    assert.equal(r.status, 200);
    assert.equal(r.body.environment, 'production');
    assert.equal(r.body.deploymentFrequency.deployments, 1);
  });

  it('builds per day and duration trends answer for the history', async () => {
    const b = await get<BuildStats>('/metrics/builds?days=3');
    assert.equal(b.status, 200);
    assert.equal(b.body.days.reduce((n, d) => n + d.runs, 0), 1);
    const d = await get<DurationTrends>('/metrics/durations?weeks=2');
    assert.equal(d.status, 200);
    assert.ok(d.body.stages.some((s) => s.stage === 'package'));
  });

  it('the timeline filters by kind and text; what changed before names the deploy', async () => {
    const t = await get<TimelinePage>('/timeline?kinds=deploy&limit=10');
    assert.equal(t.status, 200);
    assert.ok(t.body.items.length > 0);
    assert.ok(t.body.items.every((i) => /deploy|release|environment/.test(i.type)), t.body.items.map((i) => i.type).join());
    const d = agent.store.deployments('production', 1)[0];
    const c = await get<ChangesBefore>(`/incidents/changes?deployment=${d.id}`);
    assert.equal(c.status, 200);
  });

  it('bad input answers 400 with a message and a fix', async () => {
    const r = await get<{ error: string; fix?: string }>('/metrics/builds?days=many');
    assert.equal(r.status, 400);
    assert.match(r.body.error, /days/);
    const k = await get<{ error: string }>('/timeline?kinds=nonsense');
    assert.equal(k.status, 400);
    const s = await get<{ error: string }>('/commits/xyz!/diff');
    assert.equal(s.status, 400);
  });
});
