import { createHash, randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import type { DeployStrategy, HealthCheck, HealthStatus, LiveInstance, LiveState } from '../protocol';
import { DisposableSet } from '../util/disposable-set';
import { InFlight } from '../util/in-flight';
import { reportUnexpected, type IDisposable } from '../util/lifecycle';
import { sleep } from '../util/timers';
import { describeDockerError, dockerMessage, isDaemonUnreachable, daemonUnreachableMessage, type DockerRuntimeSettings } from './docker';
import { envOf, environmentFilter, healthCheckOf, LABEL, releaseLabels, resolveSettings, runningDigest, scopeOf, tailLog, type LogSource } from './docker-common';
import { CONTAINER_ACTIONS, SERVICE_ACTIONS, watchDockerEvents, type DockerEvent } from './docker-events';
import { probeOnce, waitHealthy } from './health';
import type { ApplyContext, ApplyResult, DesiredState, Runtime, RuntimeServices } from './runtime';

/** Labels of the swarm runtime, on each service and on its tasks' containers (the docker runtime's, plus two). */
export const SWARM_LABEL = {
  ...LABEL,
  /** A fresh value per apply: every deploy rolls the tasks, and apply tells its own tasks from the ones before. */
  deploy: 'conveyor.deploy',
  /** The names of the variables that are secrets: they reach the tasks but observe() does not report them. */
  secretKeys: 'conveyor.secret-keys',
} as const;

/** Per-environment knobs, from the environment's `settings` in conveyor.yml (see dockerSettingsOf). */
export interface SwarmRuntimeSettings extends Pick<DockerRuntimeSettings, 'memoryMb' | 'cpus' | 'stopTimeoutSec' | 'logLines' | 'debounceMs' | 'labels' | 'scope'> {
  /** How many tasks a rolling update replaces at a time (UpdateConfig.Parallelism). Default 1. */
  parallelism?: number;
  /** How long swarm watches each updated task for a failure before it goes on (UpdateConfig.Monitor). Default 5000 ms. */
  monitorMs?: number;
  /** How long swarm waits before it starts a task again after it failed (RestartPolicy.Delay). Default 5000 ms. */
  restartDelayMs?: number;
}

const DEFAULTS = { stopTimeoutSec: 10, logLines: 50, debounceMs: 250, parallelism: 1, monitorMs: 5000, restartDelayMs: 5000 };

/** Between two looks at a service while it converges. */
const POLL_MS = 250;
/** Per batch of a rolling update, on top of the health check's time: pulling the image, starting, stopping. */
const BATCH_ALLOWANCE_MS = 20_000;

/** The daemon is no swarm manager, so it cannot run services. */
export class SwarmUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SwarmUnavailableError';
  }
}

/**
 * The `swarm` runtime: an environment is one Docker Swarm service, its replicas are the service's
 * tasks. A deploy updates the service to the release's image (repository@digest) and labels, and
 * swarm rolls the tasks: start-first for blue-green, stop-first for recreate. Each task's
 * container carries a health check made from the environment's, so swarm itself sees a task that
 * never gets healthy, and rolls the service back to the spec before (FailureAction: rollback).
 *
 * Ports: tasks publish the container port in host mode (the ingress routing mesh does not serve
 * the host everywhere) on a port the daemon picks for each task, so that replicas and the start-first
 * overlap never contend for one port. The environment's public port (services.route) points at
 * a running task; when swarm replaces tasks (a crash, a drained node), reading the service
 * (observe, health) moves the public port to a running task again.
 *
 * The service's labels are the record: observe() reads everything back from swarm, so nothing is
 * lost when the agent restarts. Tasks that swarm replaces are swarm's business: there is no
 * removeInstances.
 */
export class SwarmRuntime implements Runtime {
  readonly name = 'swarm' as const;
  private readonly applying = new InFlight();
  private readonly watchers = new DisposableSet();
  /** Where each environment's public port points now (by this runtime). */
  private readonly routed = new Map<string, string>();
  private readonly defaultScope: string;

  constructor(
    private readonly docker: Docker,
    private readonly services: RuntimeServices,
    private readonly settings: SwarmRuntimeSettings | ((environment: string) => SwarmRuntimeSettings) = {},
  ) {
    this.defaultScope = scopeOf(services.stateDir);
  }

