import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import type Docker from 'dockerode';
import type { Agent } from '../agent/agent';
import type { AgentEvent, StageInfo } from '../agent/protocol';
import { connectKubernetes, renderManifests } from '../agent/runtimes/kubernetes';
import { buildImage, type BuiltImage } from '../agent/steps/image-build';
import { copyFixture, dockerCli, dockerClient, httpGet, removeByLabel, requireDocker, TEST_LABEL, testRunLabel, uniqueRepository } from '../test/support/docker';
import { eventsOf, finished, startAgent, startRun, TempRepo, until } from '../test/support/fixtures';
import { ReadyLoop, startCluster, type Cluster } from '../test/support/kubernetes';
import { imageRelease, median, waitEvent, type BenchResult } from './util';

const ROUNDS = 5;
const EXECUTORS = ['local', 'docker', 'swarm', 'kubernetes'] as const;
const STEP_IMAGE = 'conveyor-test/busybox:1';
const FLEET = 50;
const SIZES = [10, 20, 40, 80];
const PASSES = 5;
const DRIFT_ROUNDS = 3;
/** How long the agent's CPU is measured between passes. */
const IDLE_MS = 2000;
/**
 * Swarm runs the health check inside each task's container (an exec per interval): 80 services
 * checked every 5 s is 16 execs a second, which this 2-core machine carries beside the agent.
 * Each public port is given, below the ephemeral range, apart from the ports the daemon publishes
 * tasks on, so that the agent's and the daemon's ports never mix in the figures.
 */
const SWARM_ENV = (port: number) => `    runtime: swarm
    port: ${port}
    resources: { memory: 16m }
    health: { http: /version, timeout: 120s, interval: 5s }`;
/** Where the swarm environments' public ports are looked for: below Linux's ephemeral range (32768-60999). */
const PORT_BASE = 20_000;
const KUBE_ENV = (kubeconfig: string, namespace: string) => `    runtime: kubernetes
    kubernetes: { kubeconfig: "${kubeconfig}", namespace: ${namespace} }
    health: { http: /version, timeout: 120s, interval: 1s }`;

type Kind = 'swarm' | 'kubernetes';

/**
 * Beyond one machine: a real single-node swarm, and a real kube-apiserver and controller-manager
 * whose pods a test kubelet marks Ready or Succeeded (it looks every 100 ms). Each figure is
 * against the raw command or the bare API in the same run:
 *
 *  1. The overhead of a trivial stage (`true`) on each executor (local, docker, swarm,
 *     kubernetes), stage start to stage end through a real agent, against `docker run --rm` of
 *     the same image.
 *  2. 50 environments of one service each, on swarm and on kubernetes: the time to deploy all of
 *     them at once (against creating the same services or objects directly), the time from a
 *     change by hand to OutOfSync (against the daemon's or API server's own event for it), and
 *     the CPU and wall time of one reconcile pass over all of them (against only reading them).
 *  3. The CPU of a reconcile pass as the environments double: 10, 20, 40, 80 on each runtime,
 *     and the agent's own CPU between passes (its watches of each environment at work).
 */
export async function benchCluster(): Promise<BenchResult> {
  const docker = dockerClient();
  await requireDocker(docker);
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
  if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
    throw new Error('dockerd is not a swarm manager: run `bash test/provision.sh` (test/setup/45-swarm.sh) first');
  }
  const label = testRunLabel('bench-cluster');
  const lines: string[] = [];
  const figures: Record<string, number> = {};
  const cluster = await startCluster();
  try {
    await benchExecutors(cluster, lines, figures);
    const repository = uniqueRepository('bench-cluster');
    const dir = copyFixture('httpd');
    const built = await buildImage({ docker, contextDir: dir, repository, tag: 'v1', buildArgs: { VERSION: '1' }, labels: { [TEST_LABEL]: label } });
    fs.rmSync(dir, { recursive: true, force: true });
    if (!built.ok) throw new Error(`${built.error.reason}\n${built.error.log}`);
    // A fresh agent for each step, so that one step's environments do not weigh on the next.
    for (const kind of ['swarm', 'kubernetes'] as const) {
      for (const step of [benchFleet, benchGrowth]) {
        const fleet = await Fleet.start(kind, docker, cluster, built.value, label);
        try {
          await step(fleet, lines, figures);
        } finally {
          await fleet.dispose();
        }
      }
    }
  } finally {
    await cluster.stop();
    const raw = await docker.listServices({ filters: { label: [`${TEST_LABEL}=${label}`] } }).catch(() => []);
    await Promise.all(raw.map((s) => docker.getService(s.ID).remove().catch(() => undefined)));
    await removeByLabel(docker, label);
  }
  return { name: 'cluster', lines, figures };
}

