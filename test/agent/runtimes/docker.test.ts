import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import Docker from 'dockerode';
import type { HealthCheck, Release } from '../../../agent/protocol';
import { DockerRuntime, type DockerRuntimeSettings } from '../../../agent/runtimes/docker';
import { LABEL } from '../../../agent/runtimes/docker-common';
import type { DesiredState, RuntimeServices } from '../../../agent/runtimes/runtime';
import type { BuiltImage } from '../../../agent/steps/image-build';
import { dockerCli, dockerClient, freePort, removeByLabel, RequestLoop, requireDocker, TcpSwitch, TEST_LABEL, testRunLabel, uniqueRepository } from '../../support/docker';
import { sleep, until } from '../../support/fixtures';
import { applyContext, buildHttpdVersions, imageArtifact, startTestServices, testRelease, versionAt, type Cleanup } from '../../support/runtimes';

const HEALTHY: HealthCheck = { kind: 'http', path: '/healthz', timeoutMs: 30_000, intervalMs: 100 };
const NEVER_HEALTHY: HealthCheck = { kind: 'http', path: '/nope', timeoutMs: 3000, intervalMs: 100 };

describe('DockerRuntime (real dockerd, images from the real registry)', function () {
  const docker = dockerClient();
  const label = testRunLabel('docker-runtime');
  const settings: DockerRuntimeSettings = { labels: { [TEST_LABEL]: label }, memoryMb: 64, cpus: 0.5, stopTimeoutSec: 2, drainMs: 300 };
  const cleanup: Cleanup = [];
  let v1: BuiltImage;
  let v2: BuiltImage;
  let sw: TcpSwitch;
  let services: RuntimeServices;
  let runtime: DockerRuntime;
  let stateDir: string;

  const release = (number: number, image: BuiltImage, extra: Partial<Release> = {}): Release => testRelease(number, imageArtifact(image), extra);
  const desired = (r: Release, healthCheck = HEALTHY): DesiredState => ({ release: r, healthCheck, publicPort: sw.publicPort, secrets: { API_TOKEN: 's3cret' } });
  const progress: string[] = [];
  const ctx = (signal?: AbortSignal) => applyContext(progress, signal);
  const version = () => versionAt(sw.address);

  before(async function () {
    await requireDocker(docker);
    [v1, v2] = await buildHttpdVersions(docker, uniqueRepository('web'), label, cleanup);
    // Deploys pull by digest: start from an image store without them.
    await dockerCli('rmi', '-f', v1.imageId, v2.imageId);
    ({ sw, services, stateDir } = await startTestServices('conveyor-docker-runtime-', freePort, cleanup));
    runtime = new DockerRuntime(docker, services, settings);
    cleanup.push(() => runtime.dispose());
  });

  after(async () => {
    await removeByLabel(docker, label);
    for (const fn of cleanup.reverse()) await fn();
  });

  it('recreate deploys release 1: pulled by digest, labelled, limited, served on the public port', async () => {
    const r = await runtime.apply(desired(release(1, v1)), 'recreate', ctx());
    assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
    assert.equal(r.live.instances.length, 1);
    const [i] = r.live.instances;
    assert.equal(i.environment, 'web');
    assert.equal(i.release, 1);
    assert.equal(i.state, 'running');
    assert.equal(i.artifactDigest, v1.digest);
    assert.match(i.address!, /^127\.0\.0\.1:\d+$/);
    // The release's variables and PORT; the secret reaches the container but is not reported.
    assert.deepEqual(i.env, { GREETING: 'hello', PORT: '8080' });
    assert.equal(i.labels[LABEL.managed], 'true');
    assert.equal(i.labels[LABEL.release], '1');
    assert.equal(i.labels[LABEL.digest], v1.digest);
    assert.equal(i.labels[TEST_LABEL], label);

    const info = await docker.getContainer(i.id).inspect();
    assert.equal(info.Config.Image, `${v1.repository}@${v1.digest}`);
    assert.ok(info.Config.Env.includes('API_TOKEN=s3cret'));
    assert.equal(info.HostConfig.Init, true);
    assert.equal(info.HostConfig.RestartPolicy?.Name, 'unless-stopped');
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 0.5e9);
    assert.deepEqual(info.HostConfig.PortBindings?.['8080/tcp'], [{ HostIp: '127.0.0.1', HostPort: i.address!.split(':')[1] }]);

    assert.equal(await version(), '1');
    assert.deepEqual(sw.routes, [i.address]);
    assert.equal(await runtime.health('web'), 'Healthy');
    // Another agent (another stateDir) on the same daemon does not see this environment.
    const other = new DockerRuntime(docker, { ...services, stateDir: path.join(stateDir, 'other') }, { labels: settings.labels });
    assert.deepEqual((await other.observe('web')).instances, []);
    assert.equal(await other.health('web'), 'Missing');
  });

  it('blue-green to release 2 under a steady request loop: no request fails', async () => {
    const before = (await runtime.observe('web')).instances;
    const loop = new RequestLoop(sw.address);
    loop.start();
    let r;
    try {
      while (loop.sent < 20) await sleep(20); // traffic is flowing before the switch
      r = await runtime.apply(desired(release(2, v2)), 'blue-green', ctx());
      const sentAtSwitch = loop.sent;
      while (loop.sent < sentAtSwitch + 20) await sleep(20);
    } finally {
      await loop.stop();
    }
    assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
    assert.deepEqual(loop.failures, [], `${loop.failures.length} of ${loop.sent} requests failed`);
    assert.ok(loop.bodies.get('1')! > 0 && loop.bodies.get('2')! > 0, JSON.stringify([...loop.bodies]));
    assert.deepEqual(
      r.live.instances.map((i) => [i.release, i.state]),
      [[2, 'running']],
    );
    assert.equal(sw.routes.at(-1), r.live.instances[0].address);
    assert.notEqual(r.live.instances[0].address, before[0].address);
    await assert.rejects(docker.getContainer(before[0].id).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
    assert.equal(await version(), '2');
  });

  it('blue-green of an unhealthy release: the new one goes, the old one keeps serving', async () => {
    const loop = new RequestLoop(sw.address);
    loop.start();
    let r;
    try {
      r = await runtime.apply(desired(release(3, v1), NEVER_HEALTHY), 'blue-green', ctx());
    } finally {
      await loop.stop();
    }
    assert.ok(!r.ok);
    assert.equal(r.restored, true);
    assert.match(r.reason, /^release 3 \(127\.0\.0\.1:\d+\) is not healthy: not healthy within 3s: GET \/nope answered 404/);
    // The container's last log lines: its start message and httpd's request log.
    assert.match(r.log, /serving \/www on 8080/);
    assert.deepEqual(loop.failures, []);
    assert.deepEqual(
      (await runtime.observe('web')).instances.map((i) => i.release),
      [2],
    );
    assert.equal(await version(), '2');
  });

  it('recreate of an unhealthy release starts the old one again', async () => {
    const [old] = (await runtime.observe('web')).instances;
    const r = await runtime.apply(desired(release(4, v1), NEVER_HEALTHY), 'recreate', ctx());
    assert.ok(!r.ok);
    assert.equal(r.restored, true);
    assert.match(r.reason, /GET \/nope answered 404/);
    const now = (await runtime.observe('web')).instances;
    assert.deepEqual(
      now.map((i) => [i.id, i.release, i.state]),
      [[old.id, 2, 'running']],
    );
    assert.equal(await version(), '2');
    assert.equal(await runtime.health('web'), 'Healthy');
  });

  it('a container that exits: its exit code and last log lines', async () => {
    const crash = release(5, v1, { command: ['sh', '-c', 'echo booting; echo "config: missing DATABASE_URL" >&2; exit 7'] });
    const r = await runtime.apply(desired(crash), 'blue-green', ctx());
    assert.ok(!r.ok);
    assert.equal(r.restored, true);
    assert.match(r.reason, /the container exited with code 7/);
    assert.match(r.log, /booting\n/);
    assert.match(r.log, /config: missing DATABASE_URL/);
    assert.equal(await version(), '2');
  });

  it('cancel during the health wait: the new release goes, the old one serves', async () => {
    const ac = new AbortController();
    const started = runtime.apply(desired(release(6, v1), { ...NEVER_HEALTHY, timeoutMs: 120_000 }), 'blue-green', ctx(ac.signal));
    // Cancel once the new container exists.
    for (;;) {
      const live = await runtime.observe('web');
      if (live.instances.some((i) => i.release === 6 && i.state === 'running')) break;
      await sleep(50);
    }
    assert.equal(await runtime.health('web'), 'Progressing');
    ac.abort();
    const r = await started;
    assert.ok(!r.ok);
    assert.equal(r.reason, 'cancelled');
    assert.equal(r.restored, true);
    assert.deepEqual(
      (await runtime.observe('web')).instances.map((i) => i.release),
      [2],
    );
  });

  it('the port in use: a clear error naming the port, the old release untouched', async () => {
    const taken = net.createServer();
    const port = await freePort();
    await new Promise<void>((r) => taken.listen(port, '127.0.0.1', r));
    try {
      const busy = new DockerRuntime(docker, { ...services, allocatePort: async () => port }, settings);
      const r = await busy.apply(desired(release(7, v1)), 'blue-green', ctx());
      assert.ok(!r.ok);
      assert.equal(r.restored, true);
      assert.match(r.reason, new RegExp(`^port 127\\.0\\.0\\.1:${port} is in use`));
    } finally {
      taken.close();
    }
    assert.deepEqual(
      (await runtime.observe('web')).instances.map((i) => i.release),
      [2],
    );
    assert.equal(await version(), '2');
  });

  it('docker stop: watch fires, observe says exited, health Degraded; remove leaves nothing (Missing)', async () => {
    const [i] = (await runtime.observe('web')).instances;
    let fired = 0;
    const watching = runtime.watch('web', () => fired++);
    try {
      await dockerCli('stop', '-t', '1', i.id);
      await until(() => fired > 0, 'watch to fire', 60_000);
      const live = await runtime.observe('web');
      assert.deepEqual(
        live.instances.map((x) => [x.id, x.state, x.address]),
        [[i.id, 'exited', null]],
      );
      assert.equal(await runtime.health('web'), 'Degraded');
      await runtime.remove('web');
      assert.deepEqual((await runtime.observe('web')).instances, []);
      assert.equal(await runtime.health('web'), 'Missing');
    } finally {
      watching.dispose();
    }
  });

  it('watch reconnects when the daemon goes away and comes back', async () => {
    // A socket that stands for the daemon: closing it is the daemon going away.
    const sock = path.join(stateDir, 'docker.sock');
    const relay = new SocketRelay(sock, '/var/run/docker.sock');
    await relay.open();
    cleanup.push(() => relay.close());
    const viaRelay = new DockerRuntime(new Docker({ socketPath: sock }), services, settings);
    let fired = 0;
    const watching = viaRelay.watch('web', () => fired++);
    try {
      await sleep(200);
      await relay.close(); // the event stream breaks; reconnecting fails for a while
      await sleep(1000);
      await relay.open();
      await until(() => fired > 0, 'watch to fire after reconnecting', 60_000);
      fired = 0;
      // And events flow again: a deploy of the environment is seen.
      const r = await runtime.apply(desired(release(8, v2)), 'recreate', ctx());
      assert.ok(r.ok, r.ok ? '' : r.reason);
      await until(() => fired > 0, 'watch to fire on the new container', 60_000);
    } finally {
      watching.dispose();
      viaRelay.dispose();
      await runtime.remove('web');
    }
  });

  it('Docker not running: clear errors, and nothing crashes', async () => {
    const nowhere = new Docker({ socketPath: path.join(stateDir, 'no-such-docker.sock') });
    const down = new DockerRuntime(nowhere, services, settings);
    const message = /^Cannot connect to the Docker daemon at unix:\/\/\/.*no-such-docker\.sock: start dockerd \(/;
    const r = await down.apply(desired(release(9, v1)), 'recreate', ctx());
    assert.ok(!r.ok);
    assert.match(r.reason, message);
    assert.equal(r.restored, false);
    const clear = (e: Error) => message.test(e.message);
    await assert.rejects(down.observe('web'), clear);
    await assert.rejects(down.health('web'), clear);
    await assert.rejects(down.remove('web'), clear);
    const w = down.watch('web', () => undefined);
    await sleep(300); // it retries in the background without throwing
    w.dispose();
    down.dispose();
  });
});

/** Relays a unix socket to another; close() drops every connection, like a daemon that stops. */
class SocketRelay {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();

  constructor(
    private readonly path: string,
    private readonly target: string,
  ) {}

  async open(): Promise<void> {
    fs.rmSync(this.path, { force: true });
    this.server = net.createServer((c) => {
      const up = net.connect(this.target);
      this.conns.add(c).add(up);
      c.on('close', () => this.conns.delete(c));
      up.on('close', () => this.conns.delete(up));
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
      c.pipe(up).pipe(c);
    });
    await new Promise<void>((r) => this.server!.listen(this.path, r));
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const c of this.conns) c.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