  // -- apply ---------------------------------------------------------------------------------

  async apply(desired: DesiredState, strategy: DeployStrategy, ctx: ApplyContext): Promise<ApplyResult> {
    const { release } = desired;
    const env = release.environment;
    if (release.artifact.kind !== 'image') {
      return fail(`the swarm runtime deploys images; ${env}@${release.number} is a files artifact (${release.artifact.name})`, '', false);
    }
    const endApply = this.applying.begin(env);
    try {
      let existing: ServiceInfo | undefined;
      try {
        await this.requireManager();
        existing = await this.findService(env);
      } catch (e) {
        return fail(this.describe(e), '', false);
      }
      const nonce = randomBytes(6).toString('hex');
      const spec = this.specFor(desired, strategy, nonce);
      const ref = spec.TaskTemplate.ContainerSpec.Image;
      const order = strategy === 'blue-green' ? 'start-first' : 'stop-first';
      if (!existing) {
        ctx.progress(`creating service ${spec.Name} with ${Math.max(1, release.replicas)} task(s) of release ${release.number} (${ref})`);
        let id: string;
        try {
          id = (await this.docker.createService(spec as Docker.CreateServiceOptions)).id;
        } catch (e) {
          return fail(this.describe(e), '', false);
        }
        const outcome = await this.converge(id, desired, { nonce, update: null }, ctx);
        if (outcome.ok) return { ok: true, live: await this.observe(env) };
        ctx.progress(`removing service ${spec.Name}: release ${release.number} never served`);
        await this.removeService(id).catch(reportUnexpected);
        return fail(outcome.reason, outcome.log, false);
      }
      const previous = existing.Spec.TaskTemplate?.ContainerSpec?.Labels?.[SWARM_LABEL.deploy] ?? null;
      ctx.progress(`updating service ${existing.Spec.Name} to release ${release.number} (${ref}), ${order}, ${this.settingsFor(env).parallelism} task(s) at a time`);
      try {
        await this.docker.getService(existing.ID).update({ _query: { version: existing.Version?.Index }, _body: spec } as unknown as object);
      } catch (e) {
        return fail(this.describe(e), '', (await this.servingTasks(existing.ID, previous).catch(() => [])).length > 0);
      }
      const outcome = await this.converge(existing.ID, desired, { nonce, update: { previous, startedBefore: existing.UpdateStatus?.StartedAt ?? null } }, ctx);
      if (outcome.ok) return { ok: true, live: await this.observe(env) };
      const restored = await this.rollBack(existing.ID, desired, previous, outcome.rolledBackBySwarm, ctx);
      return fail(outcome.reason, outcome.log, restored);
    } catch (e) {
      // A fault between the steps (the daemon went away): say what happened, never throw.
      return fail(this.describe(e), '', false);
    } finally {
      endApply();
    }
  }

