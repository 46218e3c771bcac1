import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import type { DeployStrategy, HealthCheck, HealthStatus, LiveInstance, LiveState, Release } from '../protocol';
import { DisposableSet } from '../util/disposable-set';
import { InFlight } from '../util/in-flight';
import { reportUnexpected, type IDisposable } from '../util/lifecycle';
import { sleep } from '../util/timers';
import { destroyStream, envOf, environmentFilter, hasLabels, healthCheckOf, LABEL, releaseLabels, resolveSettings, runningDigest, scopeOf, tailLog } from './docker-common';
import { CONTAINER_ACTIONS, watchDockerEvents } from './docker-events';
import { probeOnce, waitHealthy, type ProbeResult } from './health';
import type { ApplyContext, ApplyResult, DesiredState, Runtime, RuntimeServices } from './runtime';

/** Per-environment knobs, from the environment's `settings` in conveyor.yml. */
export interface DockerRuntimeSettings {
  /** Memory limit of each container, in MiB. None: no limit. */
  memoryMb?: number;
  /** CPU limit of each container, in CPUs (0.5 = half of one). None: no limit. */
  cpus?: number;
  /** Seconds a container gets between SIGTERM and SIGKILL when stopped. Default 10. */
  stopTimeoutSec?: number;
  /** Blue-green: how long the old release keeps running after the switch, to finish its requests. Default 1000. */
  drainMs?: number;
  /** How many of the failing container's last log lines a failed deploy reports. Default 50. */
  logLines?: number;
  /** Coalesces the events watch() reports. Default 250 ms. */
  debounceMs?: number;
  /** Extra labels on every container. */
  labels?: Record<string, string>;
  /** Separates the containers of two agents on one daemon. Default: derived from the runtime's stateDir. */
  scope?: string;
}

const DEFAULTS = { stopTimeoutSec: 10, drainMs: 1000, logLines: 50, debounceMs: 250 };

/**
 * The docker settings of an environment as conveyor.yml writes them (EnvironmentConfig.settings):
 * `resources: { memory: 256m, cpus: 0.5 }`.
 */
export function dockerSettingsOf(settings: Record<string, unknown>): DockerRuntimeSettings {
  const resources = (settings.resources ?? {}) as { memory?: unknown; cpus?: unknown };
  const out: DockerRuntimeSettings = {};
  if (typeof resources.memory === 'string' || typeof resources.memory === 'number') {
    const bytes = parseSize(resources.memory);
    if (bytes !== null) out.memoryMb = bytes / (1024 * 1024);
  }
  if (typeof resources.cpus === 'number' && resources.cpus > 0) out.cpus = resources.cpus;
  return out;
}

/** "256m" → bytes, as docker's --memory reads it (no unit: bytes). */
export function parseSize(value: string | number): number | null {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?$/i.exec(String(value).trim());
  if (!m) return null;
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * unit);
}

/** The daemon is not there (no socket, refused, no permission): every operation fails the same way. */
export class DockerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DockerUnavailableError';
  }
}

/** The host port a container should publish on is taken. */
export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    detail: string,
  ) {
    super(`port 127.0.0.1:${port} is in use, so the container cannot publish on it: ${detail}`);
    this.name = 'PortInUseError';
  }
}

/**
 * The `docker` runtime: each instance of a release is a container of the release's image, pulled
 * by digest, published on 127.0.0.1:<allocated port> and reached through the environment's public
 * port (services.route). The containers' labels are the record: observe() reads them back from the
 * daemon, so nothing is lost when the agent restarts.
 */
export class DockerRuntime implements Runtime {
  readonly name = 'docker' as const;
  private readonly applying = new InFlight();
  private readonly watchers = new DisposableSet();
  private readonly defaultScope: string;

  constructor(
    private readonly docker: Docker,
    private readonly services: RuntimeServices,
    private readonly settings: DockerRuntimeSettings | ((environment: string) => DockerRuntimeSettings) = {},
  ) {
    this.defaultScope = scopeOf(services.stateDir);
  }

  // -- apply ---------------------------------------------------------------------------------

