import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import type { Agent } from '../../../agent/agent';
import { finished, startAgent, startRun, TempRepo } from '../../support/fixtures';
import { PACKAGE_STAGE, serviceSource, STAGING_STAGE, stopDeployTest } from '../../support/service';

const SERVER = (greeting: string) => serviceSource(greeting);

const CONFIG = (port: number) => `
pipeline:
  stages:
${PACKAGE_STAGE}
${STAGING_STAGE}
    - name: smoke
      needs: [staging]
      verifies: staging
      run: |
        node -e "fetch('http://127.0.0.1:${port}/').then((r) => r.text()).then((t) => { console.log(t); process.exit(t.startsWith('good') ? 0 : 1); })"
environments:
  staging:
    promotion: auto
    port: ${port}
    start: node server.js
    health: { timeout: 10s, interval: 100ms }
`;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A post-deploy smoke stage that fails rolls its deploy back: the old release serves again. */
describe('deploy: a failed smoke stage rolls the deploy back', function () {
  this.timeout(90_000);
  let repo: TempRepo;
  let agent: Agent;
  let port: number;

  before(async () => {
    port = await freePort();
    repo = new TempRepo({ 'conveyor.yml': CONFIG(port), 'server.js': SERVER('good v1') });
    agent = await startAgent(repo);
  });

  after(async () => {
    await stopDeployTest(agent, repo, ['staging']);
  });

  it('keeps a release that passes its smoke stage, and rolls back one that does not', async () => {
    const first = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(first.status, 'succeeded', JSON.stringify(first.stages));
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'good v1');

    repo.write({ 'server.js': SERVER('bad v2') });
    repo.commit('v2 answers wrong, though healthy');
    const second = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(second.status, 'failed');
    assert.equal(second.stages.find((s) => s.name === 'staging')!.status, 'succeeded', 'release 2 deployed and healthy');
    const smoke = second.stages.find((s) => s.name === 'smoke')!;
    assert.equal(smoke.status, 'failed');
    assert.match(smoke.message!, /exit code 1 in step 1 .*; rolled staging back to release 1$/);
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'good v1');
    const [rollback] = agent.store.deployments('staging', 1);
    assert.deepEqual([rollback.trigger, rollback.fromRelease, rollback.toRelease, rollback.status], ['rollback', 2, 1, 'succeeded']);
    assert.match(rollback.requestedBy, /smoke failed after deploy #2/);
  });

  it('says where a verifies key points wrong', async () => {
    const bad = agent.validate(CONFIG(port).replace('verifies: staging', 'verifies: package'));
    assert.deepEqual(bad.map((d) => d.message), ['stage "smoke" verifies "package", which is not a deploy stage']);
  });
});
