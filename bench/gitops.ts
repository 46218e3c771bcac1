import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { waitHealthy } from '../agent/runtimes/health';
import { buildImage, type BuiltImage } from '../agent/steps/image-build';
import { copyFixture, dockerCli, dockerClient, freePort, removeByLabel, requireDocker, TEST_LABEL, testRunLabel, uniqueRepository } from '../test/support/docker';
import { startAgent, TempRepo } from '../test/support/fixtures';
import { median, waitEvent, type BenchResult } from './util';

const ROUNDS = 5;
const FLEET_ENVS = 20;
const FLEET_REPLICAS = 10;
const PASSES = 5;
const HEALTH = 'health: { http: /version, timeout: 30s, interval: 100ms }';

const CONFIG = (label: string) => `
pipeline:
  stages:
    - name: noop
      run: "true"
environments:
  drift:
    runtime: docker
    promotion: auto
    resources: { memory: 32m }
    ${HEALTH}
  heal:
    runtime: docker
    promotion: auto
    reconcile: { selfHeal: true }
    ${HEALTH}
${Array.from({ length: FLEET_ENVS }, (_, i) => `  fleet${i}:\n    runtime: docker\n    promotion: auto\n    replicas: ${FLEET_REPLICAS}\n    ${HEALTH}`).join('\n')}
gitops: { interval: 10m }
# ${label}
`;

/** `docker events` for one container: resolves when it prints the event (the daemon's own latency, raw). */
function rawEvent(id: string, event: string): { ready: Promise<void>; seen: Promise<number>; stop: () => void } {
  const child = spawn('docker', ['events', '--filter', `container=${id}`, '--filter', `event=${event}`, '--format', '{{.Action}}']);
  let resolveSeen!: (t: number) => void;
  const seen = new Promise<number>((r) => (resolveSeen = r));
  child.stdout.on('data', () => resolveSeen(performance.now()));
  // `docker events` prints nothing until an event; give it time to subscribe.
  const ready = new Promise<void>((r) => setTimeout(r, 500));
  return { ready, seen, stop: () => child.kill() };
}

async function containersOf(env: string): Promise<string[]> {
  const docker = dockerClient();
  const list = await docker.listContainers({ all: true, filters: { label: [`conveyor.environment=${env}`, 'conveyor.managed=true'] } });
  return list.map((c) => c.Id);
}

/**
 * GitOps on a real Docker daemon:
 *  1. Drift detection latency: `docker rm -f` and `docker stop` of a managed container until the
 *     reconciler's OutOfSync event, against the daemon's own `docker events` latency for the same
 *     action (the floor any detector has). Argo CD's default poll is 3 minutes.
 *  2. Self-heal: `docker rm -f` until the environment is Synced and Healthy again, against a raw
 *     `docker run -d` of the same image plus the same health wait.
 *  3. The CPU time of one reconcile pass over 200 managed containers (20 environments of 10
 *     replicas), against the CPU time of only reading them (list + inspect, what any pass needs).
 */
