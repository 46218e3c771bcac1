import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { DeploymentInfo, EnvironmentStatus, RunDetail, RunSummary, SequencedEvent, StateView } from '../../agent/protocol';
import { dockerClient, freePort, httpGet, IMAGE_FIXTURES, removeByLabel, requireDocker, TEST_LABEL, testRunLabel } from '../support/docker';
import { sleep, TempRepo, until } from '../support/fixtures';
import { PACKAGE_STAGE, serviceSource } from '../support/service';
import { AgentProcess, removeInstances } from './agentProcess';
import { commitToState, DaemonRelay, OwnRegistry } from './faults';
import { info, recordFigures, zero, type Figure } from './figures';
import { EventFollower } from './follower';
import { allEvents, sequenceBreaks, tablesAgainstEvents } from './history';
import { apiErrorOf, rawRequest } from './http';

const suite = 'Component faults';

/** The process environment most faults deploy to. */
const PROCESS_CONFIG = (extra = '') => `
pipeline:
  stages:
${PACKAGE_STAGE}
    - name: staging
      kind: deploy
      environment: staging
      needs: [package]
environments:
  staging:
    promotion: auto
    start: node server.js
    health: { http: /healthz, timeout: 15s, interval: 100ms }
${extra}`;

/**
 * Runs the pipeline and waits for the run to end; resolves with its detail. A look the agent does
 * not answer (it may be busy with the fault) is tried again until the bound.
 */
async function runToEnd(agent: AgentProcess, body: object = {}, timeoutMs = 120_000): Promise<RunDetail> {
  const run = await agent.client.request<RunSummary>('POST', '/runs', body);
  return until(
    async () => {
      const d = await agent.client.request<RunDetail>('GET', `/runs/${run.id}`).catch((e: Error) => {
        if (!agent.alive) throw e;
        return undefined;
      });
      return d && ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(d.status) ? d : undefined;
    },
    `run #${run.id} to end`,
    timeoutMs,
  );
}

/** The deployment a run's deploy stage made, once it ended. */
async function deploymentOf(agent: AgentProcess, runId: number): Promise<DeploymentInfo | undefined> {
  const events = await allEvents(agent.client);
  const ids = events.filter((e) => e.type === 'deployment.changed' && e.deployment.runId === runId).map((e) => (e.type === 'deployment.changed' ? e.deployment.id : 0));
  return ids.length ? agent.client.request<DeploymentInfo>('GET', `/deployments/${ids[ids.length - 1]}`) : undefined;
}

/**
 * What a fault must not do: crash the agent, leave a run or a deployment unfinished, or break the
 * history (a gap in the sequence, a table that disagrees with the events). One line per problem.
 */
async function damage(agent: AgentProcess): Promise<string[]> {
  if (!agent.alive) return [`the agent exited: ${agent.log().slice(-1500)}`];
  const out: string[] = [];
  const settled = await agent.settled(90_000);
  if (!settled) out.push('the agent did not settle: a run or a deployment stayed in flight');
  const events = await allEvents(agent.client);
  if (sequenceBreaks(events)) out.push(`${sequenceBreaks(events)} breaks in the event sequence`);
  out.push(...(await tablesAgainstEvents(agent.client, events)));
  const runs = await agent.client.request<RunSummary[]>('GET', '/runs?limit=500');
  for (const r of runs.filter((r) => r.status === 'running' || r.status === 'queued')) out.push(`run #${r.id} left ${r.status}`);
  return out;
}

/** A clear error: a sentence that names what failed, not a stack or an empty reason. */
function clear(reason: string | null | undefined, mentions: RegExp): boolean {
  return !!reason && mentions.test(reason) && !/^\s*at\s/m.test(reason) && !/undefined|\[object Object\]/.test(reason);
}

