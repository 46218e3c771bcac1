import * as assert from 'node:assert/strict';
import type { Agent } from '../../../agent/agent';
import { finished, startAgent, startRun, TempRepo, until } from '../../support/fixtures';
import { PACKAGE_STAGE, serviceSource } from '../../support/service';

const SERVER = (greeting: string) => serviceSource(greeting);

const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
environments:
  preview:
    preview: true
    start: node server.js
    health: { timeout: 10s, interval: 100ms }
`;

/** Preview environments: one per branch, from a template, each on its own port. */
describe('preview environments', function () {
  this.timeout(90_000);
  let repo: TempRepo;
  let agent: Agent;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': SERVER('main') });
    for (const [branch, greeting] of [
      ['feature/login', 'login page'],
      ['fix-typo', 'no typo'],
    ]) {
      repo.git('checkout', '-q', '-b', branch, 'main');
      repo.write({ 'server.js': SERVER(greeting) });
      repo.commit(greeting);
    }
    repo.git('checkout', '-q', 'main');
    agent = await startAgent(repo);
  });

  after(async () => {
    for (const p of agent.store.previews()) await agent.deployer.destroyPreview(p.name, 'test over');
    await agent.stop();
    repo.dispose();
  });

  it('a template is not deployable itself', async () => {
    const r = agent.deployer.rollback('preview', undefined, 'test');
    assert.ok(!r.ok);
    assert.match(r.error.error, /"preview" is a preview template/);
  });

  it('creates one preview per branch, with the branch run\'s artifact, on ports that do not collide', async () => {
    for (const branch of ['feature/login', 'fix-typo']) {
      const run = await finished(agent, await startRun(agent, { trigger: 'manual', commit: branch }));
      assert.equal(run.status, 'succeeded');
      assert.equal(run.branch, branch);
    }
    const login = agent.deployer.createPreview('feature/login', undefined, 'ada (test)');
    const typo = agent.deployer.createPreview('fix-typo', undefined, 'ada (test)');
    assert.ok(login.ok && typo.ok);
    assert.equal(login.value.preview.name, 'preview-feature-login');
    assert.equal((await login.value.done!).status, 'succeeded');
    assert.equal((await typo.value.done!).status, 'succeeded');
    const envs = await agent.deployer.status();
    const a = envs.find((e) => e.name === 'preview-feature-login')!;
    const b = envs.find((e) => e.name === 'preview-fix-typo')!;
    assert.notEqual(a.url, b.url);
    assert.equal(a.preview?.branch, 'feature/login');
    assert.equal(await (await fetch(a.url!)).text(), 'login page');
    assert.equal(await (await fetch(b.url!)).text(), 'no typo');
    assert.ok(!envs.some((e) => e.name === 'preview'), 'the template is not listed as an environment');
    // Asking again gives the same preview.
    const again = agent.deployer.createPreview('feature/login', undefined, 'ada (test)');
    assert.ok(again.ok);
    assert.equal(again.value.preview.createdAt, login.value.preview.createdAt);
    await again.value.done;
  });

  it('is destroyed on command, and when its branch is deleted', async () => {
    const url = (await agent.deployer.status()).find((e) => e.name === 'preview-fix-typo')!.url!;
    const destroyed = await agent.deployer.destroyPreview('preview-fix-typo', 'by hand');
    assert.ok(destroyed.ok);
    await assert.rejects(fetch(url), 'nothing answers on its port');
    repo.git('branch', '-D', 'feature/login');
    assert.deepEqual(await agent.prunePreviews(), ['preview-feature-login']);
    await until(async () => !(await agent.deployer.status()).some((e) => e.name.startsWith('preview-')), 'no preview left');
    assert.deepEqual(agent.store.previews(), []);
  });
});
