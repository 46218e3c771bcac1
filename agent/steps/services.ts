import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import type { ServiceConfig } from '../protocol';
import { serviceVariablePrefix } from '../config/analyzer';
import { describeDockerError, readJsonLines } from '../runtimes/docker';
import { demuxLog, LABEL, tailLog } from '../runtimes/docker-common';
import { probeOnce, type ProbeResult } from '../runtimes/health';
import { sleep } from '../util/timers';

/** Labels of the containers and networks of an integration stage, so that leftovers can be found. */
export const SERVICE_LABEL = {
  /** The service's name; present on every service container. */
  service: 'conveyor.service',
  stage: 'conveyor.stage',
  attempt: 'conveyor.attempt',
  run: LABEL.run,
  /** Which agent (workspace) owns them. */
  scope: LABEL.scope,
} as const;

/** Between two health probes of a service. */
const PROBE_INTERVAL_MS = 250;
/** How many of a failing service's last log lines are shown. */
const LOG_LINES = 30;

/** Who the services of one attempt belong to. */
export interface ServiceOwner {
  scope: string;
  runId: number;
  stage: string;
  attempt: number;
}

/** A started service: where the host reaches it. */
export interface RunningService {
  name: string;
  container: string;
  hostPort: number;
  /** <NAME>_HOST, <NAME>_PORT, <NAME>_URL. */
  env: Record<string, string>;
}

/** A service that could not be started or never got healthy: why, and the end of its log. */
export class ServiceError extends Error {
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/**
 * The service containers of one attempt of an integration stage, on a private network made for
 * the attempt. `start` creates the network and the containers (pulling images the daemon does not
 * have), and waits for each one's health; `dispose` removes the containers and the network, and
 * is safe to call whatever happened before.
 */
export class ServiceSet {
  private network: Docker.Network | undefined;
  private readonly containers: { name: string; container: Docker.Container }[] = [];
  private readonly prefix: string;

  constructor(
    private readonly docker: Docker,
    private readonly owner: ServiceOwner,
  ) {
    this.prefix = `conveyor-${owner.scope}-${owner.runId}-${slug(owner.stage)}-${owner.attempt}-${randomBytes(3).toString('hex')}`;
  }

  private labels(service?: string): Record<string, string> {
    const labels: Record<string, string> = {
      [SERVICE_LABEL.scope]: this.owner.scope,
      [SERVICE_LABEL.run]: String(this.owner.runId),
      [SERVICE_LABEL.stage]: this.owner.stage,
      [SERVICE_LABEL.attempt]: String(this.owner.attempt),
    };
    if (service !== undefined) labels[SERVICE_LABEL.service] = service;
    return labels;
  }

  /** Starts every service and waits until each is healthy. Rejects with a ServiceError. */
  async start(services: ServiceConfig[], signal: AbortSignal, log: (line: string) => void): Promise<RunningService[]> {
    try {
      this.network = await this.docker.createNetwork({ Name: this.prefix, Driver: 'bridge', Labels: this.labels(), CheckDuplicate: true });
      log(`network ${this.prefix}`);
      const started: { config: ServiceConfig; container: Docker.Container; name: string }[] = [];
      for (const s of services) {
        if (signal.aborted) throw new ServiceError('cancelled', '');
        await this.ensureImage(s.image, signal, log);
        const name = `${this.prefix}-${slug(s.name)}`;
        const portKey = `${s.port}/tcp`;
        const container = await this.docker.createContainer({
          name,
          Image: s.image,
          Cmd: s.command.length ? s.command : undefined,
          Env: Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
          Labels: this.labels(s.name),
          ExposedPorts: { [portKey]: {} },
          HostConfig: {
            Init: true,
            NetworkMode: this.prefix,
            PortBindings: { [portKey]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
          },
          NetworkingConfig: { EndpointsConfig: { [this.prefix]: { Aliases: [s.name] } } },
        });
        this.containers.push({ name, container });
        log(`starting ${s.name} (${s.image}) as ${name}`);
        await container.start();
        started.push({ config: s, container, name });
      }
      // The first service that fails ends the others' waits.
      const stop = new AbortController();
      const waiting = AbortSignal.any([signal, stop.signal]);
      return await Promise.all(
        started.map((x) =>
          this.waitHealthy(x.config, x.container, x.name, waiting, log).catch((e: unknown) => {
            stop.abort();
            throw e;
          }),
        ),
      );
    } catch (e) {
      if (e instanceof ServiceError) throw e;
      throw new ServiceError(signal.aborted ? 'cancelled' : describeDockerError(this.docker, e), '');
    }
  }

  /** Removes the containers (with their volumes) and the network; failures are reported, not thrown. */
  async dispose(): Promise<string[]> {
    const problems: string[] = [];
    await Promise.all(
      this.containers.splice(0).map(({ name, container }) =>
        container.remove({ force: true, v: true }).catch((e: unknown) => {
          if ((e as { statusCode?: number }).statusCode !== 404) problems.push(`could not remove ${name}: ${describeDockerError(this.docker, e)}`);
        }),
      ),
    );
    const network = this.network;
    this.network = undefined;
    await network?.remove().catch((e: unknown) => {
      if ((e as { statusCode?: number }).statusCode !== 404) problems.push(`could not remove network ${this.prefix}: ${describeDockerError(this.docker, e)}`);
    });
    return problems;
  }

  private async ensureImage(image: string, signal: AbortSignal, log: (line: string) => void): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
    }
    log(`pulling ${image}`);
    try {
      const stream = (await this.docker.pull(image, { abortSignal: signal })) as NodeJS.ReadableStream;
      await readJsonLines(stream, (msg) => {
        if (msg.error) throw new Error(msg.errorDetail?.message ?? msg.error);
      });
    } catch (e) {
      throw new ServiceError(`could not pull the image ${image}: ${describeDockerError(this.docker, e)}`, '');
    }
  }

