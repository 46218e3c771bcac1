import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import Docker from 'dockerode';
import { liveDiff } from '../../../agent/gitops/diff';
import type { HealthCheck, Release } from '../../../agent/protocol';
import type { DesiredState, RuntimeServices } from '../../../agent/runtimes/runtime';
import { SWARM_LABEL, SwarmRuntime, type SwarmRuntimeSettings } from '../../../agent/runtimes/swarm';
import type { BuiltImage } from '../../../agent/steps/image-build';
import { dockerCli, dockerClient, removeByLabel, requireDocker, TcpSwitch, TEST_LABEL, testRunLabel, uniqueRepository } from '../../support/docker';
import { sleep, until } from '../../support/fixtures';
import { applyContext, buildHttpdVersions, imageArtifact, startTestServices, testRelease, versionAt, type Cleanup } from '../../support/runtimes';

const HEALTHY: HealthCheck = { kind: 'http', path: '/healthz', timeoutMs: 20_000, intervalMs: 500 };
const NEVER_HEALTHY: HealthCheck = { kind: 'http', path: '/nope', timeoutMs: 2000, intervalMs: 500 };

describe('SwarmRuntime (a real single-node swarm, images from the real registry)', function () {
  const docker = dockerClient();
  const label = testRunLabel('swarm-runtime');
  const settings: SwarmRuntimeSettings = { labels: { [TEST_LABEL]: label }, stopTimeoutSec: 2, monitorMs: 1000, restartDelayMs: 3000, debounceMs: 100 };
  const cleanup: Cleanup = [];
  let v1: BuiltImage;
  let v2: BuiltImage;
  let sw: TcpSwitch;
  let services: RuntimeServices;
  let runtime: SwarmRuntime;
  let stateDir: string;

  const release = (number: number, image: BuiltImage, extra: Partial<Release> = {}): Release => testRelease(number, imageArtifact(image), { replicas: 2, ...extra });
  const desired = (r: Release, healthCheck = HEALTHY): DesiredState => ({ release: r, healthCheck, publicPort: sw.publicPort, secrets: { API_TOKEN: 's3cret' } });
  const progress: string[] = [];
  const ctx = (signal?: AbortSignal) => applyContext(progress, signal);
  const version = () => versionAt(sw.address);
  const serviceOf = async () => {
    const list = await docker.listServices({ filters: { label: [`${TEST_LABEL}=${label}`] } });
    assert.equal(list.length, 1, `one service of the test, not ${list.length}`);
    return list[0] as { ID: string; Spec: { Name: string } };
  };

  before(async function () {
    await requireDocker(docker);
    await requireSwarm(docker);
    [v1, v2] = await buildHttpdVersions(docker, uniqueRepository('swarm-web'), label, cleanup);
    const noPorts = () => Promise.reject(new Error('the swarm runtime lets the daemon pick host ports'));
    ({ sw, services, stateDir } = await startTestServices('conveyor-swarm-runtime-', noPorts, cleanup));
    runtime = new SwarmRuntime(docker, services, settings);
    cleanup.push(() => runtime.dispose());
  });

  after(async () => {
    const left = await docker.listServices({ filters: { label: [`${TEST_LABEL}=${label}`] } }).catch(() => []);
    await Promise.all(left.map((s) => docker.getService(s.ID).remove().catch(() => undefined)));
    await removeByLabel(docker, label);
    for (const fn of cleanup.reverse()) await fn();
  });

  it('deploys release 1 as a service of 2 tasks: labelled, published in host mode, healthy, served on the public port', async () => {
    const r = await runtime.apply(desired(release(1, v1)), 'blue-green', ctx());
    assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
    assert.equal(r.live.instances.length, 2);
    for (const i of r.live.instances) {
      assert.equal(i.environment, 'web');
      assert.equal(i.release, 1);
      assert.equal(i.state, 'running');
      assert.equal(i.artifactDigest, v1.digest);
      assert.match(i.address!, /^127\.0\.0\.1:\d+$/);
      // The release's variables and PORT; the secret reaches the task but is not reported.
      assert.deepEqual(i.env, { GREETING: 'hello', PORT: '8080' });
      assert.equal(i.labels[SWARM_LABEL.release], '1');
      assert.equal(i.labels[TEST_LABEL], label);
    }
    assert.notEqual(r.live.instances[0].address, r.live.instances[1].address);
    assert.ok(r.live.instances.some((i) => i.address === sw.routes.at(-1)));

    const svc = (await docker.getService((await serviceOf()).ID).inspect()) as {
      Spec: { Mode: { Replicated: { Replicas: number } }; UpdateConfig: { Order: string; FailureAction: string }; TaskTemplate: { ContainerSpec: { Image: string; Env: string[]; Healthcheck?: { Test: string[] } } }; EndpointSpec: { Ports: { PublishMode: string; TargetPort: number }[] } };
    };
    assert.equal(svc.Spec.Mode.Replicated.Replicas, 2);
    assert.equal(svc.Spec.UpdateConfig.Order, 'start-first');
    assert.equal(svc.Spec.UpdateConfig.FailureAction, 'rollback');
    assert.equal(svc.Spec.TaskTemplate.ContainerSpec.Image, `${v1.repository}@${v1.digest}`);
    assert.ok(svc.Spec.TaskTemplate.ContainerSpec.Env.includes('API_TOKEN=s3cret'));
    assert.match(svc.Spec.TaskTemplate.ContainerSpec.Healthcheck!.Test.join(' '), /http:\/\/127\.0\.0\.1:8080\/healthz/);
    assert.deepEqual(
      svc.Spec.EndpointSpec.Ports.map((p) => [p.PublishMode, p.TargetPort]),
      [['host', 8080]],
    );

    assert.equal(await version(), '1');
    assert.equal(await runtime.health('web'), 'Healthy');
    // Another agent (another stateDir) on the same swarm does not see this environment.
    const other = new SwarmRuntime(docker, { ...services, stateDir: path.join(stateDir, 'other') }, { labels: settings.labels });
    assert.deepEqual((await other.observe('web')).instances, []);
    assert.equal(await other.health('web'), 'Missing');
  });

  it('rolls the service to release 2, task by task, and serves it', async () => {
    progress.length = 0;
    const r = await runtime.apply(desired(release(2, v2)), 'blue-green', ctx());
    assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
    assert.deepEqual(
      r.live.instances.map((i) => [i.release, i.state, i.artifactDigest]),
      [
        [2, 'running', v2.digest],
        [2, 'running', v2.digest],
      ],
    );
    assert.ok(r.live.instances.some((i) => i.address === sw.routes.at(-1)));
    assert.equal(await version(), '2');
    // Progress follows the tasks and swarm's update.
    assert.ok(progress.some((p) => /^release 2, task \d+ \([0-9a-z]{12}\): running$/.test(p)), progress.join('\n'));
    assert.ok(progress.some((p) => /^swarm: completed: update completed$/.test(p)), progress.join('\n'));
  });

  it('release 3 never passes its health check: swarm rolls back, release 2 serves on', async () => {
    progress.length = 0;
    const r = await runtime.apply(desired(release(3, v1), NEVER_HEALTHY), 'blue-green', ctx());
    assert.ok(!r.ok);
    assert.equal(r.restored, true, `${r.reason}\n${progress.join('\n')}`);
    assert.match(r.reason, /^release 3 did not become healthy and swarm rolled it back: task \d+ \([0-9a-z]{12}\) failed: .*unhealthy container/);
    // The failing task's own log: httpd's start line.
    assert.match(r.log, /serving \/www on 8080/);
    const live = await runtime.observe('web');
    assert.deepEqual(
      live.instances.map((i) => [i.release, i.state]),
      [
        [2, 'running'],
        [2, 'running'],
      ],
    );
    assert.equal(await version(), '2');
    assert.equal(await runtime.health('web'), 'Healthy');
  });

  it('cancel during a rolling update: the service is rolled back, release 2 serves on', async () => {
    const ac = new AbortController();
    const started = runtime.apply(desired(release(4, v1), { ...NEVER_HEALTHY, timeoutMs: 120_000 }), 'blue-green', ctx(ac.signal));
    await until(async () => (await runtime.observe('web')).instances.some((i) => i.release === 4), 'a task of release 4', 60_000);
    assert.equal(await runtime.health('web'), 'Progressing');
    ac.abort();
    const r = await started;
    assert.ok(!r.ok);
    assert.equal(r.reason, 'cancelled');
    assert.equal(r.restored, true);
    assert.deepEqual(
      (await runtime.observe('web')).instances.map((i) => i.release),
      [2, 2],
    );
    assert.equal(await version(), '2');
  });

  it('a first deploy whose task exits: its exit code and log, and no service left behind', async () => {
    const crash = { ...release(1, v1, { command: ['sh', '-c', 'echo booting; echo "config: missing DATABASE_URL" >&2; exit 7'], replicas: 1 }), environment: 'crash' };
    const r = await runtime.apply(desired(crash), 'recreate', ctx());
    assert.ok(!r.ok);
    assert.equal(r.restored, false);
    assert.match(r.reason, /^release 1 did not start: task 1 \([0-9a-z]{12}\) failed: task: non-zero exit \(7\)/);
    assert.match(r.log, /booting\n/);
    assert.match(r.log, /config: missing DATABASE_URL/);
    assert.deepEqual((await runtime.observe('crash')).instances, []);
    assert.equal(await runtime.health('crash'), 'Missing');
  });

  it('drift by hand (docker service update --env-add --image --replicas): watch fires, liveDiff shows it; apply puts it right', async () => {
    let fired = 0;
    const watching = runtime.watch('web', () => fired++);
    try {
      await sleep(300); // the event stream is open
      await dockerCli('service', 'update', '--quiet', '--env-add', 'X=1', '--image', `${v1.repository}:${v1.tag}`, '--replicas', '3', (await serviceOf()).Spec.Name);
      await until(async () => fired > 0, 'watch to fire', 60_000);
      const live = await runtime.observe('web');
      const drift = liveDiff(release(2, v2), live, 'swarm');
      const envDrift = drift.filter((d) => d.path.startsWith('env.X'));
      assert.equal(envDrift.length, 3, JSON.stringify(drift, null, 1));
      assert.ok(envDrift.every((d) => d.kind === 'changed' && d.desired === '(unset)' && d.live === '1'));
      const imageDrift = drift.filter((d) => d.path.startsWith('image'));
      assert.equal(imageDrift.length, 3, JSON.stringify(drift, null, 1));
      assert.ok(imageDrift.every((d) => d.live === v1.digest));
      assert.equal(drift.filter((d) => d.kind === 'extra').length, 1, JSON.stringify(drift, null, 1));

      const healed = await runtime.apply(desired(release(2, v2)), 'recreate', ctx());
      assert.ok(healed.ok, healed.ok ? '' : `${healed.reason}\n${healed.log}`);
      assert.deepEqual(liveDiff(release(2, v2), healed.live, 'swarm'), []);
      const spec = (await docker.getService((await serviceOf()).ID).inspect()) as { Spec: { UpdateConfig: { Order: string } } };
      assert.equal(spec.Spec.UpdateConfig.Order, 'stop-first');
      assert.equal(await version(), '2');
    } finally {
      watching.dispose();
    }
  });

  it('a task container removed by hand (docker rm -f): observe and health show it, swarm replaces it, the public port follows', async () => {
    const routed = sw.routes.at(-1)!;
    const task = (await runtime.observe('web')).instances.find((i) => i.address === routed)!;
    assert.ok(task, `a task at the routed address ${routed}`);
    const info = (await docker.getTask(task.id).inspect()) as { Status: { ContainerStatus: { ContainerID: string } } };
    let fired = 0;
    const watching = runtime.watch('web', () => fired++);
    try {
      await sleep(300);
      await dockerCli('rm', '-f', info.Status.ContainerStatus.ContainerID);
      await until(async () => fired > 0, 'watch to fire', 60_000);
      // The failed task stays visible (exited) until its replacement runs.
      await until(async () => (await runtime.observe('web')).instances.some((i) => i.id === task.id && i.state === 'exited'), 'the failed task in observe', 60_000);
      assert.equal(await runtime.health('web'), 'Degraded');
      const drift = liveDiff(release(2, v2), await runtime.observe('web'), 'swarm');
      assert.ok(drift.some((d) => d.kind === 'stopped' && d.path === `instance ${task.id}`), JSON.stringify(drift, null, 1));

      await until(async () => (await runtime.health('web')) === 'Healthy', 'swarm to replace the task', 60_000);
      const live = await runtime.observe('web');
      assert.equal(live.instances.length, 2);
      assert.ok(!live.instances.some((i) => i.id === task.id));
      // The public port moved to a running task.
      assert.notEqual(sw.routes.at(-1), routed);
      assert.ok(live.instances.some((i) => i.address === sw.routes.at(-1)));
      assert.equal(await version(), '2');
    } finally {
      watching.dispose();
    }
  });

  it('remove() removes the service and its containers: Missing', async () => {
    const { ID } = await serviceOf();
    await runtime.remove('web');
    await assert.rejects(docker.getService(ID).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
    assert.deepEqual(await docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.id=${ID}`] } }), []);
    assert.deepEqual((await runtime.observe('web')).instances, []);
    assert.equal(await runtime.health('web'), 'Missing');
  });

  it('a daemon that is no swarm manager, or no daemon: clear errors, nothing crashes', async () => {
    const nowhere = new SwarmRuntime(new Docker({ socketPath: path.join(stateDir, 'no-such-docker.sock') }), services, settings);
    const r = await nowhere.apply(desired(release(9, v1)), 'recreate', ctx());
    assert.ok(!r.ok);
    assert.match(r.reason, /^Cannot connect to the Docker daemon at unix:\/\/\/.*no-such-docker\.sock: start dockerd/);
    await assert.rejects(nowhere.observe('web'), /Cannot connect to the Docker daemon/);
    const files = await nowhere.apply(desired({ ...release(9, v1), artifact: { kind: 'files', digest: `sha256:${'0'.repeat(64)}`, name: 'app.tgz' } }), 'recreate', ctx());
    assert.ok(!files.ok);
    assert.match(files.reason, /^the swarm runtime deploys images; web@9 is a files artifact \(app\.tgz\)/);
    nowhere.dispose();
  });
});

/** Throws, saying how to provision, when the daemon is no swarm manager. */
async function requireSwarm(docker: Docker): Promise<void> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
  if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
    throw new Error('dockerd is not a swarm manager: run `bash test/provision.sh` (test/setup/45-swarm.sh) first');
  }
}