// -- 1. executors --------------------------------------------------------------------------------

async function benchExecutors(cluster: Cluster, lines: string[], figures: Record<string, number>): Promise<void> {
  const ns = cluster.uniqueNamespace('exec');
  const executor: Record<(typeof EXECUTORS)[number], string> = {
    local: '',
    docker: `executor: { kind: docker, image: ${STEP_IMAGE} }`,
    swarm: `executor: { kind: swarm, image: ${STEP_IMAGE} }`,
    kubernetes: `executor: { kind: kubernetes, image: ${STEP_IMAGE}, kubeconfig: "${cluster.kubeconfigPath}", namespace: ${ns} }`,
  };
  const stages = EXECUTORS.map((e) => `    - name: ${e}\n      run: "true"\n      when: [manual]\n${executor[e] ? `      ${executor[e]}\n` : ''}`).join('');
  const repo = new TempRepo({ 'conveyor.yml': `pipeline:\n  stages:\n${stages}` });
  const agent = await startAgent(repo);
  try {
    /** Start to end of the stage, from its stage.changed events. */
    const stageMs = async (name: (typeof EXECUTORS)[number]): Promise<number> => {
      const id = await startRun(agent, { trigger: 'manual', stages: [name] });
      const kubelet = name === 'kubernetes' ? cluster.fakeKubelet.markSucceeded(ns, `conveyor.run=${id}`) : undefined;
      const run = await finished(agent, id);
      await kubelet;
      const ended = eventsOf(agent, id)
        .flatMap((e): StageInfo[] => (e.type === 'stage.changed' && e.stage.name === name ? [e.stage] : []))
        .at(-1);
      if (run.status !== 'succeeded' || !ended?.startedAt || !ended.finishedAt) throw new Error(`the ${name} stage did not succeed: ${ended?.message ?? run.status}`);
      return Date.parse(ended.finishedAt) - Date.parse(ended.startedAt);
    };
    const dockerRun = async (): Promise<number> => {
      const t0 = performance.now();
      await dockerCli('run', '--rm', STEP_IMAGE, 'true');
      return performance.now() - t0;
    };
    // One of each to warm up, then rounds in turn.
    for (const e of EXECUTORS) await stageMs(e);
    await dockerRun();
    const times: Record<string, number[]> = { raw: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const e of EXECUTORS) (times[e] ??= []).push(await stageMs(e));
      times.raw.push(await dockerRun());
    }
    const raw = median(times.raw);
    figures.dockerRun_ms = Math.round(raw);
    lines.push(`a trivial stage (\`true\`) through the agent, stage start to stage end (stage.changed), median of ${ROUNDS}, against \`docker run --rm ${STEP_IMAGE} true\`: ${raw.toFixed(0)} ms`);
    for (const e of EXECUTORS) {
      const m = median(times[e]);
      figures[`stage_${e}_ms`] = Math.round(m);
      const note = e === 'kubernetes' ? ' (the test kubelet finishes the pod; it looks every 100 ms)' : '';
      lines.push(`  ${e.padEnd(11)} ${`${m.toFixed(0)} ms`.padStart(8)}   ${(m / raw).toFixed(2)}x docker run   (${times[e].map((t) => t.toFixed(0)).join(', ')})${note}`);
    }
  } finally {
    await agent.stop();
    repo.dispose();
  }
}

// -- 2 and 3. environments -----------------------------------------------------------------------