  /**
   * Follows a new or updated service until the tasks of this apply run, answer the health check
   * from the host and swarm calls the update completed; points the public port at the first of
   * them as soon as it runs. Fails on a task that fails (a new service), on swarm rolling the
   * update back or pausing it, on cancel, and when it takes longer than the health check's time
   * per batch of tasks.
   */
  private async converge(id: string, desired: DesiredState, apply: { nonce: string; update: { previous: string | null; startedBefore: string | null } | null }, ctx: ApplyContext): Promise<Converged> {
    const { release, healthCheck, publicPort } = desired;
    const env = release.environment;
    const settings = this.settingsFor(env);
    const replicas = Math.max(1, release.replicas);
    const batches = Math.ceil(replicas / Math.max(1, settings.parallelism));
    const budgetMs = batches * (healthCheck.timeoutMs + settings.monitorMs + BATCH_ALLOWANCE_MS);
    const deadline = Date.now() + budgetMs;
    const said = new Map<string, string>();
    let lastUpdateMessage = '';
    for (;;) {
      if (ctx.signal.aborted) return { ok: false, reason: 'cancelled', log: '', rolledBackBySwarm: false };
      const service = await this.inspectService(id);
      if (!service) return { ok: false, reason: `service ${id.slice(0, 12)} was removed during the deploy`, log: '', rolledBackBySwarm: false };
      const tasks = await this.tasksOf(id);
      const mine = tasks.filter((t) => deployOf(t) === apply.nonce);
      for (const t of mine) {
        const line = `${t.Status.State}${t.Status.Err ? `: ${t.Status.Err}` : ''}`;
        if (said.get(t.ID) !== line) {
          said.set(t.ID, line);
          ctx.progress(`release ${release.number}, task ${t.Slot ?? '?'} (${t.ID.slice(0, 12)}): ${line}`);
        }
      }
      const status = service.UpdateStatus;
      const ours = !!apply.update && !!status?.StartedAt && status.StartedAt !== apply.update.startedBefore;
      if (ours && status?.Message && status.Message !== lastUpdateMessage) {
        lastUpdateMessage = status.Message;
        ctx.progress(`swarm: ${status.State}: ${status.Message}`);
      }
      if (ours && status?.State && status.State !== 'updating' && status.State !== 'completed') {
        const failed = newest(mine.filter(isFailed));
        const why = failed ? await this.taskFailure(failed, settings.logLines) : { reason: '', log: '' };
        const reason = `release ${release.number} did not become healthy and swarm ${status.State === 'paused' ? 'paused the update' : 'rolled it back'}: ${why.reason || status.Message || status.State}`;
        return { ok: false, reason, log: why.log, rolledBackBySwarm: status.State.startsWith('rollback') };
      }
      if (!apply.update) {
        const failed = newest(mine.filter(isFailed));
        if (failed) {
          const why = await this.taskFailure(failed, settings.logLines);
          return { ok: false, reason: `release ${release.number} did not start: ${why.reason}`, log: why.log, rolledBackBySwarm: false };
        }
      }
      const running = mine.filter((t) => isCurrent(t) && t.Status.State === 'running' && addressOf(t));
      const current = this.routed.get(env);
      if (running.length && !running.some((t) => addressOf(t) === current)) {
        const address = addressOf(running[0])!;
        if ((await probeOnce(address, healthCheck)).ok) {
          ctx.progress(`switching 127.0.0.1:${publicPort} to release ${release.number} at ${address}`);
          await this.routeTo(env, publicPort, address);
        }
      }
      const others = tasks.filter((t) => isCurrent(t) && deployOf(t) !== apply.nonce);
      const settled = !apply.update || (ours && status?.State === 'completed');
      if (running.length >= replicas && others.length === 0 && settled) {
        const results = await Promise.all(running.map((t) => waitHealthy(addressOf(t)!, healthCheck, ctx.signal)));
        const bad = results.findIndex((r) => !r.ok);
        if (bad < 0) {
          const address = addressOf(running[0])!;
          if (this.routed.get(env) !== address) await this.routeTo(env, publicPort, address);
          ctx.progress(`release ${release.number} is healthy at ${running.map((t) => addressOf(t)).join(', ')}`);
          return { ok: true };
        }
        const r = results[bad] as { ok: false; reason: string };
        if (r.reason === 'cancelled') return { ok: false, reason: 'cancelled', log: '', rolledBackBySwarm: false };
        return { ok: false, reason: `release ${release.number} (${addressOf(running[bad])}) is not healthy: ${r.reason}`, log: await this.taskLog(running[bad].ID, settings.logLines), rolledBackBySwarm: false };
      }
      if (Date.now() > deadline) {
        const failed = newest(mine.filter(isFailed));
        const why = failed ? await this.taskFailure(failed, settings.logLines) : { reason: '', log: '' };
        const states = mine.filter(isCurrent).map((t) => t.Status.State).join(', ') || 'no task yet';
        return {
          ok: false,
          reason: `release ${release.number} did not converge within ${Math.round(budgetMs / 1000)}s (${running.length} of ${replicas} task(s) running; tasks: ${states})${why.reason ? `: ${why.reason}` : ''}`,
          log: why.log,
          rolledBackBySwarm: false,
        };
      }
      await sleep(POLL_MS, ctx.signal);
    }
  }

