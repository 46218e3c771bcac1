import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EnvironmentStatus, RunSummary, SequencedEvent } from '../../agent/protocol';
import { httpGet } from '../support/docker';
import { sleep, TempRepo, until } from '../support/fixtures';
import { AgentProcess, groupsOf, processesUnder, removeInstances } from './agentProcess';
import { info, recordFigures, zero } from './figures';
import { EventFollower } from './follower';
import { allEvents, duplicatedHistory, lostEvents, sequenceBreaks, tablesAgainstEvents } from './history';
import { Random, scaled, seedOf } from './mode';

/** Answers $GREETING and a /healthz, on $PORT. */
const SERVER = `
const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === '/healthz') { res.writeHead(200); return res.end('ok'); }
  res.end((process.env.GREETING || 'hello') + ' ' + require('./version.json').v);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const ENVIRONMENTS = ['blue', 'recreate'];

/** A run packages the service and deploys it twice (blue-green and recreate) beside a chatty stage. */
const CONFIG = `
pipeline:
  maxParallel: 4
  stages:
    - name: package
      run: mkdir -p dist && tar -czf dist/app.tgz server.js version.json
      artifacts: [dist/app.tgz]
    - name: chatter
      run: for i in $(seq 1 40); do echo "line $i"; sleep 0.01; done
    - name: blue
      kind: deploy
      environment: blue
      needs: [package]
    - name: recreate
      kind: deploy
      environment: recreate
      needs: [package]
environments:
  blue:
    promotion: auto
    strategy: blue-green
    start: node server.js
    env: { GREETING: v0 }
    health: { http: /healthz, timeout: 20s, interval: 100ms }
  recreate:
    promotion: auto
    strategy: recreate
    start: node server.js
    env: { GREETING: v0 }
    health: { http: /healthz, timeout: 20s, interval: 100ms }