/** One agent whose conveyor.yml declares as many environments as a step of the benchmark needs. */
class Fleet {
  private kubelets: ReadyLoop[] = [];
  readonly namespace: string;
  readonly rawNamespace: string;

  private constructor(
    readonly kind: Kind,
    readonly docker: Docker,
    readonly cluster: Cluster,
    readonly image: BuiltImage,
    readonly label: string,
    readonly repo: TempRepo,
    readonly agent: Agent,
    private readonly ports: number[],
  ) {
    this.namespace = cluster.uniqueNamespace('fleet');
    this.rawNamespace = cluster.uniqueNamespace('raw');
    this.startKubelets();
  }

  static async start(kind: Kind, docker: Docker, cluster: Cluster, image: BuiltImage, label: string): Promise<Fleet> {
    const ports = kind === 'swarm' ? await freePortsFrom(PORT_BASE + (process.pid % 5000), Math.max(...SIZES, FLEET)) : [];
    const repo = new TempRepo({ 'conveyor.yml': 'pipeline:\n  stages:\n    - name: noop\n      run: "true"\n' });
    return new Fleet(kind, docker, cluster, image, label, repo, await startAgent(repo, { pollMs: 1000 }), ports);
  }

  static names(kind: Kind, n: number): string[] {
    return Array.from({ length: n }, (_, i) => `${kind === 'swarm' ? 's' : 'k'}${i}`);
  }

  /** Declares environments 0..n-1 (and no other), and waits for the agent to read them. */
  async declare(n: number): Promise<string[]> {
    const { kind } = this;
    const names = Fleet.names(kind, n);
    const settings = (i: number) => (kind === 'swarm' ? SWARM_ENV(this.ports[i]) : KUBE_ENV(this.cluster.kubeconfigPath, this.namespace));
    const envs = names.map((name, i) => `  ${name}:\n${settings(i)}`).join('\n');
    fs.writeFileSync(this.repo.path('conveyor.yml'), `pipeline:\n  stages:\n    - name: noop\n      run: "true"\nenvironments:\n${envs}\ngitops: { interval: 10m }\n`);
    const want = names.join(',');
    await until(() => this.agent.deployer.environments().map((e) => e.name).join(',') === want, `the agent to read ${n} ${kind} environments`);
    return names;
  }

  async deploy(env: string): Promise<void> {
    const r = this.agent.deployer.deploy({ environment: env, artifact: { kind: 'image', repository: this.image.repository, digest: this.image.digest }, runId: null, stage: null, commit: null, requestedBy: 'bench' }, 'manual');
    if (!r.ok) throw new Error(r.error.error);
    const d = await r.value.done;
    if (d.status !== 'succeeded') throw new Error(`deploy of ${env} ${d.status}: ${d.reason}`);
  }

  /** Until the environment is Synced and Healthy, with no deployment running. */
  async settle(env: string, timeoutMs = 120_000): Promise<void> {
    const s = () => this.agent.reconciler!.status(env);
    await until(() => s()?.sync === 'Synced' && s()?.health === 'Healthy' && !this.agent.deployer.busy(env), `${env} Synced and Healthy`, timeoutMs).catch((e: Error) => {
      throw new Error(`${e.message} (it is ${s()?.sync} and ${s()?.health}: ${s()?.diff.map((d) => d.message).join('; ')})`);
    });
  }

  startKubelets(): void {
    if (this.kind === 'kubernetes') this.kubelets = [new ReadyLoop(this.cluster, this.namespace, 200), new ReadyLoop(this.cluster, this.rawNamespace, 200)];
  }

  async stopKubelets(): Promise<void> {
    await Promise.all(this.kubelets.map((k) => k.stop()));
    this.kubelets = [];
  }

  /** The swarm service of an environment of this agent (its scope label tells it from others'). */
  async serviceName(env: string): Promise<string> {
    const runtime = this.agent.runtimes.get('swarm');
    if (!runtime.ok) throw new Error(runtime.error);
    const [instance] = (await runtime.value.observe(env)).instances;
    const list = await this.docker.listServices({ filters: { label: [`conveyor.environment=${env}`, `conveyor.scope=${instance?.labels['conveyor.scope']}`] } });
    if (list.length !== 1) throw new Error(`${list.length} services of ${env}`);
    return (list[0] as { Spec?: { Name?: string } }).Spec!.Name!;
  }