  /**
   * After a failed update: swarm rolls back by itself when a task fails; otherwise (cancelled, too
   * slow, not healthy from the host) the service is rolled back to the spec before. True when the
   * tasks of the previous deploy serve again and the public port points at one of them.
   */
  private async rollBack(id: string, desired: DesiredState, previous: string | null, bySwarm: boolean, ctx: ApplyContext): Promise<boolean> {
    const env = desired.release.environment;
    try {
      if (!bySwarm) {
        const service = await this.inspectService(id);
        if (!service) return false;
        ctx.progress(`rolling service ${service.Spec.Name} back to the previous spec`);
        await this.docker.getService(id).update({ _query: { version: service.Version?.Index, rollback: 'previous' }, _body: service.Spec } as unknown as object);
      }
      const deadline = Date.now() + desired.healthCheck.timeoutMs + this.settingsFor(env).monitorMs + BATCH_ALLOWANCE_MS;
      for (;;) {
        const service = await this.inspectService(id);
        if (!service) return false;
        const state = service.UpdateStatus?.State;
        const serving = await this.servingTasks(id, previous);
        if (state === 'rollback_completed' || state === 'rollback_paused' || Date.now() > deadline) {
          if (!serving.length) return false;
          const address = addressOf(serving[0])!;
          // The check of the release that serves again, not of the one that failed.
          if (!(await waitHealthy(address, healthCheckOf(service.Spec.Labels) ?? DEFAULT_CHECK)).ok) return false;
          if (this.routed.get(env) !== address) {
            ctx.progress(`switching 127.0.0.1:${desired.publicPort} back to ${address}`);
            await this.routeTo(env, desired.publicPort, address);
          }
          return true;
        }
        await sleep(POLL_MS);
      }
    } catch (e) {
      reportUnexpected(e);
      return false;
    }
  }