  /** Probes the service until it is healthy, its container exits, its time is up, or the attempt ends. */
  private async waitHealthy(s: ServiceConfig, container: Docker.Container, name: string, signal: AbortSignal, log: (line: string) => void): Promise<RunningService> {
    const deadline = Date.now() + s.timeoutMs;
    let last: ProbeResult = { ok: false, reason: 'not probed yet' };
    let hostPort = 0;
    for (;;) {
      if (signal.aborted) throw new ServiceError('cancelled', '');
      const info = await container.inspect();
      if (!info.State.Running) {
        throw new ServiceError(`service "${s.name}" (container ${name}) exited with code ${info.State.ExitCode} before it was healthy`, await this.tail(container));
      }
      hostPort = Number(info.NetworkSettings.Ports?.[`${s.port}/tcp`]?.[0]?.HostPort ?? 0);
      const ip = info.NetworkSettings.Networks?.[this.prefix]?.IPAddress ?? '';
      last = await this.probe(s, container, hostPort, ip, signal);
      if (last.ok) break;
      if (Date.now() + PROBE_INTERVAL_MS > deadline) {
        const seconds = Math.round(s.timeoutMs / 100) / 10;
        throw new ServiceError(`service "${s.name}" (container ${name}) was not healthy within ${seconds}s: ${last.reason}`, await this.tail(container));
      }
      await sleep(PROBE_INTERVAL_MS, signal);
    }
    const prefix = serviceVariablePrefix(s.name);
    log(`${s.name} is healthy at 127.0.0.1:${hostPort} (${prefix}_HOST, ${prefix}_PORT, ${prefix}_URL)`);
    return {
      name: s.name,
      container: name,
      hostPort,
      env: { [`${prefix}_HOST`]: '127.0.0.1', [`${prefix}_PORT`]: String(hostPort), [`${prefix}_URL`]: `http://127.0.0.1:${hostPort}` },
    };
  }

  /**
   * One health probe. TCP goes to the container's own address on the network: the published
   * port accepts connections even when nothing listens behind it (docker-proxy). HTTP goes to
   * the published port, as the commands will. A command runs inside the container.
   */
  private async probe(s: ServiceConfig, container: Docker.Container, hostPort: number, ip: string, signal: AbortSignal): Promise<ProbeResult> {
    switch (s.health.kind) {
      case 'tcp':
        if (!ip) return { ok: false, reason: 'the container has no address on the network yet' };
        return probeOnce(`${ip}:${s.port}`, { kind: 'tcp', timeoutMs: s.timeoutMs, intervalMs: PROBE_INTERVAL_MS }, signal);
      case 'http':
        if (!hostPort) return { ok: false, reason: `port ${s.port} is not published yet` };
        return probeOnce(`127.0.0.1:${hostPort}`, { kind: 'http', path: s.health.path, timeoutMs: s.timeoutMs, intervalMs: PROBE_INTERVAL_MS }, signal);
      case 'command':
        return this.exec(container, s.health.command);
    }
  }

  private async exec(container: Docker.Container, command: string[]): Promise<ProbeResult> {
    const exec = await container.exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        stream.destroy();
        resolve();
      }, 5000);
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        clearTimeout(timer);
        resolve();
      });
      stream.on('error', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const { ExitCode } = await exec.inspect();
    if (ExitCode === 0) return { ok: true };
    const out = demuxLog(Buffer.concat(chunks)).trim().split('\n').pop() ?? '';
    return { ok: false, reason: `${JSON.stringify(command.join(' '))} exited ${ExitCode ?? '(still running after 5s)'}${out ? `: ${out}` : ''}` };
  }

  private async tail(container: Docker.Container): Promise<string> {
    return (await tailLog(container, LOG_LINES)).trimEnd();
  }
}

/**
 * Removes the containers and networks of a stage that a stopped agent left behind: those of this
 * scope and stage whose run is not in flight. Returns what it removed.
 */
export async function removeLeftovers(docker: Docker, scope: string, stage: string, activeRuns: readonly number[]): Promise<string[]> {
  const filters = { label: [`${SERVICE_LABEL.scope}=${scope}`, `${SERVICE_LABEL.stage}=${stage}`] };
  const stale = (labels: Record<string, string> | undefined) => !activeRuns.includes(Number(labels?.[SERVICE_LABEL.run]));
  const removed: string[] = [];
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(
    containers
      .filter((c) => c.Labels?.[SERVICE_LABEL.service] !== undefined && stale(c.Labels))
      .map(async (c) => {
        await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
        removed.push((c.Names?.[0] ?? c.Id).replace(/^\//, ''));
      }),
  );
  const networks = await docker.listNetworks({ filters });
  for (const n of networks.filter((x) => stale(x.Labels))) {
    await docker.getNetwork(n.Id).remove().catch(() => undefined);
    removed.push(n.Name);
  }
  return removed;
}

/** A name Docker accepts in container and network names. */
function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'stage';
}