  /** Removes the environments (the swarm services, or the namespace), then stops the agent. */
  async dispose(): Promise<void> {
    await this.stopKubelets();
    if (this.kind === 'swarm') {
      const runtime = this.agent.runtimes.get('swarm');
      if (runtime.ok) await Promise.all(Fleet.names('swarm', Math.max(...SIZES, FLEET)).map((env) => runtime.value.remove(env).catch(() => undefined)));
    } else {
      await this.cluster.request('DELETE', `/api/v1/namespaces/${this.namespace}`);
    }
    await this.agent.stop();
    this.repo.dispose();
  }
}

/** FLEET environments at once: the time to deploy them, to see a change by hand, and to compare them all. */
async function benchFleet(fleet: Fleet, lines: string[], figures: Record<string, number>): Promise<void> {
  const { agent, kind } = fleet;
  lines.push(`${kind}: ${FLEET} environments of one service each${kind === 'kubernetes' ? ' (one Deployment, Service and ConfigMap each; the test kubelet marks pods Ready)' : ' (one replica, 16 MB, busybox httpd)'}`);

  // Deploy all at once, against creating the same services or objects directly.
  const rawMs = kind === 'swarm' ? await rawSwarm(fleet) : await rawKubernetes(fleet);
  const names = await fleet.declare(FLEET);
  const t0 = performance.now();
  await Promise.all(names.map((env) => fleet.deploy(env)));
  const deployMs = performance.now() - t0;
  for (const env of names) await fleet.settle(env);
  figures[`${kind}_deploy${FLEET}_ms`] = Math.round(deployMs);
  figures[`${kind}_raw${FLEET}_ms`] = Math.round(rawMs);
  lines.push(
    `  deploy of all ${FLEET} at once: ${(deployMs / 1000).toFixed(1)} s · ${kind === 'swarm' ? '`docker service create` of the same services, until each task runs and answers' : 'the same objects created through the API, until each Deployment is available'}: ${(rawMs / 1000).toFixed(1)} s · ratio ${(deployMs / rawMs).toFixed(2)}x`,
  );

  // A change by hand until OutOfSync, against the runtime's own event for it.
  const ours: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < DRIFT_ROUNDS; i++) {
    const env = names[i];
    const since = agent.store.lastSeq;
    const outOfSync = (e: AgentEvent) => e.type === 'sync.changed' && e.status.environment === env && e.status.sync === 'OutOfSync';
    if (kind === 'swarm') {
      const service = await fleet.serviceName(env);
      const watch = await dockerEvent(service);
      const t = performance.now();
      const seen = waitEvent(agent, since, outOfSync);
      await dockerCli('service', 'update', '--detach', '--env-add', 'X=1', service);
      ours.push((await seen) - t);
      raw.push((await watch.seen) - t);
      watch.stop();
      await dockerCli('service', 'update', '--detach', '--env-rm', 'X', service);
    } else {
      const watch = await deploymentEvent(fleet.cluster, fleet.namespace, env);
      const t = performance.now();
      const seen = waitEvent(agent, since, outOfSync);
      await setEnv(fleet.cluster, fleet.namespace, env, [{ name: 'X', value: '1' }]);
      ours.push((await seen) - t);
      raw.push((await watch.seen) - t);
      watch.stop();
      await setEnv(fleet.cluster, fleet.namespace, env, []);
    }
    await fleet.settle(env);
  }
  figures[`${kind}_driftDetect_ms`] = Math.round(median(ours));
  figures[`${kind}_driftEvent_ms`] = Math.round(median(raw));
  const change = kind === 'swarm' ? '`docker service update --env-add X=1`' : 'the Deployment\'s env patched through the API';
  const peer = kind === 'swarm' ? 'the daemon\'s own event (`docker events`)' : 'the API server\'s own watch event';
  lines.push(`  drift detection, ${change} until OutOfSync: ${median(ours).toFixed(0)} ms (median of ${DRIFT_ROUNDS}: ${ours.map((x) => x.toFixed(0)).join(', ')}) · ${peer}: ${median(raw).toFixed(0)} ms`);

  // One reconcile pass over all of them, against only reading them.
  const pass = await passes(fleet, names);
  figures[`${kind}_pass${FLEET}_cpu_ms`] = Math.round(pass.cpu);
  figures[`${kind}_pass${FLEET}_wall_ms`] = Math.round(pass.wall);
  figures[`${kind}_read${FLEET}_cpu_ms`] = Math.round(pass.readCpu);
  lines.push(
    `  one reconcile pass over all ${FLEET} (checkAll): ${pass.cpu.toFixed(0)} ms CPU, ${pass.wall.toFixed(0)} ms wall (median of ${PASSES}) · reading them only (${kind === 'swarm' ? 'list services and tasks' : 'list pods and ConfigMaps'}): ${pass.readCpu.toFixed(0)} ms CPU, ${pass.readWall.toFixed(0)} ms wall · ratio ${(pass.cpu / pass.readCpu).toFixed(1)}x`,
  );
}