describe('reliability: component faults (each ends in a clear error or recovers, with nothing lost)', function () {
  this.timeout(300_000);
  const figures: Figure[] = [];

  after(() => recordFigures(figures));

  describe('the registry down during an image build and push', () => {
    let repo: TempRepo;
    let agent: AgentProcess;
    let registry: OwnRegistry;
    const label = testRunLabel('reliability-registry');

    before(async () => {
      await requireDocker();
      registry = new OwnRegistry();
      await registry.start();
      const dockerfile = fs.readFileSync(path.join(IMAGE_FIXTURES, 'httpd', 'Dockerfile'), 'utf8') + `LABEL ${TEST_LABEL}=${label}\n`;
      const www = Object.fromEntries(fs.readdirSync(path.join(IMAGE_FIXTURES, 'httpd', 'www')).map((f) => [`www/${f}`, fs.readFileSync(path.join(IMAGE_FIXTURES, 'httpd', 'www', f), 'utf8')]));
      repo = new TempRepo({
        Dockerfile: dockerfile,
        ...www,
        'conveyor.yml': `pipeline:\n  stages:\n    - name: image\n      kind: image\n      image: { name: conveyor-test/reliability-registry, registry: "${registry.address}" }\n`,
      });
      agent = await AgentProcess.start(repo.dir);
    });

    after(async () => {
      await agent?.stop();
      await registry?.dispose();
      await removeByLabel(dockerClient(), label);
      if (repo) {
        // A registry the agent started in the workspace outlives it by design.
        await removeInstances(repo, []);
        repo.dispose();
      }
    });

    it('fails the image stage with a message naming the registry (or starts one), then pushes once it is back', async () => {
      // The registry goes away once the build prints its first line: past the agent's look at the
      // registry, before the push.
      let stopping: Promise<void> | undefined;
      const follower = new EventFollower(agent.port, agent.token, (await agent.health()).lastSeq, (e) => {
        if (!stopping && e.type === 'log' && e.stage === 'image') stopping = registry.stop();
      });
      await follower.opened;
      const down = await runToEnd(agent);
      follower.close();
      await stopping;
      const stage = down.stages.find((s) => s.name === 'image')!;
      const log = await agent.client.request<string>('GET', `/runs/${down.id}/logs?stage=image`);
      const named = clear(`${stage.message}\n${log}`, new RegExp(registry.address.replace(/\./g, '\\.')));
      // The agent may also have started a registry of its own on that address: that is recovering.
      const recovered = down.status === 'succeeded' && /started a registry/.test(log);
      await registry.start();
      const back = await runToEnd(agent);
      const problems = await damage(agent);
      const ok = ((down.status === 'failed' && named) || recovered) && back.status === 'succeeded';
      figures.push(info(suite, 'registry down during build and push', `image stage ${stage.status}${stage.message ? `: "${stage.message}"` : recovered ? ' (the agent started a registry)' : ''}; after a restart: ${back.status}`));
      figures.push(zero(suite, 'registry down: unclear outcomes or damage', (ok ? 0 : 1) + problems.length));
      assert.ok((down.status === 'failed' && named) || recovered, `a clear failure naming the registry, or a recovery: ${down.status}: ${stage.message}\n${log.slice(-800)}`);
      assert.equal(back.status, 'succeeded', JSON.stringify(back.stages));
      assert.deepEqual(problems, []);
    });
  });

  describe('dockerd restarted mid-deploy', () => {
    let repo: TempRepo;
    let agent: AgentProcess;
    let relay: DaemonRelay;
    const label = testRunLabel('reliability-dockerd');
    const environment = `faults-${randomBytes(3).toString('hex')}`;
    const docker = dockerClient();
    const containers = () => docker.listContainers({ all: true, filters: { label: [`conveyor.environment=${environment}`] } });

    before(async () => {
      await requireDocker();
      relay = new DaemonRelay();
      await relay.start();
      const dockerfile = fs.readFileSync(path.join(IMAGE_FIXTURES, 'httpd', 'Dockerfile'), 'utf8') + `LABEL ${TEST_LABEL}=${label}\n`;
      const www = Object.fromEntries(fs.readdirSync(path.join(IMAGE_FIXTURES, 'httpd', 'www')).map((f) => [`www/${f}`, fs.readFileSync(path.join(IMAGE_FIXTURES, 'httpd', 'www', f), 'utf8')]));
      repo = new TempRepo({
        Dockerfile: dockerfile,
        ...www,
        'conveyor.yml': `
pipeline:
  stages:
    - name: image
      kind: image
      image: { name: conveyor-test/reliability-dockerd, registry: "127.0.0.1:5000" }
    - name: deploy
      kind: deploy
      environment: ${environment}
      needs: [image]
environments:
  ${environment}:
    runtime: docker
    promotion: auto
    containerPort: 8080
    health: { http: /healthz, timeout: 30s, interval: 200ms }
`,
      });
      agent = await AgentProcess.start(repo.dir, { DOCKER_HOST: relay.dockerHost });
      // A first release, so that the restart hits a deploy that replaces one.
      const first = await runToEnd(agent);
      assert.equal(first.status, 'succeeded', JSON.stringify(first.stages));
    });

    after(async () => {
      await agent?.stop();
      await relay?.dispose();
      for (const c of await containers().catch(() => [])) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      await removeByLabel(docker, label);
      repo?.dispose();
    });

    it('ends the deploy with a clear error or completes it, follows the daemon again, and deploys after', async () => {
      // The daemon goes down once the deployment runs: its socket disappears, connections break,
      // and its containers stop; three seconds later it is back and starts them again, as
      // dockerd does with an unless-stopped restart policy.
      repo.write({ 'www/index.html': '<p>v2</p>\n' });
      repo.commit('v2');
      let outage: Promise<string[]> | undefined;
      const follower = new EventFollower(agent.port, agent.token, (await agent.health()).lastSeq, (e) => {
        if (outage || e.type !== 'deployment.changed' || e.deployment.environment !== environment || e.deployment.status !== 'running') return;
        outage = (async () => {
          await relay.outage();
          const running = (await containers()).filter((c) => c.State === 'running').map((c) => c.Id);
          await Promise.all(running.map((id) => docker.getContainer(id).stop({ t: 1 }).catch(() => undefined)));
          await sleep(3000);
          await relay.start();
          await Promise.all(running.map((id) => docker.getContainer(id).start().catch(() => undefined)));
          return running;
        })();
      });
      await follower.opened;
      const during = await runToEnd(agent);
      follower.close();
      assert.ok(outage, 'the deployment started, and the daemon went down under it');
      await outage;
      const d = await deploymentOf(agent, during.id);
      const outcomeClear = d?.status === 'succeeded' || clear(d?.reason, /docker|daemon|container|health/i);
      // Back: the agent deploys again, and exactly one container serves the environment.
      const after = await agent.client.request<DeploymentInfo>('POST', `/environments/${environment}/deploy`, { run: during.id }).catch(async () => {
        const again = await runToEnd(agent);
        return deploymentOf(agent, again.id);
      });
      const settled = await until(async () => {
        const x = await agent.client.request<DeploymentInfo>('GET', `/deployments/${after!.id}`);
        return ['succeeded', 'failed', 'rolled_back', 'cancelled', 'rejected'].includes(x.status) ? x : undefined;
      }, 'the deploy after the restart', 120_000);
      const env = (await agent.client.request<EnvironmentStatus[]>('GET', '/environments')).find((e) => e.name === environment)!;
      const running = (await containers()).filter((c) => c.State === 'running');
      const answer = env.url ? await httpGet(env.url.replace('http://', ''), '/healthz') : { error: 'no url' };
      const problems = await damage(agent);
      figures.push(info(suite, 'dockerd restarted mid-deploy', `deployment #${d?.id} ${d?.status}${d?.reason ? `: "${d.reason.split('\n')[0]}"` : ''}; the next one ${settled.status}; ${running.length} container(s) running`));
      figures.push(zero(suite, 'dockerd restart: unclear outcomes, duplicates or damage', (outcomeClear ? 0 : 1) + (settled.status === 'succeeded' ? 0 : 1) + Math.abs(running.length - 1) + problems.length));
      assert.ok(outcomeClear, `a clear outcome: ${JSON.stringify(d)}`);
      assert.equal(settled.status, 'succeeded', JSON.stringify(settled));
      assert.equal(env.health, 'Healthy');
      assert.ok('status' in answer && answer.status === 200, JSON.stringify(answer));
      assert.equal(running.length, 1, `one container: ${running.map((c) => c.Names.join()).join(', ')}`);
      assert.deepEqual(problems, []);
    });
  });

  describe('an environment port in use', () => {
    let repo: TempRepo;
    let agent: AgentProcess;
    let squatter: net.Server;
    let port: number;

    before(async () => {
      port = await freePort();
      repo = new TempRepo({ 'conveyor.yml': PROCESS_CONFIG().replace('promotion: auto', `promotion: auto\n    port: ${port}`), 'server.js': serviceSource('port') });
      squatter = net.createServer((s) => s.end());
      await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
      agent = await AgentProcess.start(repo.dir);
    });

    after(async () => {
      await agent?.stop();
      await new Promise((r) => squatter?.close(r));
      if (repo) {
        await removeInstances(repo, ['staging']);
        repo.dispose();
      }
    });

    it('fails the deploy saying which port and what to do, then deploys once the port is free', async () => {
      const blocked = await runToEnd(agent);
      const d = await deploymentOf(agent, blocked.id);
      await new Promise((r) => squatter.close(r));
      const freed = await runToEnd(agent);
      const env = (await agent.client.request<EnvironmentStatus[]>('GET', '/environments'))[0];
      const problems = await damage(agent);
      const reason = d?.reason ?? blocked.stages.find((s) => s.name === 'staging')?.message;
      const ok = blocked.status === 'failed' && clear(reason, new RegExp(`port ${port}.*in use`)) && freed.status === 'succeeded' && env.url === `http://127.0.0.1:${port}`;
      figures.push(info(suite, 'environment port in use', `deploy ${d?.status}: "${(reason ?? '').split('\n')[0]}"; once free: ${freed.status}`));
      figures.push(zero(suite, 'port in use: unclear outcomes or damage', (ok ? 0 : 1) + problems.length));
      assert.equal(blocked.status, 'failed');
      assert.ok(clear(reason, new RegExp(`port ${port}.*in use`)), `the reason names the port: ${reason}`);
      assert.equal(freed.status, 'succeeded', JSON.stringify(freed.stages));
      assert.equal(env.url, `http://127.0.0.1:${port}`);
      assert.deepEqual(problems, []);
    });
  });

  describe('the git state repository locked or corrupted', () => {
    let repo: TempRepo;
    let agent: AgentProcess;
    const env = async () => (await agent.client.request<EnvironmentStatus[]>('GET', '/environments'))[0];
    const serves = async () => {
      const r = await httpGet((await env()).url!.replace('http://', ''), '/');
      return 'body' in r ? r.body : r.error;
    };

    before(async () => {
      repo = new TempRepo({ 'conveyor.yml': PROCESS_CONFIG(), 'server.js': serviceSource('v1') });
      agent = await AgentProcess.start(repo.dir);
      assert.equal((await runToEnd(agent)).status, 'succeeded');
      assert.ok(await agent.settled());
    });

    after(async () => {
      await agent?.stop();
      if (repo) {
        await removeInstances(repo, ['staging']);
        repo.dispose();
      }
    });

    it('a locked state branch fails the deploy clearly and changes nothing; unlocked, it deploys', async () => {
      repo.write({ 'server.js': serviceSource('v2') });
      repo.commit('v2');
      const lock = repo.path('.git', 'refs', 'heads', 'conveyor', 'state.lock');
      fs.writeFileSync(lock, '');
      // The user's own index locked too (an editor's git): the agent's private index is unaffected.
      fs.writeFileSync(repo.path('.git', 'index.lock'), '');
      const locked = await runToEnd(agent).finally(() => fs.rmSync(repo.path('.git', 'index.lock'), { force: true }));
      const d = await deploymentOf(agent, locked.id);
      const stillV1 = await serves();
      fs.rmSync(lock);
      const unlocked = await runToEnd(agent);
      const nowV2 = await serves();
      const problems = await damage(agent);
      const ok = d?.status === 'failed' && clear(d.reason, /lock|git/i) && stillV1 === 'v1' && unlocked.status === 'succeeded' && nowV2 === 'v2';
      figures.push(info(suite, 'state branch locked', `deploy ${d?.status}: "${(d?.reason ?? '').split('\n')[0].slice(0, 160)}"; unlocked: ${unlocked.status}`));
      figures.push(zero(suite, 'state branch locked: unclear outcomes or damage', (ok ? 0 : 1) + problems.length));
      assert.equal(d?.status, 'failed', JSON.stringify(d));
      assert.ok(clear(d!.reason, /lock|git/i), `the reason says git is locked: ${d!.reason}`);
      assert.equal(stillV1, 'v1', 'nothing changed while git was locked');
      assert.equal(unlocked.status, 'succeeded', JSON.stringify(unlocked.stages));
      assert.equal(nowV2, 'v2');
      assert.deepEqual(problems, []);
    });

    it('a corrupted state file object is reported at the environment, the live release keeps serving, and it recovers once repaired', async () => {
      const headers = { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' };
      const look = async () => [
        await rawRequest({ port: agent.port, method: 'GET', path: '/api/environments/staging/state', headers }),
        await rawRequest({ port: agent.port, method: 'POST', path: '/api/environments/staging/sync', headers, body: '{"dryRun": true}' }),
      ];
      /** What an answer says about the state: the error it reports, or the sync status without one. */
      const said = (a: { status: number; body: string }) => {
        if (a.status >= 500) return `a ${a.status}`;
        if (a.status >= 400) return apiErrorOf(a)?.error ?? `a ${a.status} without a message`;
        const v = JSON.parse(a.body) as { sync: StateView['sync'] };
        return v.sync.error?.message ?? `${v.sync.sync} without an error`;
      };
      // A new desired state lands whose file's object is corrupt on disk (a bad fetch, a bad disk).
      const current = repo.git('show', 'conveyor/state:environments/staging.yml');
      const changed = current.replace(/^env:.*$/m, 'env: { GREETING: corrupted }');
      assert.notEqual(changed, current, 'the state file has an env line to change');
      const { blob, commit: corruptCommit } = commitToState(repo, 'environments/staging.yml', changed, 'greet from a corrupted object', (file) => {
        fs.chmodSync(file, 0o644);
        fs.writeFileSync(file, Buffer.from('not a zlib stream: a corrupted object'));
      });
      const file = repo.path('.git', 'objects', blob.slice(0, 2), blob.slice(2));
      const reported = await until(async () => {
        const answers = (await look()).map(said);
        return answers.every((a) => !/without an error/.test(a)) ? answers : undefined;
      }, 'the agent to see the corrupted object', 30_000).catch(async () => (await look()).map(said));
      const serving = await serves();
      // What the agent committed over the unreadable file, if anything.
      const overwritten = repo.git('log', '--format=%an: %s', `${corruptCommit}..conveyor/state`).trim().split('\n').filter(Boolean);
      // Repaired: the object is written again as git would (the branch moves once more).
      fs.rmSync(file);
      execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: repo.dir, input: changed });
      commitToState(repo, 'README.md', 'the desired state of the environments\n', 'a README beside the state');
      const repaired = await until(async () => {
        const s = await agent.client.request<StateView>('GET', '/environments/staging/state');
        return s.sync.sync === 'Synced' && !s.sync.error ? s : undefined;
      }, 'Synced once the object is repaired', 60_000).catch(() => undefined);
      const problems = await damage(agent);
      const clearReports = reported.filter((r) => /object|corrupt|git|read|fatal|inflate|environments\/staging\.yml/i.test(r) && !/^a \d+|without/.test(r)).length;
      figures.push(info(suite, 'state object corrupted', `state: "${reported[0].slice(0, 140)}"; sync: "${reported[1].slice(0, 140)}"; ${overwritten.length ? `the agent committed over it: "${overwritten.join('; ')}"; ` : ''}serving ${serving}; repaired: ${repaired ? 'Synced' : 'not Synced'}`));
      figures.push(zero(suite, 'state object corrupted: unclear outcomes, commits over the unreadable state, or damage', (clearReports === 2 ? 0 : 2 - clearReports) + overwritten.length + (serving === 'v2' ? 0 : 1) + (repaired ? 0 : 1) + problems.length));
      assert.equal(clearReports, 2, `both the state view and the sync say git cannot read the state: ${JSON.stringify(reported)}`);
      assert.deepEqual(overwritten, [], 'the desired state in git is not overwritten because it could not be read');
      assert.equal(serving, 'v2', 'the live release keeps serving');
      assert.ok(repaired, 'Synced again once the object is repaired');
      assert.deepEqual(problems, []);
    });
  });

  describe('a 100 MB test report', () => {
    let repo: TempRepo;
    let agent: AgentProcess;
    const SIZE = 100 * 1024 * 1024;

    before(async () => {
      // 100 MB of JUnit XML: 50,000 failed tests, each with a 2 KB message.
      const generate = `
const fs = require('node:fs');
fs.mkdirSync('reports', { recursive: true });
const out = fs.openSync('reports/junit.xml', 'w');
fs.writeSync(out, '<?xml version="1.0"?>\\n<testsuites>\\n<testsuite name="huge">\\n');
const message = 'x'.repeat(2000);
let size = 0;
for (let i = 0; size < ${SIZE}; i++) {
  const line = '<testcase classname="huge" name="case ' + i + '"><failure message="' + message + '">' + message + '</failure></testcase>\\n';
  fs.writeSync(out, line);
  size += line.length;
}
fs.writeSync(out, '</testsuite>\\n</testsuites>\\n');
`;
      repo = new TempRepo({
        'gen.js': generate,
        'conveyor.yml': `pipeline:\n  stages:\n    - name: huge\n      run: node gen.js\n      report: { format: junit, path: reports/junit.xml }\n    - name: after\n      needs: [huge]\n      run: echo after\n`,
      });
      agent = await AgentProcess.start(repo.dir);
    });

    after(async () => {
      await agent?.stop();
      repo?.dispose();
    });

    it('records the results or says why it could not, and the agent stays up', async () => {
      // How long the API goes unanswered while the report is read: a figure, not a check.
      let longestWait = 0;
      let done = false;
      const polling = (async () => {
        while (!done && agent.alive) {
          const t = Date.now();
          await agent.health().catch(() => undefined);
          longestWait = Math.max(longestWait, Date.now() - t);
          await sleep(100);
        }
      })();
      const run = await runToEnd(agent, {}, 240_000).finally(() => (done = true));
      await polling;
      const events = await allEvents(agent.client);
      const reported = events.find((e) => e.type === 'tests.reported' || e.type === 'report.unreadable') as SequencedEvent | undefined;
      const biggest = events.reduce((most, e) => Math.max(most, JSON.stringify(e).length), 0);
      const problems = await damage(agent);
      // A big report's results come in several events.
      const recorded = events.reduce((n, e) => (e.type === 'tests.reported' ? n + e.passed + e.failed + e.skipped : n), 0);
      const what =
        reported?.type === 'tests.reported'
          ? `${recorded.toLocaleString('en-US')} results recorded in ${events.filter((e) => e.type === 'tests.reported').length} events`
          : reported?.type === 'report.unreadable'
            ? `unreadable: "${reported.reason}"`
            : 'nothing said about the report';
      figures.push(info(suite, '100 MB test report', `${what}; run ${run.status}; largest event ${(biggest / 1024 / 1024).toFixed(1)} MiB; the API went unanswered for up to ${(longestWait / 1000).toFixed(1)} s`));
      figures.push(zero(suite, '100 MB report: agent crashes, silence about the report, or damage', (agent.alive ? 0 : 1) + (reported ? 0 : 1) + problems.length));
      assert.ok(agent.alive, `the agent exited: ${agent.log().slice(-1500)}`);
      assert.ok(reported, 'the report was read, or the run says why not');
      assert.deepEqual(problems, []);
    });
  });

  describe('a runner that floods its output', () => {
    let repo: TempRepo;
    let agent: AgentProcess;
    const BYTES = 64 * 1024 * 1024;

    before(async () => {
      repo = new TempRepo({
        'conveyor.yml': `pipeline:\n  stages:\n    - name: flood\n      run: yes 'a line of a runner that will not stop talking, over and over' | head -c ${BYTES}\n`,
      });
      agent = await AgentProcess.start(repo.dir);
    });

    after(async () => {
      await agent?.stop();
      repo?.dispose();
    });

    it('keeps every byte in the log file, streams a bounded part, and keeps answering', async () => {
      const run = await agent.client.request<RunSummary>('POST', '/runs', {});
      // The API answers while the flood runs (a count of answers, not a time).
      let answered = 0;
      let refused = 0;
      let done = false;
      const polling = (async () => {
        while (!done) {
          await agent.health().then(
            () => answered++,
            () => refused++,
          );
          await sleep(50);
        }
      })();
      const detail = await until(async () => {
        const d = await agent.client.request<RunDetail>('GET', `/runs/${run.id}`);
        return d.status === 'succeeded' || d.status === 'failed' ? d : undefined;
      }, 'the flood to end', 180_000);
      done = true;
      await polling;
      const logFile = repo.path('.conveyor', 'logs', String(run.id), 'flood', '1-0.log');
      const kept = fs.statSync(logFile).size;
      const events = await allEvents(agent.client);
      const streamed = events.filter((e) => e.type === 'log' && e.runId === run.id).reduce((n, e) => n + (e.type === 'log' ? e.text.length : 0), 0);
      const problems = await damage(agent);
      figures.push(info(suite, 'runner flooding 64 MiB', `log file ${kept.toLocaleString('en-US')} bytes; streamed ${(streamed / 1024 / 1024).toFixed(1)} MiB as events; ${answered} health answers during the flood, ${refused} refused`));
      figures.push(zero(suite, 'flood: bytes lost from the log file, unbounded streaming, refused requests or damage', (kept === BYTES ? 0 : 1) + (streamed <= 9 * 1024 * 1024 ? 0 : 1) + refused + problems.length));
      assert.equal(detail.status, 'succeeded');
      assert.equal(kept, BYTES, 'every byte is in the log file');
      assert.ok(streamed <= 9 * 1024 * 1024, `${streamed} bytes streamed as events`);
      assert.ok(answered > 0 && refused === 0, `${answered} answered, ${refused} refused`);
      assert.deepEqual(problems, []);
    });
  });
});