  private specFor(desired: DesiredState, strategy: DeployStrategy, nonce: string): SwarmServiceSpec {
    const { release, healthCheck, secrets } = desired;
    const artifact = release.artifact as { repository: string; digest: string };
    const env = release.environment;
    const settings = this.settingsFor(env);
    const vars: Record<string, string> = { ...release.env, ...secrets, PORT: String(release.containerPort) };
    const labels = { ...releaseLabels(desired, settings), [SWARM_LABEL.secretKeys]: Object.keys(secrets).join(','), [SWARM_LABEL.deploy]: nonce };
    const order = strategy === 'blue-green' ? 'start-first' : 'stop-first';
    const monitor = ms(settings.monitorMs);
    return {
      Name: this.serviceName(env),
      Labels: labels,
      TaskTemplate: {
        ContainerSpec: {
          Image: `${artifact.repository}@${artifact.digest}`,
          Args: release.command.length ? release.command : undefined,
          Env: Object.entries(vars).map(([k, v]) => `${k}=${v}`),
          Labels: labels,
          // busybox or node as PID 1 ignore SIGTERM: without an init, every stop waits the grace period.
          Init: true,
          StopGracePeriod: ms(settings.stopTimeoutSec * 1000),
          HealthCheck: containerHealthCheck(healthCheck, release.containerPort),
        },
        RestartPolicy: { Condition: 'any', Delay: ms(settings.restartDelayMs), MaxAttempts: 0 },
        Resources: {
          Limits: {
            MemoryBytes: settings.memoryMb ? Math.round(settings.memoryMb * 1024 * 1024) : undefined,
            NanoCPUs: settings.cpus ? Math.round(settings.cpus * 1e9) : undefined,
          },
        },
      },
      Mode: { Replicated: { Replicas: Math.max(1, release.replicas) } },
      UpdateConfig: { Parallelism: Math.max(1, settings.parallelism), Delay: 0, FailureAction: 'rollback', Monitor: monitor, MaxFailureRatio: 0, Order: order },
      RollbackConfig: { Parallelism: 0, Delay: 0, FailureAction: 'pause', Monitor: monitor, MaxFailureRatio: 0, Order: order },
      // No PublishedPort: the daemon picks a free host port for each task (see the class comment).
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: release.containerPort, PublishMode: 'host' }] },
    };
  }

  // -- observe, health, watch, remove --------------------------------------------------------

  /**
   * The service's tasks as instances: the ones swarm keeps running, plus, for a slot whose task
   * failed and is not running again yet, the failed task (state `exited`). Also keeps the public
   * port on a running task when swarm has replaced the one it pointed at.
   */
  async observe(environment: string): Promise<LiveState> {
    const read = await this.read(environment);
    if (!read) return { environment, instances: [] };
    return { environment, instances: visibleTasks(read.tasks).map((t) => toLive(t, environment)) };
  }

  async health(environment: string): Promise<HealthStatus> {
    if (this.applying.has(environment)) return 'Progressing';
    const read = await this.read(environment);
    if (!read) return 'Missing';
    const { service, tasks } = read;
    const update = service.UpdateStatus?.State;
    if (update === 'updating') return 'Progressing';
    if (update === 'paused' || update === 'rollback_paused' || update === 'rollback_started') return 'Degraded';
    const want = service.Spec.Mode?.Replicated?.Replicas ?? 1;
    const current = tasks.filter(isCurrent);
    const running = current.filter((t) => t.Status.State === 'running' && addressOf(t));
    if (running.length < want) {
      const crashed = [...slotsOf(current)].some((slot) => !running.some((t) => t.Slot === slot) && isFailedTask(newest(tasks.filter((t) => t.Slot === slot && !isCurrent(t)))));
      return crashed ? 'Degraded' : 'Progressing';
    }
    const check = healthCheckOf(service.Spec.Labels) ?? DEFAULT_CHECK;
    const results = await Promise.all(running.map((t) => probeOnce(addressOf(t)!, check)));
    if (results.every((r) => r.ok)) return 'Healthy';
    const young = running.some((t) => Date.now() - (Date.parse(t.Status.Timestamp ?? '') || 0) < check.timeoutMs);
    return young ? 'Progressing' : 'Degraded';
  }

  /**
   * Calls onChange (debounced) on each event of the environment's service and of its tasks'
   * containers. When the event stream breaks (the daemon restarted), it reconnects with back-off
   * and calls onChange once connected again, since events may have been missed. Every
   * environment's watch shares one stream of the daemon.
   */
  watch(environment: string, onChange: () => void): IDisposable {
    const name = this.serviceName(environment);
    // Service events carry only the service's name; container events carry the task's labels.
    const concerns = (event: DockerEvent): boolean => {
      const a = event.Actor?.Attributes ?? {};
      if (event.Type === 'service') return a.name === name;
      return event.Type === 'container' && a['com.docker.swarm.service.name'] === name;
    };
    // Only the actions that change a service or a task: a health check's exec_* events never reach the agent.
    const filters = { type: ['service', 'container'], event: [...SERVICE_ACTIONS, ...CONTAINER_ACTIONS] };
    return this.watchers.add(watchDockerEvents(this.docker, { filters, concerns, debounceMs: this.settingsFor(environment).debounceMs }, onChange));
  }

  /** Removes the service and its tasks' containers. */
  async remove(environment: string): Promise<void> {
    let service: ServiceInfo | undefined;
    try {
      service = await this.findService(environment);
    } catch (e) {
      if (e instanceof SwarmUnavailableError) return; // no swarm: no service either
      throw e;
    }
    this.routed.delete(environment);
    if (service) await this.removeService(service.ID);
  }

  dispose(): void {
    this.watchers.dispose();
  }

  // -- reading the daemon --------------------------------------------------------------------

  /** The environment's service and all its tasks (with history); keeps the public port on a running task. */
  private async read(environment: string): Promise<{ service: ServiceInfo; tasks: SwarmTask[] } | undefined> {
    const service = await this.findService(environment);
    if (!service) return undefined;
    const tasks = await this.tasksOf(service.ID);
    await this.keepRouted(environment, service, tasks);
    return { service, tasks };
  }

  /**
   * Swarm starts a replacement for a failed task on another host port: when the public port points
   * at no running task (or at nothing since the agent started), it is pointed at one of the
   * service's current deploy. Not while a deploy of the environment runs: apply routes then.
   */
  private async keepRouted(environment: string, service: ServiceInfo, tasks: SwarmTask[]): Promise<void> {
    if (this.applying.has(environment)) return;
    const publicPort = Number(service.Spec.Labels?.[SWARM_LABEL.publicPort]);
    if (!publicPort) return;
    const deploy = service.Spec.Labels?.[SWARM_LABEL.deploy];
    const running = tasks.filter((t) => isCurrent(t) && t.Status.State === 'running' && addressOf(t) && (!deploy || deployOf(t) === deploy));
    const current = this.routed.get(environment);
    if (!running.length || running.some((t) => addressOf(t) === current)) return;
    try {
      await this.routeTo(environment, publicPort, addressOf(running[0])!);
    } catch (e) {
      reportUnexpected(e);
    }
  }

  private async routeTo(environment: string, publicPort: number, address: string): Promise<void> {
    await this.services.route(environment, publicPort, address);
    this.routed.set(environment, address);
  }

  private async requireManager(): Promise<void> {
    let info: { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    try {
      info = await this.docker.info();
    } catch (e) {
      throw this.asError(e);
    }
    const state = info.Swarm?.LocalNodeState ?? 'inactive';
    if (state !== 'active' || !info.Swarm?.ControlAvailable) throw new SwarmUnavailableError(notManagerMessage(state));
  }

  private async findService(environment: string): Promise<ServiceInfo | undefined> {
    const settings = this.settingsFor(environment);
    try {
      const list = (await this.docker.listServices({
        filters: { label: environmentFilter(settings.scope, environment) },
      })) as unknown as ServiceInfo[];
      const name = this.serviceName(environment);
      return list.find((s) => s.Spec.Name === name) ?? list[0];
    } catch (e) {
      throw this.asError(e);
    }
  }

  private async inspectService(id: string): Promise<ServiceInfo | undefined> {
    try {
      return (await this.docker.getService(id).inspect()) as ServiceInfo;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.asError(e);
    }
  }

  private async tasksOf(serviceId: string): Promise<SwarmTask[]> {
    try {
      return (await this.docker.listTasks({ filters: { service: [serviceId] } })) as SwarmTask[];
    } catch (e) {
      throw this.asError(e);
    }
  }

  /** Running tasks of one deploy (null: any) that publish an address. */
  private async servingTasks(serviceId: string, deploy: string | null): Promise<SwarmTask[]> {
    return (await this.tasksOf(serviceId)).filter((t) => isCurrent(t) && t.Status.State === 'running' && addressOf(t) && (deploy === null || deployOf(t) === deploy));
  }

  /** Why a task failed (swarm's error, and the health check's last output when it was unhealthy) and its last log lines. */
  private async taskFailure(task: SwarmTask, lines: number): Promise<{ reason: string; log: string }> {
    let reason = `task ${task.Slot ?? '?'} (${task.ID.slice(0, 12)}) ${task.Status.State}${task.Status.Err ? `: ${task.Status.Err}` : ''}`;
    const container = task.Status.ContainerStatus?.ContainerID;
    if (container && /unhealthy/.test(task.Status.Err ?? '')) {
      try {
        const info = (await this.docker.getContainer(container).inspect()) as { State?: { Health?: { Log?: { Output?: string }[] } } };
        const last = info.State?.Health?.Log?.at(-1)?.Output?.trim();
        if (last) reason += ` (health check: ${last.split('\n').pop()})`;
      } catch {
        // the container is gone already
      }
    }
    return { reason, log: await this.taskLog(task.ID, lines) };
  }

  private taskLog(taskId: string, lines: number): Promise<string> {
    // dockerode has Task.logs (GET /tasks/{id}/logs); its typings lack it.
    return tailLog(this.docker.getTask(taskId) as Docker.Task & LogSource, lines);
  }

  /** Removes a service, then waits (up to 10 s) for swarm to remove its tasks' containers, and removes what is left. */
  private async removeService(id: string): Promise<void> {
    try {
      await this.docker.getService(id).remove();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw this.asError(e);
    }
    const left = () => this.docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.id=${id}`] } }).catch(() => []);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await left()).length) await sleep(POLL_MS);
    await Promise.all((await left()).map((c) => this.docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  }

  /** The service's name: unique per agent (scope) and environment, readable in `docker service ls`. */
  private serviceName(environment: string): string {
    const scope = this.settingsFor(environment).scope;
    const slug = environment.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'env';
    const hash = createHash('sha256').update(`${scope}\0${environment}`).digest('hex').slice(0, 10);
    return `conveyor-${slug}-${hash}`;
  }

  private settingsFor(environment: string): Required<Omit<SwarmRuntimeSettings, 'memoryMb' | 'cpus'>> & SwarmRuntimeSettings {
    return resolveSettings(this.settings, environment, { ...DEFAULTS, labels: {}, scope: this.defaultScope });
  }

  private describe(e: unknown): string {
    if (e instanceof SwarmUnavailableError) return e.message;
    if (isNotManager(e)) return notManagerMessage('inactive');
    return describeDockerError(this.docker, e);
  }

  private asError(e: unknown): Error {
    if (e instanceof SwarmUnavailableError) return e;
    if (isDaemonUnreachable(e)) return new Error(daemonUnreachableMessage(this.docker, e));
    if (isNotManager(e)) return new SwarmUnavailableError(notManagerMessage('inactive'));
    return e instanceof Error ? e : new Error(String(e));
  }
}

/**
 * The environment's health check, run inside each task's container, so that swarm sees a task
 * that never gets healthy (and rolls the update back) and reports a task running only once it is
 * healthy. HTTP uses wget (busybox and most images) or curl; TCP uses nc. The start period is
 * the check's timeout: failures before it do not count. A `command` check stays on the host (it
 * may use tools the image lacks): the agent probes each task from the host instead.
 */
export function containerHealthCheck(check: HealthCheck, containerPort: number): Docker.HealthConfig | undefined {
  const timeoutSec = Math.max(1, Math.round(Math.min(Math.max(check.intervalMs * 2, 1000), 5000) / 1000));
  let test: string;
  if (check.kind === 'http') {
    const url = shellQuote(`http://127.0.0.1:${containerPort}${check.path.startsWith('/') ? '' : '/'}${check.path}`);
    // No `wget -T`: busybox's static wget crashes with it; the check's Timeout bounds the probe anyway.
    test = `if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null ${url}; else curl -fsS -m ${timeoutSec} -o /dev/null ${url}; fi`;
  } else if (check.kind === 'tcp') {
    test = `nc -z -w ${timeoutSec} 127.0.0.1 ${containerPort} 2>/dev/null || nc -w ${timeoutSec} 127.0.0.1 ${containerPort} </dev/null`;
  } else {
    return undefined;
  }
  return {
    Test: ['CMD-SHELL', test],
    Interval: ms(Math.max(check.intervalMs, 500)),
    Timeout: ms(timeoutSec * 1000),
    StartPeriod: ms(check.timeoutMs),
    Retries: 3,
  };
}