/** The cost of a reconcile pass as the environments double, each size deployed and declared alone. */
async function benchGrowth(fleet: Fleet, lines: string[], figures: Record<string, number>): Promise<void> {
  const { agent, kind } = fleet;
  lines.push(`  reconcile CPU as the environments double (median of ${PASSES} passes):`);
  for (const n of SIZES) {
    const set = await fleet.declare(n);
    const fresh = set.filter((env) => !agent.deployer.liveRelease(env));
    if (fresh.length) {
      await Promise.all(fresh.map((env) => fleet.deploy(env)));
      for (const env of fresh) await fleet.settle(env);
    }
    const p = await passes(fleet, set);
    figures[`${kind}_pass${n}_cpu_ms`] = Math.round(p.cpu);
    figures[`${kind}_idle${n}_cpu_ms_per_s`] = Math.round(p.idle);
    lines.push(
      `    ${String(n).padStart(3)} environments: ${p.cpu.toFixed(0).padStart(5)} ms CPU per pass, ${(p.cpu / n).toFixed(2)} ms per environment, ${p.wall.toFixed(0)} ms wall · reading only: ${p.readCpu.toFixed(0)} ms CPU · the agent between passes: ${p.idle.toFixed(0)} ms CPU per second`,
    );
  }
}

/**
 * The medians of PASSES reconcile passes (after one to open the watches), and of reading the same
 * environments only; and the agent's CPU per second between passes (its watches at work).
 */
