import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Agent } from '../../../agent/agent';
import type { RunDetail } from '../../../agent/protocol';
import { dockerClient, requireDocker } from '../../support/docker';
import { eventsOf, finished, pipelineYaml, startAgent, startRun, TempRepo, until } from '../../support/fixtures';

const BUSYBOX = 'conveyor-test/busybox:1';
/** busybox httpd serving one file, in the foreground. */
const HTTPD = (port: number, text: string) => `"mkdir -p /www && echo '${text}' > /www/hello.txt && exec httpd -f -p ${port} -h /www"`;

/**
 * The integration kind against a real dockerd: service containers on a private network, their
 * health, their variables in the commands, and their removal however the stage ends.
 */
describe('integration stage (real dockerd)', function () {
  this.timeout(60_000);
  const docker = dockerClient();
  let repo: TempRepo;
  let agent: Agent;
  let scope: string;

  const leftovers = async () => {
    const filters = { label: [`conveyor.scope=${scope}`] };
    const containers = await docker.listContainers({ all: true, filters });
    const networks = await docker.listNetworks({ filters });
    return [...containers.map((c) => c.Names[0]), ...networks.map((n) => n.Name)];
  };
  const runWith = async (stage: string): Promise<RunDetail> => {
    repo.write({ 'conveyor.yml': pipelineYaml(stage) });
    repo.commit('integration');
    return finished(agent, await startRun(agent, { trigger: 'manual' }));
  };
  const logOf = (run: RunDetail) =>
    eventsOf(agent, run.id)
      .filter((e) => e.type === 'log')
      .map((e) => (e as { text: string }).text)
      .join('');

  before(async () => {
    await requireDocker(docker);
    repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: a\n  run: "true"') });
    agent = await startAgent(repo);
    scope = createHash('sha256').update(agent.conveyorDir).digest('hex').slice(0, 12);
  });

  afterEach(async () => {
    assert.deepEqual(await leftovers(), [], 'the stage removed its containers and network');
  });

  after(async () => {
    const filters = { label: [`conveyor.scope=${scope}`] };
    for (const c of await docker.listContainers({ all: true, filters }).catch(() => [])) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    for (const n of await docker.listNetworks({ filters }).catch(() => [])) await docker.getNetwork(n.Id).remove().catch(() => undefined);
    await agent?.stop();
    repo?.dispose();
  });

  it('starts the services, waits for each health check, and gives the commands their addresses', async () => {
    const run = await runWith(`
- name: it
  kind: integration
  services:
    web: { image: ${BUSYBOX}, command: ${HTTPD(8080, 'hello from web')}, port: 8080, health: { http: /hello.txt } }
    tcp-echo: { image: ${BUSYBOX}, command: ${HTTPD(9000, 'tcp')}, port: 9000, health: { tcp: true } }
    worker:
      image: ${BUSYBOX}
      command: sleep 600
      port: 7000
      # Inside the attempt's network, services reach each other by name.
      health: { command: [sh, -c, "wget -qO- http://web:8080/hello.txt | grep -q 'hello from web'"] }
  run:
    - node -e "fetch(process.env.WEB_URL + '/hello.txt').then((r) => r.text()).then((t) => console.log('got ' + t.trim()))"
    - echo "web $WEB_HOST:$WEB_PORT tcp $TCP_ECHO_HOST:$TCP_ECHO_PORT worker $WORKER_URL"
`);
    assert.equal(run.status, 'succeeded', JSON.stringify(run.stages));
    const log = logOf(run);
    assert.match(log, /^\[services\] starting web \(conveyor-test\/busybox:1\) as conveyor-\w+-\d+-it-1-\w+-web$/m);
    assert.match(log, /^\[services\] web is healthy at 127\.0\.0\.1:\d+ \(WEB_HOST, WEB_PORT, WEB_URL\)$/m);
    assert.match(log, /^got hello from web$/m);
    assert.match(log, /^web 127\.0\.0\.1:\d+ tcp 127\.0\.0\.1:\d+ worker http:\/\/127\.0\.0\.1:\d+$/m);
    assert.deepEqual(
      run.steps.map((s) => [s.index, s.status]),
      [
        [0, 'succeeded'],
        [1, 'succeeded'],
      ],
    );
  });

  it('fails a service that never gets healthy, naming its container and showing its log', async () => {
    const run = await runWith(`
- name: it
  kind: integration
  services:
    web:
      image: ${BUSYBOX}
      command: 'echo "cannot start: no config at /etc/web.conf"; sleep 600'
      port: 8080
      health: { http: / }
      timeout: 1500ms
  run: [echo never, echo skipped]
`);
    assert.equal(run.status, 'failed');
    const it = run.stages[0];
    assert.match(
      it.message!,
      /^service "web" \(container conveyor-\w+-\d+-it-1-\w+-web\) was not healthy within 1\.5s: GET http:\/\/127\.0\.0\.1:\d+\/: \S+.*; its log ends: cannot start: no config at \/etc\/web\.conf$/,
    );
    assert.deepEqual(
      run.steps.map((s) => [s.command, s.status]),
      [
        ['echo never', 'failed'],
        ['echo skipped', 'skipped'],
      ],
    );
    assert.match(logOf(run), /^\[services\] last log lines:\n {2}cannot start: no config at \/etc\/web\.conf$/m);
  });

  it('says when a service container exits before it is healthy', async () => {
    const run = await runWith(`
- name: it
  kind: integration
  services:
    db: { image: ${BUSYBOX}, command: 'echo "unknown flag --fast"; exit 3', port: 5432 }
  run: echo never
`);
    assert.match(run.stages[0].message!, /^service "db" \(container conveyor-\S+-db\) exited with code 3 before it was healthy; its log ends: unknown flag --fast$/);
  });

  it('holds a tcp check to a listening port, not the published one that always accepts', async () => {
    const run = await runWith(`
- name: it
  kind: integration
  services:
    cache: { image: ${BUSYBOX}, command: sleep 600, port: 6379, health: { tcp: true }, timeout: 1s }
  run: echo never
`);
    assert.match(run.stages[0].message!, /^service "cache" \(container \S+-cache\) was not healthy within 1s: connect [\d.]+:6379: ECONNREFUSED$/);
  });

  it('removes the services when the run is cancelled while they start', async () => {
    repo.write({
      'conveyor.yml': pipelineYaml(`
- name: it
  kind: integration
  services:
    web: { image: ${BUSYBOX}, command: sleep 600, port: 8080, health: { http: / }, timeout: 60s }
  run: echo never
`),
    });
    repo.commit('cancel');
    const id = await startRun(agent, { trigger: 'manual' });
    await until(async () => (await leftovers()).some((n) => /-web$/.test(n)), 'the service container');
    agent.engine.cancel(id);
    const run = await finished(agent, id);
    assert.deepEqual([run.status, run.stages[0].status, run.steps[0].status], ['cancelled', 'cancelled', 'cancelled']);
  });

  it('removes the services when the stage times out in its commands', async () => {
    const run = await runWith(`
- name: it
  kind: integration
  timeout: 2s
  services:
    web: { image: ${BUSYBOX}, command: ${HTTPD(8080, 'x')}, port: 8080 }
  run: sleep 30
`);
    assert.equal(run.stages[0].status, 'timed_out');
  });

  it('removes what a stopped agent left of the stage before it starts', async () => {
    const labels = { 'conveyor.scope': scope, 'conveyor.stage': 'it', 'conveyor.run': '999999', 'conveyor.attempt': '1' };
    const name = `conveyor-${scope}-999999-it-1-left`;
    const network = await docker.createNetwork({ Name: name, Labels: labels });
    const container = await docker.createContainer({ name: `${name}-web`, Image: BUSYBOX, Cmd: ['sleep', '600'], Labels: { ...labels, 'conveyor.service': 'web' }, HostConfig: { NetworkMode: name } });
    await container.start();
    assert.equal((await leftovers()).length, 2);
    const run = await runWith(`
- name: it
  kind: integration
  services:
    web: { image: ${BUSYBOX}, command: ${HTTPD(8080, 'x')}, port: 8080 }
  run: "true"
`);
    assert.equal(run.status, 'succeeded', JSON.stringify(run.stages));
    assert.match(logOf(run), new RegExp(`^\\[services\\] removed what a stopped agent left: ${name}-web, ${name}$`, 'm'));
    await network.inspect().then(
      () => assert.fail('the network is still there'),
      (e: { statusCode?: number }) => assert.equal(e.statusCode, 404),
    );
  });
});
