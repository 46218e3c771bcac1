import * as assert from 'node:assert/strict';
import type { Agent } from '../../../agent/agent';
import { eventsOf, finished, startAgent, startRun, TempRepo } from '../../support/fixtures';
import { PACKAGE_STAGE, serviceSource, STAGING_STAGE, stopDeployTest } from '../../support/service';

const SERVER = (greeting: string) => serviceSource(greeting);

/** An acceptance suite: TAP on stdout, one test per check, against $BASE_URL. */
const SUITE = `
const base = process.env.BASE_URL;
fetch(base + '/').then((r) => r.text()).then((text) => {
  const ok = text === 'hello';
  const same = process.env.CONVEYOR_ENV_URL === base;
  require('node:fs').writeFileSync('acceptance.tap', [
    'TAP version 13', '1..2',
    (ok ? 'ok' : 'not ok') + ' 1 - the home page greets',
    (same ? 'ok' : 'not ok') + ' 2 - CONVEYOR_ENV_URL is BASE_URL',
  ].join('\\n') + '\\n');
  console.log('tested ' + base);
  process.exit(ok && same ? 0 : 1);
});
`;

const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
${STAGING_STAGE}
    - name: acceptance
      kind: acceptance
      environment: staging
      needs: [staging]
      run: node suite.js
      report: { format: tap, path: acceptance.tap }
    - name: production
      kind: deploy
      environment: production
      needs: [acceptance]
environments:
  staging:
    promotion: auto
    start: node server.js
    health: { timeout: 10s, interval: 100ms }
  production:
    promotion: auto
    start: node server.js
    health: { timeout: 10s, interval: 100ms }
`;

/** The acceptance kind end to end: its commands test the environment's URL and gate production. */
describe('acceptance stage', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': SERVER('hello'), 'suite.js': SUITE });
    agent = await startAgent(repo);
  });

  after(async () => {
    await stopDeployTest(agent, repo, ['staging', 'production']);
  });

  it('runs its commands against the environment URL with their report, and production waits for it', async () => {
    const first = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(first.status, 'succeeded', JSON.stringify(first.stages));
    const staging = (await agent.deployer.status()).find((e) => e.name === 'staging')!;
    assert.ok(staging.url);
    const log = eventsOf(agent, first.id)
      .filter((e) => e.type === 'log' && e.stage === 'acceptance')
      .map((e) => (e as { text: string }).text)
      .join('');
    assert.equal(log, `tested ${staging.url}\n`);
    const [tests] = agent.store.getTests(first.id);
    assert.deepEqual(
      tests.results.map((r) => [r.name, r.status]),
      [
        ['the home page greets', 'passed'],
        ['CONVEYOR_ENV_URL is BASE_URL', 'passed'],
      ],
    );
    assert.equal((await (await fetch(`${staging.url}/`)).text()), 'hello');

    repo.write({ 'server.js': SERVER('goodbye') });
    repo.commit('a greeting the acceptance suite refuses');
    const second = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(second.status, 'failed');
    assert.equal(second.stages.find((s) => s.name === 'acceptance')!.message, 'exit code 1 in step 1 (node suite.js)');
    assert.deepEqual(
      agent.store.getTests(second.id)[0].results.map((r) => r.status),
      ['failed', 'passed'],
    );
    assert.equal(second.stages.find((s) => s.name === 'production')!.status, 'skipped');
    const production = (await agent.deployer.status()).find((e) => e.name === 'production')!;
    assert.equal(production.live?.number, 1, 'production keeps the release that passed');
  });
});