async function passes(fleet: Fleet, names: string[]): Promise<{ cpu: number; wall: number; readCpu: number; readWall: number; idle: number }> {
  const { agent, docker, kind } = fleet;
  const read = kind === 'swarm' ? swarmReader(docker, names) : await kubeReader(fleet, names);
  await fleet.stopKubelets();
  try {
    await agent.reconciler!.checkAll();
    const cpu: number[] = [];
    const wall: number[] = [];
    const readCpu: number[] = [];
    const readWall: number[] = [];
    for (let i = 0; i < PASSES; i++) {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      await agent.reconciler!.checkAll();
      wall.push(performance.now() - w0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
      const r0 = process.cpuUsage();
      const rw0 = performance.now();
      await read();
      readWall.push(performance.now() - rw0);
      const r = process.cpuUsage(r0);
      readCpu.push((r.user + r.system) / 1000);
    }
    const unsynced = names.filter((e) => agent.reconciler!.status(e)?.sync !== 'Synced');
    if (unsynced.length) throw new Error(`not Synced after the passes: ${unsynced.join(', ')}`);
    const i0 = process.cpuUsage();
    const iw0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const idle = process.cpuUsage(i0);
    const idleMsPerS = ((idle.user + idle.system) / 1000 / (performance.now() - iw0)) * 1000;
    return { cpu: median(cpu), wall: median(wall), readCpu: median(readCpu), readWall: median(readWall), idle: idleMsPerS };
  } finally {
    fleet.startKubelets();
  }
}

/** What any pass must read of swarm environments: each one's service and its tasks. */
function swarmReader(docker: Docker, names: string[]): () => Promise<void> {
  return async () => {
    await Promise.all(
      names.map(async (env) => {
        const [service] = await docker.listServices({ filters: { label: ['conveyor.managed=true', `conveyor.environment=${env}`] } });
        if (service) await docker.listTasks({ filters: { service: [service.ID] } });
      }),
    );
  };
}

/** What any pass must read of kubernetes environments: each one's pods and ConfigMaps, through one client. */
async function kubeReader(fleet: Fleet, names: string[]): Promise<() => Promise<void>> {
  const c = await connectKubernetes({ kubeconfig: fleet.cluster.kubeconfigPath, namespace: fleet.namespace });
  return async () => {
    await Promise.all(
      names.map(async (env) => {
        const labelSelector = `conveyor.managed=true,conveyor.environment=${env}`;
        await Promise.all([c.core.listNamespacedPod({ namespace: fleet.namespace, labelSelector }), c.core.listNamespacedConfigMap({ namespace: fleet.namespace, labelSelector })]);
      }),
    );
  };
}

// -- the peers -----------------------------------------------------------------------------------

/**
 * FLEET services made with `docker service create`, as the swarm runtime makes them (image by
 * digest, the same health check in the container, host-mode port, 16 MB), all at once; done when
 * each has a running task that answers GET /version. Then removed.
 */
async function rawSwarm(fleet: Fleet): Promise<number> {
  const { docker, image, label } = fleet;
  const names = Array.from({ length: FLEET }, (_, i) => `conveyor-bench-raw-${process.pid}-${i}`);
  const options = [
    ...['--detach', '--quiet', '--init', '--limit-memory', '16m', '--env', 'PORT=8080', '--publish', 'mode=host,target=8080'],
    ...['--health-cmd', 'wget -q -O /dev/null http://127.0.0.1:8080/version', '--health-interval', '5s', '--health-timeout', '5s', '--health-retries', '3', '--health-start-period', '120s'],
    ...['--label', `${TEST_LABEL}=${label}`, '--container-label', `${TEST_LABEL}=${label}`],
  ];
  const t0 = performance.now();
  try {
    await Promise.all(
      names.map(async (name) => {
        await dockerCli('service', 'create', '--name', name, ...options, `${image.repository}@${image.digest}`);
        const deadline = Date.now() + 180_000;
        for (;;) {
          const tasks = (await docker.listTasks({ filters: { service: [name], 'desired-state': ['running'] } })) as { Status: { State: string; PortStatus?: { Ports?: { PublishedPort?: number }[] } } }[];
          const port = tasks.find((t) => t.Status.State === 'running')?.Status.PortStatus?.Ports?.[0]?.PublishedPort;
          if (port) {
            const r = await httpGet(`127.0.0.1:${port}`, '/version');
            if ('status' in r && r.status === 200) return;
          }
          if (Date.now() > deadline) throw new Error(`service ${name} did not run within 180 s`);
          await new Promise((r) => setTimeout(r, 250));
        }
      }),
    );
    return performance.now() - t0;
  } finally {
    await Promise.all(names.map((name) => docker.getService(name).remove().catch(() => undefined)));
    // The next step starts on a quiet machine: wait until the tasks' containers are gone.
    await until(async () => (await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${label}`] } })).length === 0, 'the raw services\' containers removed', 120_000);
  }
}

/**
 * The objects the kubernetes runtime renders for FLEET environments, created through the API (no
 * dry run, no server-side apply), all at once; done when each Deployment is available, looked at
 * every 500 ms as the runtime does.
 */
async function rawKubernetes(fleet: Fleet): Promise<number> {
  const { cluster, image, rawNamespace: ns } = fleet;
  const created = await cluster.request('POST', '/api/v1/namespaces', { metadata: { name: ns } });
  if (created.status !== 201) throw new Error(`creating namespace ${ns}: ${JSON.stringify(created.body)}`);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: FLEET }, async (_, i) => {
      const release = imageRelease(`raw${i}`, 1, image);
      const objects = renderManifests({ release, healthCheck: { kind: 'http', path: '/version', timeoutMs: 120_000, intervalMs: 1000 }, secrets: {}, namespace: ns, strategy: 'recreate' });
      for (const o of objects) {
        const base = o.apiVersion === 'v1' ? `/api/v1/namespaces/${ns}` : `/apis/${o.apiVersion}/namespaces/${ns}`;
        const r = await cluster.request('POST', `${base}/${o.kind.toLowerCase()}s`, o);
        if (r.status !== 201) throw new Error(`creating ${o.kind} ${o.metadata.name}: ${JSON.stringify(r.body)}`);
      }
      const deadline = Date.now() + 120_000;
      for (;;) {
        const d = await cluster.request('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${release.environment}`);
        if ((d.body?.status?.availableReplicas ?? 0) >= 1) return;
        if (Date.now() > deadline) throw new Error(`Deployment ${release.environment} was not available within 120 s`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }),
  );
  const ms = performance.now() - t0;
  await cluster.request('DELETE', `/api/v1/namespaces/${ns}`);
  return ms;
}

// -- plumbing ------------------------------------------------------------------------------------

/** `n` ports from `from` upward that nothing listens on now. */
async function freePortsFrom(from: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let port = from; out.length < n && port < 32_768; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) out.push(port);
  }
  if (out.length < n) throw new Error(`fewer than ${n} free ports from ${from} below 32768`);
  return out;
}

