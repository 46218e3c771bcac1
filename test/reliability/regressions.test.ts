import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Agent } from '../../agent/agent';
import type { DeploymentInfo, RunSummary } from '../../agent/protocol';
import { eventsOf, finished, pipelineYaml, scratch, sleep, startAgent, startRun, TempRepo, until } from '../support/fixtures';
import { PACKAGE_STAGE, serviceSource } from '../support/service';
import { AgentProcess, removeInstances } from './agentProcess';
import { commitToState } from './faults';
import { apiErrorOf, rawRequest } from './http';
import { isAlive } from '../../agent/agent';

/**
 * The smallest reproductions of what the reliability suites found, one per problem, so that each
 * fix has a test that failed before it.
 */
describe('reliability: regressions', function () {
  this.timeout(120_000);

  describe('secrets', () => {
    const SECRET = 'hunter2-correct-horse-battery';
    let repo: TempRepo;
    let agent: Agent;

    afterEach(async () => {
      await agent?.stop();
      repo?.dispose();
    });

    const logOf = (runId: number, stage: string) => fs.readFileSync(repo.path('.conveyor', 'logs', String(runId), stage, '1-0.log'), 'utf8');

    it('keeps each stage\'s output in its own log, and masks a value split across writes while another stage prints', async () => {
      // One masker serves every stage of a run: what it holds back from one stage comes out in another's log.
      repo = new TempRepo({
        'conveyor.yml': pipelineYaml(
          `
- name: split
  run: s="$API_KEY"; printf '%s' "\${s%%-*}"; sleep 0.5; printf '%s\\n' "-\${s#*-}"
- name: chatter
  run: sleep 0.1; for i in 1 2 3 4 5 6 7 8 9 10; do echo "chatter $i"; sleep 0.05; done
`,
          'secrets: [API_KEY]\n',
        ),
      });
      agent = await startAgent(repo, { env: { ...process.env, API_KEY: SECRET } });
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(run.status, 'succeeded');
      assert.equal(logOf(run.id, 'split'), '***\n');
      assert.equal(logOf(run.id, 'chatter'), Array.from({ length: 10 }, (_, i) => `chatter ${i + 1}\n`).join(''));
    });

    it('masks the base64 of a long secret as `base64` prints it (wrapped at 76 columns)', async () => {
      const long = 'ghp_' + 'Zq8LmW3vRt5yXb7NcK2pHs9dFj4gTa6e'.repeat(2);
      repo = new TempRepo({ 'conveyor.yml': pipelineYaml(`- name: encode\n  run: printf '%s' "$LONG_KEY" | base64`, 'secrets: [LONG_KEY]\n') });
      agent = await startAgent(repo, { env: { ...process.env, LONG_KEY: long } });
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      const b64 = Buffer.from(long).toString('base64');
      const printed = logOf(run.id, 'encode').replace(/\n/g, '');
      assert.ok(!printed.includes(b64.slice(0, 40)) && !printed.includes(b64.slice(40)), `the log holds the base64: ${printed}`);
    });

    it("masks a secret's base64 inside a longer encoded value (HTTP Basic credentials)", async () => {
      repo = new TempRepo({ 'conveyor.yml': pipelineYaml(`- name: encode\n  run: printf 'ci-user:%s' "$API_KEY" | base64`, 'secrets: [API_KEY]\n') });
      agent = await startAgent(repo, { env: { ...process.env, API_KEY: SECRET } });
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      const printed = logOf(run.id, 'encode').trim();
      assert.notEqual(Buffer.from(printed, 'base64').toString(), `ci-user:${SECRET}`, `the log holds the credentials, decodable: ${printed}`);
    });

    it('records an artifact whose file name holds a secret without the secret', async () => {
      repo = new TempRepo({ 'conveyor.yml': pipelineYaml(`- name: build\n  run: mkdir -p dist && echo built > "dist/build-$API_KEY.txt"\n  artifacts: [dist/*.txt]`, 'secrets: [API_KEY]\n') });
      agent = await startAgent(repo, { env: { ...process.env, API_KEY: SECRET } });
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(run.status, 'succeeded');
      assert.equal(run.artifacts.length, 1);
      assert.ok(!JSON.stringify(eventsOf(agent)).includes(SECRET), 'an event holds the secret');
      assert.ok(!JSON.stringify(agent.store.getRun(run.id)).includes(SECRET), 'the artifacts table holds the secret');
    });
  });

  describe('a deploy whose service prints a secret and fails', () => {
    const SECRET = 'hunter2-correct-horse-battery';
    let repo: TempRepo;
    let agent: Agent;
    let deployment: DeploymentInfo;

    before(async () => {
      repo = new TempRepo({
        'server.js': `console.log('starting with token ' + process.env.API_KEY); process.exit(1);\n`,
        'conveyor.yml': `pipeline:\n  stages:\n${PACKAGE_STAGE}\n    - { name: staging, kind: deploy, environment: staging, needs: [package] }\nenvironments:\n  staging: { promotion: auto, start: node server.js, health: { timeout: 5s } }\nsecrets: [API_KEY]\n`,
      });
      agent = await startAgent(repo, { env: { ...process.env, API_KEY: SECRET } });
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(run.status, 'failed');
      deployment = agent.store.deployments('staging', 1)[0];
    });

    after(async () => {
      await agent.stop();
      await removeInstances(repo, ['staging']);
      repo.dispose();
    });

    it("masks the service's last lines in the deployment's reason (events, history, API)", () => {
      assert.match(deployment.reason ?? '', /starting with token/, 'the reason carries the last lines');
      assert.ok(!deployment.reason!.includes(SECRET), `the reason holds the secret: ${deployment.reason}`);
      assert.ok(!JSON.stringify(eventsOf(agent)).includes(SECRET), 'an event holds the secret');
    });

    it("masks the service instance's log file", () => {
      const logs = path.join(repo.path('.conveyor', 'runtimes', 'process', 'logs', 'staging'));
      const text = fs.readdirSync(logs).map((f) => fs.readFileSync(path.join(logs, f), 'utf8')).join('');
      assert.match(text, /starting with token/);
      assert.ok(!text.includes(SECRET), 'the instance log holds the secret');
    });
  });

  describe('the API', () => {
    let repo: TempRepo;
    let agent: Agent;
    const headers = () => ({ authorization: `Bearer ${agent.discovery.token}`, 'content-type': 'application/json' });

    before(async () => {
      repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: broken\n  run: exit 1') });
      agent = await startAgent(repo);
      await finished(agent, await startRun(agent, { trigger: 'manual' }));
      await until(() => agent.alerts.list(false).length > 0, 'the alert of the failed run');
    });

    after(async () => {
      await agent.stop();
      repo.dispose();
    });

    it('answers a snooze longer than a date can hold with a 400 and a message, not a 500', async () => {
      const id = agent.alerts.list(false)[0].id;
      for (const value of ['"3000000000h"', '1e13']) {
        const a = await rawRequest({ port: agent.port, method: 'POST', path: `/api/alerts/${id}/snooze`, headers: headers(), body: `{"for": ${value}}` });
        assert.equal(a.status, 400, `{"for": ${value}}: ${a.status} ${a.body}`);
        assert.ok(apiErrorOf(a));
      }
    });

    it('answers a request its HTTP parser refuses (an unknown method, an over-long address) with a 4xx and a JSON message', async () => {
      const unknown = await rawRequest({ port: agent.port, method: 'FOO', path: '/api/health', headers: headers() });
      assert.ok(unknown.status >= 400 && unknown.status < 500, String(unknown.status));
      assert.ok(apiErrorOf(unknown), `FOO /api/health answered ${unknown.status} with "${unknown.body}"`);
      const long = await rawRequest({ port: agent.port, method: 'GET', path: `/api/runs?x=${'a'.repeat(20_000)}`, headers: headers() });
      assert.ok(long.status >= 400 && long.status < 500, String(long.status));
      assert.ok(apiErrorOf(long), `a 20 KB address answered ${long.status} with "${long.body}"`);
    });
  });

  it("stops a running step's processes when the agent that ran it was killed", async () => {
    const out = scratch();
    const repo = new TempRepo({ 'conveyor.yml': pipelineYaml(`- name: long\n  run: echo $$ > "$OUT/pid"; exec sleep 120`) });
    let agent = await AgentProcess.start(repo.dir, { OUT: out });
    let pid = 0;
    try {
      const run = await agent.client.request<RunSummary>('POST', '/runs', {});
      await until(() => fs.existsSync(path.join(out, 'pid')) && fs.readFileSync(path.join(out, 'pid'), 'utf8').trim(), 'the step to start');
      pid = Number(fs.readFileSync(path.join(out, 'pid'), 'utf8'));
      await agent.kill9();
      agent = await AgentProcess.start(repo.dir, { OUT: out });
      await until(async () => (await agent.client.request<RunSummary>('GET', `/runs/${run.id}`)).status === 'interrupted', 'the run marked interrupted');
      // The run is over for the history; its step must be over for the machine too.
      await until(() => !isAlive(pid), 'the interrupted step to stop', 10_000).catch(() => undefined);
      assert.ok(!isAlive(pid), `the step of the interrupted run still runs (pid ${pid})`);
    } finally {
      await agent.stop();
      if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
      repo.dispose();
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('runs stages when the test files of watch.tests add up to more than a variable can hold', async () => {
    // $CONVEYOR_TESTS lists every file of watch.tests for a commit run; past 128 KiB the kernel
    // refuses to start any step (E2BIG).
    const files: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) files[`test/integration/a-rather-long-folder-name-for-the-checkout-flows/case-${String(i).padStart(4, '0')}.test.js`] = '';
    const repo = new TempRepo({ ...files, 'conveyor.yml': pipelineYaml('- name: test\n  run: echo ran', 'watch: { tests: ["test/**/*.test.js"] }\n') });
    const agent = await startAgent(repo);
    try {
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(run.status, 'succeeded', run.stages[0].message ?? '');
    } finally {
      await agent.stop();
      repo.dispose();
    }
  });

  it('reports a state file it cannot read and leaves it in git, instead of committing the live state over it', async () => {
    const repo = new TempRepo({
      'server.js': serviceSource('v1'),
      'conveyor.yml': `pipeline:\n  stages:\n${PACKAGE_STAGE}\n    - { name: staging, kind: deploy, environment: staging, needs: [package] }\nenvironments:\n  staging: { promotion: auto, start: node server.js, health: { timeout: 10s } }\n`,
    });
    const agent = await startAgent(repo, { pollMs: 200 });
    try {
      assert.equal((await finished(agent, await startRun(agent, { trigger: 'manual' }))).status, 'succeeded');
      await until(() => agent.reconciler!.status('staging')?.sync === 'Synced', 'Synced');
      // Someone's new desired state lands, but its object cannot be read (a bad disk, a bad fetch).
      const text = repo.git('show', 'conveyor/state:environments/staging.yml').replace(/^env:.*$/m, 'env: { GREETING: unreadable }');
      const { commit } = commitToState(repo, 'environments/staging.yml', text, 'greet from an unreadable object', (file) => {
        fs.chmodSync(file, 0o644);
        fs.writeFileSync(file, 'not a zlib stream');
      });
      await sleep(3000);
      const written = repo.git('log', '--format=%an: %s', `${commit}..conveyor/state`).trim();
      assert.equal(written, '', 'the agent committed over the state it could not read');
      assert.match(agent.reconciler!.status('staging')?.error?.message ?? '', /environments\/staging\.yml/, 'the sync status says the state file cannot be read');
    } finally {
      await agent.stop();
      await removeInstances(repo, ['staging']);
      repo.dispose();
    }
  });
});