`;

/** A clone of the state branch, where the suite commits desired state as a person would. */
class StateCheckout {
  readonly dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-crash-state-')));

  constructor(source: string) {
    this.git('clone', '-q', '-b', 'conveyor/state', source, '.');
    this.git('config', 'user.email', 'ops@example.com');
    this.git('config', 'user.name', 'Ops');
  }

  git(...args: string[]): string {
    return execFileSync('git', args, { cwd: this.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Sets GREETING in an environment's state file and pushes; starts over when the agent committed meanwhile. */
  setGreeting(environment: string, greeting: string): void {
    for (let attempt = 1; ; attempt++) {
      this.git('fetch', '-q', 'origin', 'conveyor/state');
      this.git('reset', '-q', '--hard', 'FETCH_HEAD');
      const file = path.join(this.dir, 'environments', `${environment}.yml`);
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/GREETING: .*/, `GREETING: ${greeting}`));
      this.git('commit', '-q', '-am', `${environment}: greet with ${greeting}`);
      try {
        this.git('push', '-q', 'origin', 'HEAD:conveyor/state');
        return;
      } catch (e) {
        if (attempt >= 5) throw e;
      }
    }
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What was going on when the agent was killed, from the events it had sent. */
function phaseAt(events: SequencedEvent[]): string {
  const runs = new Set<number>();
  const deployments = new Map<number, string>();
  for (const e of events) {
    if (e.type === 'run.started') runs.add(e.run.id);
    if (e.type === 'run.finished') runs.delete(e.run.id);
    if (e.type === 'deployment.changed') {
      if (e.deployment.status === 'running') deployments.set(e.deployment.id, e.deployment.trigger);
      else deployments.delete(e.deployment.id);
    }
  }
  const triggers = [...deployments.values()];
  if (triggers.includes('sync') || triggers.includes('heal')) return 'GitOps sync deploy';
  if (triggers.length) return 'pipeline deploy';
  if (runs.size) return 'run';
  return 'idle';
}

describe('reliability: crash (kill -9 at random points, then restart)', function () {
  const KILLS = scaled(5, 50);
  this.timeout(scaled(240_000, 3_600_000));
  let repo: TempRepo;
  let agent: AgentProcess;
  let state: StateCheckout;
  let version = 0;

  const commitVersion = () => {
    repo.write({ 'version.json': JSON.stringify({ v: ++version }) });
    repo.commit(`version ${version}`);
  };

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': SERVER, 'version.json': '{"v":0}' });
    agent = await AgentProcess.start(repo.dir);
    // Both environments live before the first kill.
    const run = await agent.client.request<RunSummary>('POST', '/runs', {});
    await until(async () => (await agent.client.request<RunSummary>('GET', `/runs/${run.id}`)).status === 'succeeded', 'the first release live', 60_000);
    assert.ok(await agent.settled(), 'the first deploys settle');
    state = new StateCheckout(repo.dir);
  });

  after(async () => {
    await agent?.stop();
    state?.dispose();
    if (repo) {
      await removeInstances(repo, ENVIRONMENTS);
      repo.dispose();
    }
  });

  it(`keeps every event, ends every run and serves a healthy release after ${KILLS} kills`, async () => {
    const rnd = new Random(seedOf('crash'));
    console.log(`      seed ${rnd.seed}`);
    let lost = 0;
    let breaks = 0;
    let leftRunning = 0;
    let unhealthy = 0;
    let stray = 0;
    const disagreements: string[] = [];
    const problems: string[] = [];
    const phases = new Map<string, number>();
    let starts = 1;
    const killedPids: number[] = [];

    for (let i = 0; i < KILLS; i++) {
      const action = rnd.pick(['run', 'sync', 'run+sync'] as const);
      // Where to kill: after the k-th event the action causes (0: at once).
      const k = rnd.int(0, action === 'sync' ? 15 : 80);
      let killedAt: SequencedEvent[] | undefined;
      let afterTrigger = -1;
      const kill = async () => {
        if (killedAt) return;
        killedAt = [...follower.events];
        killedPids.push(agent.pid);
        await agent.kill9();
      };
      const follower = new EventFollower(agent.port, agent.token, 0, (_e, n) => {
        if (afterTrigger >= 0 && n - afterTrigger >= k) void kill();
      });
      await follower.opened;
      await until(() => follower.events.length >= 1, 'the history so far');
      await sleep(100);
      afterTrigger = follower.events.length;
      if (action !== 'sync') {
        commitVersion();
        await agent.client.request('POST', '/runs', {});
      }
      if (action !== 'run') state.setGreeting(rnd.pick(ENVIRONMENTS), `sync-${i}`);
      if (k === 0) await kill();
      // The action may end before its k-th event: then the kill lands once it is quiet.
      let seen = follower.events.length;
      for (let quiet = 0; !killedAt && quiet < 20; ) {
        await sleep(100);
        quiet = follower.events.length === seen ? quiet + 1 : 0;
        seen = follower.events.length;
      }
      await kill();
      follower.close();
      const before = killedAt!;
      const phase = phaseAt(before.slice(afterTrigger));
      phases.set(phase, (phases.get(phase) ?? 0) + 1);

      agent = await AgentProcess.start(repo.dir);
      starts++;
      const envs = (await agent.settled()) ?? (await agent.client.request<EnvironmentStatus[]>('GET', '/environments'));
      for (const name of ENVIRONMENTS) {
        const env = envs.find((e) => e.name === name);
        const answer = env?.url ? await httpGet(env.url.replace('http://', ''), '/healthz') : { error: 'no url' };
        if (!env?.live || env.health !== 'Healthy' || !('status' in answer) || answer.status !== 200) {
          unhealthy++;
          problems.push(`kill ${i + 1} (${phase}): ${name} live ${env?.live?.number ?? 'none'}, ${env?.health}, ${env?.sync?.sync}, answer ${JSON.stringify(answer)}`);
        }
      }
      const runs = await agent.client.request<RunSummary[]>('GET', '/runs?limit=500');
      const running = runs.filter((r) => r.status === 'running' || r.status === 'queued');
      leftRunning += running.length;
      for (const r of running) problems.push(`kill ${i + 1} (${phase}): run #${r.id} ${r.status}`);

      const after = await allEvents(agent.client);
      const lostNow = lostEvents(before, after);
      lost += lostNow;
      if (lostNow) problems.push(`kill ${i + 1} (${phase}): ${lostNow} of the ${before.length} events seen before the kill differ after it`);
      breaks += sequenceBreaks(after);
      disagreements.push(...(await tablesAgainstEvents(agent.client, after)).map((d) => `kill ${i + 1} (${phase}): ${d}`));
      const started = after.filter((e) => e.type === 'agent.started').length;
      if (started !== starts) problems.push(`kill ${i + 1}: ${started} agent.started events for ${starts} starts`);

      // One instance per environment: a blue-green's old one is gone once drained.
      const groups = await until(
        () => {
          const g = groupsOf(processesUnder(repo.path('.conveyor', 'runtimes'))).size;
          return g <= ENVIRONMENTS.length ? g : undefined;
        },
        'old instances to stop',
        15_000,
      ).catch(() => groupsOf(processesUnder(repo.path('.conveyor', 'runtimes'))).size);
      if (groups > ENVIRONMENTS.length) {
        stray += groups - ENVIRONMENTS.length;
        problems.push(`kill ${i + 1} (${phase}): ${groups} service instances for ${ENVIRONMENTS.length} environments`);
      }
    }
    const duplicated = duplicatedHistory(await allEvents(agent.client));
    // A killed agent's private git index (of a state commit in flight) stays in the temp folder.
    const leftovers = fs.readdirSync(os.tmpdir()).filter((f) => killedPids.some((pid) => f.startsWith(`conveyor-state-index-${pid}-`)));
    for (const f of leftovers) fs.rmSync(path.join(os.tmpdir(), f), { force: true });

    const suite = 'Crash';
    recordFigures([
      info(suite, 'kill points', `${KILLS} (${[...phases].map(([p, n]) => `${n} during ${p}`).join(', ')})`),
      zero(suite, 'runs left running after restart', leftRunning),
      zero(suite, 'environments not serving a healthy release after settling', unhealthy),
      zero(suite, 'events seen before a kill lost or changed after it', lost),
      zero(suite, 'history rows duplicated', duplicated.length),
      zero(suite, 'sequence gaps or repeats', breaks),
      zero(suite, 'runs/deployments rows that disagree with the events', disagreements.length),
      zero(suite, 'stray service instances after settling', stray),
      info(suite, "temporary files a killed agent left (its state commit's private index in the temp folder)", leftovers.length),
    ]);
    const all = [...problems, ...duplicated, ...disagreements];
    assert.deepEqual(all, [], all.join('\n'));
  });
});