/** What to do when the daemon is no swarm manager. */
function notManagerMessage(state: string): string {
  return `this Docker daemon is not a swarm manager (swarm state: ${state}), so it cannot run the swarm runtime's services: run \`docker swarm init --advertise-addr 127.0.0.1\` for a single-node swarm, or point DOCKER_HOST at a manager of your swarm`;
}

function isNotManager(e: unknown): boolean {
  const code = (e as { statusCode?: number }).statusCode;
  return code === 503 && /not a swarm manager|swarm/i.test(dockerMessage(e));
}

// -- internals -----------------------------------------------------------------------------------

const DEFAULT_CHECK: HealthCheck = { kind: 'tcp', timeoutMs: 30_000, intervalMs: 500 };

/** The ServiceSpec this runtime writes (dockerode's typings lack some of its fields). */
interface SwarmServiceSpec {
  Name: string;
  Labels: Record<string, string>;
  TaskTemplate: {
    ContainerSpec: Docker.ContainerSpec & { Image: string };
    RestartPolicy: Docker.TaskRestartPolicy;
    Resources: { Limits: { MemoryBytes?: number; NanoCPUs?: number } };
  };
  Mode: { Replicated: { Replicas: number } };
  UpdateConfig: Docker.UpdateConfig;
  RollbackConfig: Docker.UpdateConfig;
  EndpointSpec: Docker.EndpointSpec;
}