  async apply(desired: DesiredState, strategy: DeployStrategy, ctx: ApplyContext): Promise<ApplyResult> {
    const { release } = desired;
    const env = release.environment;
    if (release.artifact.kind !== 'image') {
      return fail(`the docker runtime deploys images; ${env}@${release.number} is a files artifact (${release.artifact.name})`, '', false);
    }
    const endApply = this.applying.begin(env);
    try {
      const ref = `${release.artifact.repository}@${release.artifact.digest}`;
      let previous: Instance[] = [];
      try {
        previous = await this.instances(env);
        ctx.progress(`pulling ${ref}`);
        await this.ensureImage(ref, ctx.signal);
      } catch (e) {
        return fail(ctx.signal.aborted ? 'cancelled' : this.describe(e), '', previous.some(isServing));
      }
      return strategy === 'recreate' ? await this.recreate(desired, ref, previous, ctx) : await this.blueGreen(desired, ref, previous, ctx);
    } catch (e) {
      // A fault between the steps (the daemon went away): say what happened, never throw.
      return fail(this.describe(e), '', false);
    } finally {
      endApply();
    }
  }

  /** Stop the old release, start the new one; if it never gets healthy, start the old one again. */
  private async recreate(desired: DesiredState, ref: string, previous: Instance[], ctx: ApplyContext): Promise<ApplyResult> {
    const { release } = desired;
    const env = release.environment;
    const serving = previous.filter(isServing);

    let fresh: Started[];
    try {
      fresh = await this.createInstances(desired, ref);
    } catch (e) {
      return fail(this.describe(e), '', serving.length > 0);
    }

    if (serving.length) ctx.progress(`stopping release ${serving[0].release} (${serving.length} container${serving.length > 1 ? 's' : ''})`);
    await Promise.all(serving.map((i) => this.stopQuietly(i.id, env)));

    let outcome = await this.startAndWait(fresh, desired, ctx);
    if (outcome.ok && ctx.signal.aborted) outcome = { ok: false, reason: 'cancelled', log: '' };
    if (outcome.ok) {
      try {
        await this.services.route(env, desired.publicPort, fresh[0].address);
      } catch (e) {
        outcome = { ok: false, reason: `could not switch 127.0.0.1:${desired.publicPort} to ${fresh[0].address}: ${(e as Error).message}`, log: '' };
      }
    }
    if (outcome.ok) {
      await Promise.all(previous.map((i) => this.removeQuietly(i.id, env)));
      ctx.progress(`release ${release.number} is healthy at ${fresh[0].address}`);
      return { ok: true, live: await this.observe(env) };
    }

    await Promise.all(fresh.map((s) => this.removeQuietly(s.container.id, env)));
    let restored = false;
    if (serving.length) {
      ctx.progress(`starting release ${serving[0].release} again`);
      restored = await this.restart(serving, desired.publicPort, env);
    }
    return fail(outcome.reason, outcome.log, restored);
  }

  /** Start the new release beside the old one, switch the public port to it, then stop the old one. */
  private async blueGreen(desired: DesiredState, ref: string, previous: Instance[], ctx: ApplyContext): Promise<ApplyResult> {
    const { release } = desired;
    const env = release.environment;
    const serving = previous.filter(isServing);
    const settings = this.settingsFor(env);

    let fresh: Started[];
    try {
      fresh = await this.createInstances(desired, ref);
    } catch (e) {
      return fail(this.describe(e), '', serving.length > 0);
    }
    let outcome = await this.startAndWait(fresh, desired, ctx);
    if (outcome.ok && ctx.signal.aborted) outcome = { ok: false, reason: 'cancelled', log: '' };
    if (!outcome.ok) {
      await Promise.all(fresh.map((s) => this.removeQuietly(s.container.id, env)));
      return fail(outcome.reason, outcome.log, serving.length > 0);
    }
    try {
      ctx.progress(`switching 127.0.0.1:${desired.publicPort} to release ${release.number} at ${fresh[0].address}`);
      await this.services.route(env, desired.publicPort, fresh[0].address);
    } catch (e) {
      await Promise.all(fresh.map((s) => this.removeQuietly(s.container.id, env)));
      return fail(`could not switch 127.0.0.1:${desired.publicPort} to ${fresh[0].address}: ${(e as Error).message}`, '', serving.length > 0);
    }
    if (previous.length) {
      if (serving.length) {
        ctx.progress(`stopping release ${serving[0].release} after ${settings.drainMs} ms`);
        await sleep(settings.drainMs);
      }
      await Promise.all(previous.map((i) => this.removeQuietly(i.id, env, true)));
    }
    return { ok: true, live: await this.observe(env) };
  }

