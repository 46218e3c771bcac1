import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { Agent } from '../../../agent/agent';
import type { DeploymentInfo, EnvironmentStatus } from '../../../agent/protocol';
import { eventsOf, finished, startAgent, startRun, TempRepo, until } from '../../support/fixtures';
import { PACKAGE_STAGE, serviceGet, serviceSource, STAGING_STAGE, stopDeployTest } from '../../support/service';

const SERVER = (greeting: string, healthy = true) => serviceSource(greeting, { healthy });

const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
${STAGING_STAGE}
    - name: production
      kind: deploy
      environment: production
      needs: [staging]
environments:
  staging:
    promotion: auto
    strategy: blue-green
    start: node server.js
    health: { http: /healthz, timeout: 10s, interval: 100ms }
  production:
    promotion: manual
    start: node server.js
    health: { http: /healthz, timeout: 10s, interval: 100ms }
`;

/** The deploy phase end to end on the process runtime: real processes, real HTTP, a real repo. */
describe('deploy', function () {
  this.timeout(120_000);
  let repo: TempRepo;
  let agent: Agent;

  const env = async (name: string): Promise<EnvironmentStatus> => (await agent.deployer.status()).find((e) => e.name === name)!;
  const deployments = (name: string): DeploymentInfo[] => agent.store.deployments(name, 50);

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': SERVER('hello v1') });
    agent = await startAgent(repo);
  });

  after(async () => {
    await stopDeployTest(agent, repo, ['staging', 'production']);
  });

  it('deploys to staging on a green run and waits for an approval before production', async () => {
    const id = await startRun(agent, { trigger: 'manual' });
    await until(() => agent.store.getRun(id)!.stages.find((s) => s.name === 'production')!.status === 'waiting', 'the production gate');
    const run = agent.store.getRun(id)!;
    assert.equal(run.stages.find((s) => s.name === 'staging')!.status, 'succeeded');
    const staging = await env('staging');
    assert.equal(staging.live?.number, 1);
    assert.equal(staging.health, 'Healthy');
    assert.equal((await serviceGet(`${staging.url}/`)).body, 'hello v1');
    const production = await env('production');
    assert.equal(production.live, null);
    assert.ok(production.pendingApproval, 'an approval is pending');
    assert.match(run.stages.find((s) => s.name === 'production')!.message!, /waiting for approval #\d+ to deploy production@1/);

    const decided = agent.deployer.approve(production.pendingApproval!.id, 'ada (test)', 'looks good');
    assert.ok(decided.ok);
    const done = await finished(agent, id);
    assert.equal(done.status, 'succeeded');
    const prod = await env('production');
    assert.equal((await serviceGet(`${prod.url}/`)).body, 'hello v1');
    // The same artifact, by digest, in both environments: built once.
    assert.equal(prod.live!.artifact.digest, staging.live!.artifact.digest);
    assert.equal(done.artifacts[0].digest, staging.live!.artifact.digest);
    const approval = agent.store.getApproval(production.pendingApproval!.id)!;
    assert.deepEqual([approval.status, approval.decidedBy, approval.reason], ['approved', 'ada (test)', 'looks good']);
  });

  it('a rejected promotion fails the stage and leaves production as it was', async () => {
    repo.write({ 'server.js': SERVER('hello v2') });
    repo.commit('v2');
    const id = await startRun(agent, { trigger: 'manual' });
    await until(async () => (await env('production')).pendingApproval, 'the production gate');
    assert.equal((await serviceGet(`${(await env('staging')).url}/`)).body, 'hello v2', 'staging moved to v2');
    agent.deployer.reject((await env('production')).pendingApproval!.id, 'bob (test)', 'not today');
    const run = await finished(agent, id);
    assert.equal(run.status, 'failed');
    assert.match(run.stages.find((s) => s.name === 'production')!.message!, /rejected by bob \(test\): not today/);
    assert.equal((await serviceGet(`${(await env('production')).url}/`)).body, 'hello v1');
    assert.equal(deployments('production')[0].status, 'rejected');
  });

  it('rolls back to an earlier release without rebuilding', async () => {
    const staging = await env('staging');
    assert.equal(staging.live!.number, 2);
    const r = agent.deployer.rollback('staging', undefined, 'ada (test)');
    assert.ok(r.ok);
    const d = await r.value.done;
    assert.equal(d.status, 'succeeded');
    assert.deepEqual([d.trigger, d.fromRelease, d.toRelease], ['rollback', 2, 1]);
    assert.equal((await serviceGet(`${staging.url}/`)).body, 'hello v1');
    assert.equal((await env('staging')).live!.number, 1);
  });

  it('an unhealthy release is rolled back automatically and the old one keeps serving', async () => {
    repo.write({ 'server.js': SERVER('hello v3', false) });
    repo.commit('v3 is broken');
    const id = await startRun(agent, { trigger: 'manual', stages: ['staging'] });
    const run = await finished(agent, id);
    assert.equal(run.status, 'failed');
    assert.match(run.stages.find((s) => s.name === 'staging')!.message!, /rolled back: .*not healthy within 10s: GET \/healthz answered 500/);
    const staging = await env('staging');
    assert.equal(staging.live!.number, 1);
    assert.equal((await serviceGet(`${staging.url}/`)).body, 'hello v1');
    assert.equal(deployments('staging')[0].status, 'rolled_back');
    // The deploy's progress is in the stage log and the events.
    const progress = eventsOf(agent).filter((e) => e.type === 'deployment.progress').map((e) => (e.type === 'deployment.progress' ? e.message : ''));
    assert.ok(progress.some((m) => /rolled back: staging@1 still serves/.test(m)));
    const log = fs.readFileSync(repo.path('.conveyor', 'logs', String(id), 'staging', '1-0.log'), 'utf8');
    assert.match(log, /deploying package\/dist\/app\.tgz \(sha256:[0-9a-f]{64}\) to staging\n/);
    assert.match(log, /rolled back: staging@1 still serves/);
  });

  it('deploys one at a time per environment; the others wait in its queue', async () => {
    const first = agent.deployer.rollback('staging', 2, 'ada (test)');
    const v1 = agent.store.getRelease('staging', 1)!;
    const second = agent.deployer.deploy(
      { environment: 'staging', artifact: v1.artifact, runId: null, stage: null, commit: v1.commit, requestedBy: 'ada (test)' },
      'manual',
    );
    assert.ok(first.ok && second.ok);
    const during = await env('staging');
    assert.deepEqual(during.queue.map((q) => q.id), [second.value.deployment.id]);
    const [a, b] = await Promise.all([first.value.done, second.value.done]);
    assert.equal(a.status, 'succeeded');
    assert.equal(b.status, 'succeeded');
    assert.ok(Date.parse(b.startedAt!) >= Date.parse(a.finishedAt!), 'the second started after the first finished');
    assert.equal((await env('staging')).live!.number, b.toRelease);
    assert.equal((await serviceGet(`${(await env('staging')).url}/`)).body, 'hello v1');
  });
});