/** A service as the daemon returns it. */
interface ServiceInfo {
  ID: string;
  Version?: { Index?: number };
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    TaskTemplate?: { ContainerSpec?: { Labels?: Record<string, string> } };
    Mode?: { Replicated?: { Replicas?: number } };
  };
  UpdateStatus?: { State?: 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed'; StartedAt?: string; Message?: string };
}

/** A task as the daemon returns it (GET /tasks). */
interface SwarmTask {
  ID: string;
  Slot?: number;
  CreatedAt?: string;
  DesiredState: string;
  Spec: { ContainerSpec?: { Image?: string; Env?: string[]; Labels?: Record<string, string> } };
  Status: {
    State: string;
    Timestamp?: string;
    Err?: string;
    ContainerStatus?: { ContainerID?: string; ExitCode?: number };
    PortStatus?: { Ports?: { TargetPort?: number; PublishedPort?: number; PublishMode?: string }[] };
  };
}

type Converged = { ok: true } | { ok: false; reason: string; log: string; rolledBackBySwarm: boolean };

/** Swarm means to keep the task (running, or restarting it after a delay). */
function isCurrent(t: SwarmTask): boolean {
  return t.DesiredState === 'running' || t.DesiredState === 'ready';
}

function isFailed(t: SwarmTask): boolean {
  return t.Status.State === 'failed' || t.Status.State === 'rejected';
}