  /** Creates (does not start) one container per replica, each on its own host port. */
  private async createInstances(desired: DesiredState, ref: string): Promise<Started[]> {
    const out: Started[] = [];
    try {
      for (let i = 0; i < Math.max(1, desired.release.replicas); i++) {
        const port = await this.services.allocatePort();
        out.push({ container: await this.createContainer(desired, ref, port), port, address: `127.0.0.1:${port}` });
      }
      return out;
    } catch (e) {
      await Promise.all(out.map((s) => this.removeQuietly(s.container.id, desired.release.environment)));
      throw e;
    }
  }

  private async createContainer(desired: DesiredState, ref: string, hostPort: number): Promise<Docker.Container> {
    const { release, secrets } = desired;
    const settings = this.settingsFor(release.environment);
    const portKey = `${release.containerPort}/tcp`;
    const vars: Record<string, string> = { ...release.env, ...secrets, PORT: String(release.containerPort) };
    const envKeys = Object.keys({ ...release.env, PORT: '' }).filter((k) => !(k in secrets));
    const labels = { ...releaseLabels(desired, settings), [LABEL.envKeys]: envKeys.join(',') };
    return this.docker.createContainer({
      name: containerName(release),
      Image: ref,
      Cmd: release.command.length ? release.command : undefined,
      Env: Object.entries(vars).map(([k, v]) => `${k}=${v}`),
      Labels: labels,
      ExposedPorts: { [portKey]: {} },
      StopTimeout: settings.stopTimeoutSec,
      HostConfig: {
        Init: true,
        RestartPolicy: { Name: 'unless-stopped' },
        PortBindings: { [portKey]: [{ HostIp: '127.0.0.1', HostPort: String(hostPort) }] },
        Memory: settings.memoryMb ? Math.round(settings.memoryMb * 1024 * 1024) : undefined,
        NanoCpus: settings.cpus ? Math.round(settings.cpus * 1e9) : undefined,
      },
    });
  }

  /** Starts the new containers and waits until each answers its health check. */
  private async startAndWait(fresh: Started[], desired: DesiredState, ctx: ApplyContext): Promise<{ ok: true } | { ok: false; reason: string; log: string }> {
    const { release, healthCheck } = desired;
    const logLines = this.settingsFor(release.environment).logLines;
    for (const s of fresh) {
      try {
        ctx.progress(`starting release ${release.number} at ${s.address}`);
        await s.container.start();
      } catch (e) {
        const reason = isPortInUse(e) ? new PortInUseError(s.port, dockerMessage(e)).message : this.describe(e);
        return { ok: false, reason, log: '' };
      }
    }
    ctx.progress(`waiting for ${describeCheck(healthCheck)} (up to ${Math.round(healthCheck.timeoutMs / 1000)}s)`);
    const results = await Promise.all(fresh.map((s) => this.waitInstance(s, healthCheck, ctx.signal)));
    const bad = results.findIndex((r) => !r.ok);
    if (bad < 0) return { ok: true };
    const r = results[bad] as { ok: false; reason: string };
    const log = await tailLog(fresh[bad].container, logLines);
    const reason = r.reason === 'cancelled' ? 'cancelled' : `release ${release.number} (${fresh[bad].address}) is not healthy: ${r.reason}`;
    return { ok: false, reason, log };
  }

  /** waitHealthy, cut short when the container exits (its exit code is the better reason). */
  private async waitInstance(s: Started, check: HealthCheck, signal: AbortSignal): Promise<ProbeResult> {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const exit: { reason?: string } = {};
    s.container
      .wait({ condition: 'next-exit', abortSignal: stop.signal } as object)
      .then((r: { StatusCode?: number }) => {
        exit.reason = `the container exited with code ${r?.StatusCode ?? '?'}`;
        stop.abort();
      })
      .catch(() => undefined);
    try {
      const r = await waitHealthy(s.address, check, stop.signal);
      if (r.ok) return r;
      if (signal.aborted) return { ok: false, reason: 'cancelled' };
      return exit.reason ? { ok: false, reason: exit.reason } : r;
    } finally {
      signal.removeEventListener('abort', onAbort);
      stop.abort();
    }
  }