/** Changes the container variables of an environment's Deployment by hand (a merge patch, as `kubectl set env` would). */
async function setEnv(cluster: Cluster, ns: string, env: string, vars: { name: string; value: string }[]): Promise<void> {
  const at = `/apis/apps/v1/namespaces/${ns}/deployments/${env}`;
  const d = await cluster.request('GET', at);
  const containers = (d.body.spec.template.spec.containers as { env?: unknown }[]).map((c) => {
    const changed: { env?: unknown } = { ...c, env: vars };
    if (!vars.length) delete changed.env;
    return changed;
  });
  const r = await cluster.request('PATCH', at, { spec: { template: { spec: { containers } } } });
  if (r.status !== 200) throw new Error(`patching ${at}: ${JSON.stringify(r.body)}`);
}

/** `docker events` for one service's update: resolves `seen` when the daemon prints it. */
async function dockerEvent(service: string): Promise<{ seen: Promise<number>; stop: () => void }> {
  const child = spawn('docker', ['events', '--filter', 'type=service', '--filter', `service=${service}`, '--filter', 'event=update', '--format', '{{.Action}}']);
  const seen = new Promise<number>((resolve) => child.stdout.once('data', () => resolve(performance.now())));
  // `docker events` prints nothing until an event: give it time to subscribe.
  await new Promise((r) => setTimeout(r, 500));
  return { seen, stop: () => child.kill() };
}

/** A watch of one Deployment on the API server, from its current version: resolves `seen` at its first change. */
async function deploymentEvent(cluster: Cluster, ns: string, name: string): Promise<{ seen: Promise<number>; stop: () => void }> {
  const current = await cluster.request('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${name}`);
  const url = `${cluster.server}/apis/apps/v1/namespaces/${ns}/deployments?watch=1&fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}&resourceVersion=${current.body.metadata.resourceVersion}`;
  let resolveSeen!: (t: number) => void;
  const seen = new Promise<number>((r) => (resolveSeen = r));
  // The server's certificate is self-signed and made at start; the bench reaches it on loopback only.
  const req = https.get(url, { rejectUnauthorized: false, headers: { authorization: `Bearer ${cluster.token}` } });
  await new Promise<void>((resolve, reject) => {
    req.once('response', (res) => {
      res.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('"MODIFIED"')) resolveSeen(performance.now());
      });
      resolve();
    });
    req.once('error', reject);
  });
  return { seen, stop: () => req.destroy() };
}