function isFailedTask(t: SwarmTask | undefined): boolean {
  return !!t && isFailed(t);
}

function deployOf(t: SwarmTask): string | undefined {
  return t.Spec.ContainerSpec?.Labels?.[SWARM_LABEL.deploy];
}

function slotsOf(tasks: SwarmTask[]): Set<number | undefined> {
  return new Set(tasks.map((t) => t.Slot));
}

function newest(tasks: SwarmTask[]): SwarmTask | undefined {
  return [...tasks].sort((a, b) => stamp(b) - stamp(a))[0];
}

function stamp(t: SwarmTask): number {
  return Date.parse(t.Status.Timestamp ?? t.CreatedAt ?? '') || 0;
}

/** The host address of a running task: its container port, published in host mode. */
function addressOf(t: SwarmTask): string | null {
  if (t.Status.State !== 'running') return null;
  const target = Number(t.Spec.ContainerSpec?.Labels?.[SWARM_LABEL.containerPort]);
  const port = (t.Status.PortStatus?.Ports ?? []).find((p) => p.PublishMode === 'host' && p.PublishedPort && (!target || p.TargetPort === target));
  return port ? `127.0.0.1:${port.PublishedPort}` : null;
}

/** The current tasks, and for each slot without a running task, its task that failed last. */
function visibleTasks(tasks: SwarmTask[]): SwarmTask[] {
  const current = tasks.filter(isCurrent);
  const out = [...current];
  for (const slot of slotsOf(current)) {
    if (current.some((t) => t.Slot === slot && t.Status.State === 'running')) continue;
    const failed = newest(tasks.filter((t) => t.Slot === slot && !isCurrent(t)));
    if (failed && isFailed(failed)) out.push(failed);
  }
  return out.sort((a, b) => (a.Slot ?? 0) - (b.Slot ?? 0) || stamp(a) - stamp(b));
}

function toLive(t: SwarmTask, environment: string): LiveInstance {
  const labels = t.Spec.ContainerSpec?.Labels ?? {};
  const secret = new Set((labels[SWARM_LABEL.secretKeys] ?? '').split(',').filter(Boolean));
  const env = envOf(t.Spec.ContainerSpec?.Env, (k) => !secret.has(k));
  const image = t.Spec.ContainerSpec?.Image ?? '';
  const s = t.Status.State;
  const state: LiveInstance['state'] = s === 'running' ? 'running' : TERMINAL.has(s) ? 'exited' : STARTING.has(s) ? 'starting' : 'unknown';
  return {
    id: t.ID,
    environment: labels[SWARM_LABEL.environment] ?? environment,
    release: Number(labels[SWARM_LABEL.release]),
    // What the task really runs (`docker service update --image` changes it, not the labels).
    artifactDigest: runningDigest(image, labels),
    address: addressOf(t),
    state,
    env,
    labels,
  };
}

const STARTING = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting']);
const TERMINAL = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

function fail(reason: string, log: string, restored: boolean): ApplyResult {
  return { ok: false, reason, log, restored };
}

/** Milliseconds as the nanoseconds swarm's durations are. */
function ms(value: number): number {
  return Math.round(value * 1e6);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