  /** Starts stopped instances again (a failed recreate) and routes back to the first. */
  private async restart(instances: Instance[], publicPort: number, env: string): Promise<boolean> {
    try {
      for (const i of instances) await this.docker.getContainer(i.id).start().catch(ignoreStatus(304));
      const fresh = await this.instances(env);
      const again = fresh.filter((i) => instances.some((o) => o.id === i.id));
      if (!again.length || !again[0].address) return false;
      const results = await Promise.all(again.map((i) => waitHealthy(i.address!, i.healthCheck ?? DEFAULT_CHECK)));
      await this.services.route(env, publicPort, again[0].address);
      return results.every((r) => r.ok);
    } catch (e) {
      reportUnexpected(e);
      return false;
    }
  }

  // -- observe, health, watch, remove --------------------------------------------------------

  async observe(environment: string): Promise<LiveState> {
    const instances = await this.instances(environment);
    return { environment, instances: instances.map((i) => i.live) };
  }

  async health(environment: string): Promise<HealthStatus> {
    if (this.applying.has(environment)) return 'Progressing';
    const all = await this.instances(environment);
    if (!all.length) return 'Missing';
    const latest = Math.max(...all.map((i) => i.release));
    const current = all.filter((i) => i.release === latest);
    if (current.some((i) => i.state === 'exited' || i.state === 'dead' || i.state === 'restarting')) return 'Degraded';
    if (current.some((i) => i.state === 'created')) return 'Progressing';
    if (current.some((i) => i.state !== 'running' || !i.address)) return 'Degraded';
    const results = await Promise.all(current.map((i) => probeOnce(i.address!, i.healthCheck ?? DEFAULT_CHECK)));
    if (results.every((r) => r.ok)) return 'Healthy';
    const young = current.some((i) => Date.now() - i.startedAt < (i.healthCheck ?? DEFAULT_CHECK).timeoutMs);
    return young ? 'Progressing' : 'Degraded';
  }

  /**
   * Calls onChange (debounced) on each event of the environment's containers. When the event
   * stream breaks (the daemon restarted), it reconnects with back-off and calls onChange once
   * connected again, since events may have been missed. Every environment's watch shares one
   * stream of the daemon: the events of Conveyor's containers, told apart by their labels.
   */
  watch(environment: string, onChange: () => void): IDisposable {
    const settings = this.settingsFor(environment);
    const mine = environmentFilter(settings.scope, environment);
    const events = watchDockerEvents(
      this.docker,
      {
        filters: { type: ['container'], label: [`${LABEL.managed}=true`], event: CONTAINER_ACTIONS },
        concerns: (e) => hasLabels(e.Actor?.Attributes, mine),
        debounceMs: settings.debounceMs,
      },
      onChange,
    );
    return this.watchers.add(events);
  }

  async remove(environment: string): Promise<void> {
    const all = await this.instances(environment);
    await Promise.all(all.map((i) => this.removeQuietly(i.id, environment, true)));
  }

  async removeInstances(environment: string, ids: string[]): Promise<void> {
    const mine = new Set((await this.instances(environment)).map((i) => i.id));
    await Promise.all(ids.filter((id) => mine.has(id)).map((id) => this.removeQuietly(id, environment, true)));
  }

  dispose(): void {
    this.watchers.dispose();
  }

  // -- reading the daemon --------------------------------------------------------------------

  /** The environment's containers, oldest release first. */
  private async instances(environment: string): Promise<Instance[]> {
    const settings = this.settingsFor(environment);
    try {
      const list = await this.docker.listContainers({
        all: true,
        filters: { label: environmentFilter(settings.scope, environment) },
      });
      const inspected = await Promise.all(list.map((c) => this.docker.getContainer(c.Id).inspect().catch(ignoreStatus(404))));
      return inspected
        .filter((x): x is Docker.ContainerInspectInfo => !!x)
        .map(toInstance)
        .sort((a, b) => a.release - b.release || a.createdAt - b.createdAt);
    } catch (e) {
      throw this.asError(e);
    }
  }