export async function benchGitops(): Promise<BenchResult> {
  const docker = dockerClient();
  await requireDocker(docker);
  const label = testRunLabel('bench-gitops');
  const repository = uniqueRepository('bench-gitops');
  const dir = copyFixture('httpd');
  const built = await buildImage({ docker, contextDir: dir, repository, tag: 'v1', buildArgs: { VERSION: '1' }, labels: { [TEST_LABEL]: label } });
  fs.rmSync(dir, { recursive: true, force: true });
  if (!built.ok) throw new Error(`${built.error.reason}\n${built.error.log}`);
  const image: BuiltImage = built.value;
  const repo = new TempRepo({ 'conveyor.yml': CONFIG(label) });
  const agent = await startAgent(repo, { pollMs: 1000 });
  const lines: string[] = [];
  const figures: Record<string, number> = {};
  const deploy = async (env: string) => {
    const r = agent.deployer.deploy({ environment: env, artifact: { kind: 'image', repository, digest: image.digest }, runId: null, stage: null, commit: null, requestedBy: 'bench' }, 'manual');
    if (!r.ok) throw new Error(r.error.error);
    const d = await r.value.done;
    if (d.status !== 'succeeded') throw new Error(`deploy of ${env} ${d.status}: ${d.reason}`);
  };
  const status = (env: string) => agent.reconciler!.status(env);
  const settle = async (env: string) => {
    for (let i = 0; i < 600; i++) {
      const s = status(env);
      if (s?.sync === 'Synced' && s.health === 'Healthy' && !agent.deployer.busy(env)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${env} did not settle`);
  };
  try {
    await deploy('drift');
    await deploy('heal');
    await settle('drift');
    await settle('heal');

    // 1. Drift detection latency.
    for (const action of ['rm', 'stop'] as const) {
      const ours: number[] = [];
      const raw: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const [id] = await containersOf('drift');
        const since = agent.store.lastSeq;
        const watch = rawEvent(id, action === 'rm' ? 'destroy' : 'die');
        await watch.ready;
        const t0 = performance.now();
        const cmd = action === 'rm' ? dockerCli('rm', '-f', id) : dockerCli('stop', '-t', '0', id);
        const seen = waitEvent(agent, since, (e) => e.type === 'sync.changed' && e.status.environment === 'drift' && e.status.sync === 'OutOfSync');
        await cmd;
        ours.push((await seen) - t0);
        raw.push((await watch.seen) - t0);
        watch.stop();
        const fixed = await agent.reconciler!.sync('drift', false, 'bench');
        if (!fixed.ok) throw new Error(fixed.error.error);
        if (fixed.value.deployment) await waitEvent(agent, since, (e) => e.type === 'deployment.changed' && e.deployment.id === fixed.value.deployment!.id && e.deployment.status === 'succeeded');
        await settle('drift');
      }
      const m = median(ours);
      const r = median(raw);
      figures[`driftDetect_${action}_ms`] = Math.round(m);
      figures[`dockerEvents_${action}_ms`] = Math.round(r);
      lines.push(`drift detection, docker ${action === 'rm' ? 'rm -f' : 'stop'}: ${m.toFixed(0)} ms to OutOfSync (median of ${ROUNDS}; target ≤ 2000 ms) · the daemon's own event: ${r.toFixed(0)} ms · ratio ${(m / r).toFixed(1)}x · Argo CD's default poll: 180000 ms`);
    }

    // 2. Self-heal: removed by hand until Synced and Healthy again.
    const heal: number[] = [];
    const rawRun: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const [id] = await containersOf('heal');
      const since = agent.store.lastSeq;
      const t0 = performance.now();
      await dockerCli('rm', '-f', id);
      heal.push((await waitEvent(agent, since, (e) => e.type === 'drift.detected' && e.environment === 'heal' && e.action === 'healed')) - t0);
      await settle('heal');
      // The raw command: docker run of the same image by digest, then the same health wait.
      const port = await freePort();
      const name = `conveyor-bench-raw-${process.pid}-${i}`;
      const t1 = performance.now();
      await dockerCli('run', '-d', '--name', name, '--label', `${TEST_LABEL}=${label}`, '-p', `127.0.0.1:${port}:8080`, `${repository}@${image.digest}`);
      const h = await waitHealthy(`127.0.0.1:${port}`, { kind: 'http', path: '/version', timeoutMs: 30_000, intervalMs: 100 });
      if (!h.ok) throw new Error(`raw container not healthy: ${h.reason}`);
      rawRun.push(performance.now() - t1);
      await dockerCli('rm', '-f', name);
    }
    figures.selfHeal_ms = Math.round(median(heal));
    figures.rawRun_ms = Math.round(median(rawRun));
    lines.push(`self-heal, docker rm -f until Synced and Healthy: ${median(heal).toFixed(0)} ms (median of ${ROUNDS}; target ≤ 10000 ms) · raw docker run + the same health wait: ${median(rawRun).toFixed(0)} ms · ratio ${(median(heal) / median(rawRun)).toFixed(1)}x`);

    // 3. A reconcile pass over 200 managed containers.
    const fleet = Array.from({ length: FLEET_ENVS }, (_, i) => `fleet${i}`);
    const t0 = performance.now();
    for (let i = 0; i < fleet.length; i += 4) await Promise.all(fleet.slice(i, i + 4).map(deploy));
    const deployed = (await Promise.all([...fleet, 'drift', 'heal'].map(containersOf))).flat().length;
    lines.push(`fleet: ${FLEET_ENVS} environments × ${FLEET_REPLICAS} replicas deployed in ${((performance.now() - t0) / 1000).toFixed(0)} s; ${deployed} managed containers in all`);
    for (const env of fleet) await settle(env);
    const passCpu: number[] = [];
    const passWall: number[] = [];
    const readCpu: number[] = [];
    for (let i = 0; i < PASSES; i++) {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      await agent.reconciler!.checkAll();
      const c = process.cpuUsage(c0);
      passWall.push(performance.now() - w0);
      passCpu.push((c.user + c.system) / 1000);
      const r0 = process.cpuUsage();
      await Promise.all(
        [...fleet, 'drift', 'heal'].map(async (env) => {
          const list = await docker.listContainers({ all: true, filters: { label: ['conveyor.managed=true', `conveyor.environment=${env}`] } });
          await Promise.all(list.map((x) => docker.getContainer(x.Id).inspect()));
        }),
      );
      const r = process.cpuUsage(r0);
      readCpu.push((r.user + r.system) / 1000);
    }
    const synced = [...fleet].filter((e) => status(e)?.sync === 'Synced').length;
    figures.reconcileCpu_ms = Math.round(median(passCpu));
    figures.reconcileWall_ms = Math.round(median(passWall));
    figures.readCpu_ms = Math.round(median(readCpu));
    figures.containers = deployed;
    lines.push(`reconcile pass over ${deployed} containers: ${median(passCpu).toFixed(0)} ms CPU (median of ${PASSES}; target < 1000 ms), ${median(passWall).toFixed(0)} ms wall · reading them only (list + inspect): ${median(readCpu).toFixed(0)} ms CPU · ratio ${(median(passCpu) / median(readCpu)).toFixed(1)}x · ${synced}/${fleet.length} fleet environments Synced`);
    return { name: 'gitops', lines, figures };
  } finally {
    const runtime = agent.runtimes.get('docker');
    if (runtime.ok) for (const env of ['drift', 'heal', ...Array.from({ length: FLEET_ENVS }, (_, i) => `fleet${i}`)]) await runtime.value.remove(env).catch(() => undefined);
    await agent.stop();
    repo.dispose();
    await removeByLabel(docker, label);
  }
}
