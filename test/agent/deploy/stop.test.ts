import * as assert from 'node:assert/strict';
import type { Agent } from '../../../agent/agent';
import type { DeploymentInfo } from '../../../agent/protocol';
import { artifactRef } from '../../../agent/steps/deploy';
import { finished, startAgent, startRun, TempRepo, until } from '../../support/fixtures';
import { PACKAGE_STAGE, serviceSource, stopDeployTest } from '../../support/service';

/** The release never gets healthy: its deployment runs until the agent stops (or the long timeout). */
const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
environments:
  staging:
    strategy: blue-green
    start: node server.js
    health: { http: /healthz, timeout: 300s, interval: 100ms }
`;

describe('deploy: the agent stopped during a deployment', function () {
  this.timeout(120_000);
  let repo: TempRepo;
  let agent: Agent;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': serviceSource('never healthy', { healthy: false }) });
    agent = await startAgent(repo);
  });

  after(async () => {
    await stopDeployTest(agent, repo, ['staging']);
  });

  it('stops the deployments in flight, which end without an error; the next start records them as failed', async () => {
    const id = await startRun(agent, { trigger: 'manual' });
    const run = await finished(agent, id);
    assert.equal(run.status, 'succeeded');
    const req = { environment: 'staging', artifact: artifactRef(run.artifacts[0]), runId: id, stage: null, commit: run.commit, requestedBy: 'ada (test)' };
    const running = agent.deployer.deploy(req, 'manual');
    const queued = agent.deployer.deploy(req, 'manual');
    assert.ok(running.ok && queued.ok);
    const ends: (DeploymentInfo | Error | undefined)[] = [undefined, undefined];
    const outcomes = [running.value.done, queued.value.done].map((done, i) => done.then((d) => (ends[i] = d), (e: Error) => (ends[i] = e)));
    const started = () =>
      agent.store.events(0, 100_000).some((e) => e.type === 'deployment.progress' && e.deploymentId === running.value.deployment.id && /^started release \d+/.test(e.message));
    await until(started, 'the first deployment\'s release started, waiting to get healthy');

    await agent.stop();
    // Stopping waits for them: the runtime was told to stop, and both have ended by now.
    await new Promise((r) => setImmediate(r));
    assert.ok(ends.every((e) => e !== undefined), 'both deployments ended when the agent had stopped');
    await Promise.all(outcomes);
    for (const e of ends) {
      assert.ok(!(e instanceof Error), `ended without an error: ${(e as Error).message}`);
      assert.equal(e!.status, 'failed');
      assert.match(e!.reason ?? '', /the agent stopped during this deployment/);
    }

    agent = await startAgent(repo);
    const recorded = agent.store.deployments('staging', 10);
    for (const { deployment } of [running.value, queued.value]) {
      const d = recorded.find((r) => r.id === deployment.id)!;
      assert.equal(d.status, 'failed', `deployment #${d.id}`);
      assert.match(d.reason ?? '', /^the agent stopped during this deployment; staging had no earlier release$/);
    }
    // The release being deployed was stopped with the deployment: nothing of it runs.
    const process = agent.runtimes.get('process');
    assert.ok(process.ok);
    assert.deepEqual((await process.value.observe('staging')).instances, []);
  });
});