  private async ensureImage(ref: string, signal: AbortSignal): Promise<void> {
    try {
      await this.docker.getImage(ref).inspect();
      return;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
    }
    const stream = (await this.docker.pull(ref, { abortSignal: signal })) as NodeJS.ReadableStream;
    await readJsonLines(stream, (msg) => {
      if (msg.error) throw new Error(`could not pull ${ref}: ${msg.errorDetail?.message ?? msg.error}`);
    });
  }

  private async stopQuietly(id: string, env: string): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: this.settingsFor(env).stopTimeoutSec });
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      if (code !== 304 && code !== 404) reportUnexpected(e);
    }
  }

  private async removeQuietly(id: string, env: string, graceful = false): Promise<void> {
    if (graceful) await this.stopQuietly(id, env);
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 409) reportUnexpected(e);
    }
  }

  private settingsFor(environment: string): Required<Omit<DockerRuntimeSettings, 'memoryMb' | 'cpus'>> & DockerRuntimeSettings {
    return resolveSettings(this.settings, environment, { ...DEFAULTS, labels: {}, scope: this.defaultScope });
  }

  private describe(e: unknown): string {
    return describeDockerError(this.docker, e);
  }

  private asError(e: unknown): Error {
    if (isDaemonUnreachable(e)) return new DockerUnavailableError(daemonUnreachableMessage(this.docker, e));
    return e instanceof Error ? e : new Error(String(e));
  }
}

// -- helpers shared with the image build ---------------------------------------------------------

/** The daemon's address as Docker prints it: unix:///var/run/docker.sock, tcp://host:2375. */
export function daemonAddress(docker: Docker): string {
  const m = docker.modem as { socketPath?: string; host?: string; port?: string | number; protocol?: string };
  if (m.socketPath) return `unix://${m.socketPath}`;
  return `${m.protocol === 'https' ? 'https' : 'tcp'}://${m.host}${m.port ? `:${m.port}` : ''}`;
}

const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENOTSOCK']);

/** True for errors that mean "no daemon answered", as opposed to the daemon refusing something. */
export function isDaemonUnreachable(e: unknown): boolean {
  const x = e as { code?: string; statusCode?: number };
  return !!x && x.statusCode === undefined && typeof x.code === 'string' && UNREACHABLE.has(x.code);
}

export function daemonUnreachableMessage(docker: Docker, e: unknown): string {
  const code = (e as { code?: string }).code;
  const address = daemonAddress(docker);
  if (code === 'EACCES') {
    return `Cannot connect to the Docker daemon at ${address}: permission denied; add your user to the docker group (sudo usermod -aG docker $USER, then log in again) or run the agent as a user that may use the socket`;
  }
  return `Cannot connect to the Docker daemon at ${address}: start dockerd (sudo systemctl start docker; where there is no systemd: sudo setsid dockerd >/var/log/dockerd.log 2>&1 &) or point DOCKER_HOST at a running daemon (${code})`;
}

/** One line for people from any error dockerode throws. */
export function describeDockerError(docker: Docker, e: unknown): string {
  if (isDaemonUnreachable(e)) return daemonUnreachableMessage(docker, e);
  return dockerMessage(e);
}

/** The daemon's own message ("No such image: ..."), without dockerode's "(HTTP code 404)" prefix. */
export function dockerMessage(e: unknown): string {
  const x = e as { json?: { message?: string } | null; reason?: string; message?: string };
  const fromJson = x?.json && typeof x.json === 'object' ? x.json.message : undefined;
  return (fromJson ?? x?.message ?? String(e)).trim();
}

export interface DockerProgress {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: Record<string, unknown>;
  progressDetail?: unknown;
}

/**
 * Reads a daemon progress stream (build, push, pull): one JSON object per line. Resolves when
 * the stream ends; rejects if it breaks or `onMessage` throws.
 */
export function readJsonLines(stream: NodeJS.ReadableStream, onMessage: (msg: DockerProgress) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let settled = false;
    const settle = (e?: unknown) => {
      if (settled) return;
      settled = true;
      if (e) {
        destroyStream(stream);
        reject(e);
      } else resolve();
    };
    const line = (text: string) => {
      const t = text.trim();
      if (!t) return;
      let msg: DockerProgress;
      try {
        msg = JSON.parse(t) as DockerProgress;
      } catch {
        msg = { stream: `${t}\n` };
      }
      onMessage(msg);
    };
    stream.on('data', (chunk: Buffer | string) => {
      if (settled) return;
      buf += chunk.toString();
      let i: number;
      try {
        while ((i = buf.indexOf('\n')) >= 0) {
          const text = buf.slice(0, i);
          buf = buf.slice(i + 1);
          line(text);
        }
      } catch (e) {
        settle(e);
      }
    });
    stream.on('error', (e) => settle(e));
    const end = () => {
      if (settled) return;
      try {
        line(buf);
        buf = '';
        settle();
      } catch (e) {
        settle(e);
      }
    };
    stream.on('end', end);
    stream.on('close', end);
  });
}

// -- internals -----------------------------------------------------------------------------------

const DEFAULT_CHECK: HealthCheck = { kind: 'http', path: '/', timeoutMs: 30_000, intervalMs: 500 };

interface Started {
  container: Docker.Container;
  port: number;
  address: string;
}

interface Instance {
  id: string;
  release: number;
  /** Docker's own state: created, running, restarting, paused, exited, dead. */
  state: string;
  address: string | null;
  healthCheck: HealthCheck | null;
  startedAt: number;
  createdAt: number;
  live: LiveInstance;
}

function toInstance(info: Docker.ContainerInspectInfo): Instance {
  const labels = info.Config.Labels ?? {};
  const containerPort = labels[LABEL.containerPort];
  const binding = containerPort ? info.HostConfig.PortBindings?.[`${containerPort}/tcp`]?.[0] : undefined;
  const running = info.State.Running && !info.State.Restarting;
  const address = running && binding?.HostPort ? `${binding.HostIp || '127.0.0.1'}:${binding.HostPort}` : null;
  const keys = new Set((labels[LABEL.envKeys] ?? '').split(',').filter(Boolean));
  const env = envOf(info.Config.Env, (k) => keys.has(k));
  const healthCheck = healthCheckOf(labels);
  const status = info.State.Status;
  const state: LiveInstance['state'] =
    status === 'running' ? 'running' : status === 'created' || status === 'restarting' ? 'starting' : status === 'exited' || status === 'dead' ? 'exited' : 'unknown';
  const release = Number(labels[LABEL.release]);
  return {
    id: info.Id,
    release,
    state: status,
    address,
    healthCheck,
    startedAt: Date.parse(info.State.StartedAt) || 0,
    createdAt: Date.parse(info.Created) || 0,
    live: {
      id: info.Id,
      environment: labels[LABEL.environment],
      release,
      artifactDigest: runningDigest(info.Config.Image ?? '', labels),
      address,
      state,
      env,
      labels,
    },
  };
}

function isServing(i: Instance): boolean {
  return i.state === 'running' || i.state === 'restarting';
}

function isPortInUse(e: unknown): boolean {
  return /port is already allocated|address already in use/i.test(dockerMessage(e));
}

function containerName(release: Release): string {
  const slug = release.environment.replace(/[^a-zA-Z0-9_.-]+/g, '-').replace(/^[^a-zA-Z0-9]+/, '').slice(0, 40) || 'env';
  return `conveyor-${slug}-${release.number}-${randomBytes(3).toString('hex')}`;
}

function describeCheck(check: HealthCheck): string {
  if (check.kind === 'http') return `GET ${check.path}`;
  if (check.kind === 'tcp') return 'the port to accept connections';
  return `"${check.command}"`;
}

function fail(reason: string, log: string, restored: boolean): ApplyResult {
  return { ok: false, reason, log, restored };
}

function ignoreStatus(...codes: number[]): (e: unknown) => undefined {
  return (e) => {
    if (codes.includes((e as { statusCode?: number }).statusCode ?? -1)) return undefined;
    throw e;
  };
}
