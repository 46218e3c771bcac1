import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Masker } from '../engine/secrets';
import type { DeployStrategy, HealthCheck, HealthStatus, LiveInstance, LiveState, Release } from '../protocol';
import { Emitter, toDisposable, type IDisposable } from '../util/lifecycle';
import { probeOnce, waitHealthy } from './health';
import type { ApplyContext, ApplyResult, DesiredState, Runtime, RuntimeServices } from './runtime';
import { safeSegment, unpackRelease } from './unpack';
import { groupExists, isAlive } from '../util/process';

/**
 * What the runtime needs of the agent's traffic switches (see SwitchBoard in proxy.ts) beyond
 * RuntimeServices.route: to know when an old instance carries no connection any more, and to
 * stop serving a removed environment.
 */
export interface TrafficControl {
  drain(environment: string, upstream: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(environment: string): void;
}

export interface ProcessRuntimeOptions {
  /**
   * The agent's SwitchBoard. Without it the runtime cannot see an old instance's open connections:
   * it waits a second after the switch, then stops the instance, which can cut a longer request.
   */
  traffic?: TrafficControl;
  /** Variables of the agent's own environment every instance gets (default: INHERITED_ENV). */
  inheritEnv?: readonly string[];
  /** After SIGTERM, how long an instance's process group has before SIGKILL. Default 5 s. */
  stopGraceMs?: number;
  /** How long blue-green waits for the old instance's connections to finish. Default 30 s. */
  drainTimeoutMs?: number;
  /** How often instances the runtime did not start itself (found after a restart) are checked. Default 2 s. */
  pollMs?: number;
  /** Restart delays after a crash: doubling from the first to the most. Default 500 ms to 30 s. */
  restartDelayMs?: { first: number; most: number };
  /** An instance that ran this long before it crashed is restarted after the first delay again. Default 30 s. */
  stableMs?: number;
  /** Restart crashed instances while the agent runs. Default true. */
  supervise?: boolean;
  /** Where the runtime's own notes go (restarts, instances found gone): the agent's log. */
  log?: (message: string) => void;
}

/** Variables taken from the agent's environment into every instance's. */
export const INHERITED_ENV: readonly string[] = [
  'PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ',
  'TMPDIR', 'TMP', 'TEMP', 'XDG_RUNTIME_DIR', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy',
  'no_proxy', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR',
];

/** How many lines of an instance's log a failed deploy carries. */
const LOG_TAIL_LINES = 40;
/** Without TrafficControl, how long an old instance keeps running after the switch moved away from it. */
const UNTRACKED_DRAIN_MS = 1000;
/** How many unpacked releases of an environment stay on disk besides those running. */
const KEEP_UNPACKED = 3;
/** After an instance exits, how long its log relay may take to write the rest of its output. */
const RELAY_DRAIN_MS = 1000;

/** One instance as the state file records it. */
export interface InstanceRecord {
  release: number;
  digest: string;
  port: number;
  pid: number;
  /** Field 22 of /proc/<pid>/stat when the instance started: tells it from a process that reused its pid. */
  procStart: string | null;
  startedAt: string;
  dir: string;
  log: string;
  /** live: what the switch points at; candidate: a deploy is checking it; draining: being retired. */
  role: 'live' | 'candidate' | 'draining';
  restarts: number;
}

/**
 * The state file of one environment, `<stateDir>/environments/<env>.json`: what runs, so that an
 * agent started again finds instances that outlived the one before. Secrets are never in it.
 */
export interface EnvironmentFile {
  version: 1;
  environment: string;
  publicPort: number;
  healthCheck: HealthCheck;
  /** The releases the instances run, by number; with the names (not the values) of their secrets. */
  releases: Record<string, { release: Release; secretNames: string[] }>;
  instances: InstanceRecord[];
  updatedAt: string;
}

class Instance {
  child: ChildProcess | null = null;
  /** The full environment it runs with (secrets included): memory only. Null when unknown. */
  env: Record<string, string> | null = null;
  alive = false;
  stopping = false;
  /** Restarted by the supervisor when it crashes (the live instance, once a deploy accepted it). */
  supervised = false;
  /** Answered its health check since it (re)started. */
  healthy = false;
  restartTimer: NodeJS.Timeout | undefined;
  /** Crashes in a row, each soon after its start: the restart delay doubles with each. */
  quickCrashes = 0;
  lastExit: string | null = null;
  /** Why a crashed instance cannot be restarted (then only a deploy helps). */
  cannotRestart: string | null = null;
  startedAtMs = Date.now();
  /** Where the current run's output starts in the log file. */
  logOffset = 0;
  readonly exitListeners = new Set<() => void>();
  constructor(public rec: InstanceRecord) {}
  get address(): string {
    return `127.0.0.1:${this.rec.port}`;
  }
}

class Environment {
  file: EnvironmentFile | null = null;
  instances: Instance[] = [];
  applying = false;
  readonly onChange = new Emitter<void>();
  loaded: Promise<void> | null = null;
  constructor(readonly name: string) {}
  live(): Instance | undefined {
    return this.instances.find((i) => i.rec.role === 'live');
  }
}

type Failure = { ok: false; reason: string; log: string; restored: boolean };

/**
 * The embedded default runtime: a release runs as local processes, no Docker needed.
 *
 * An instance is `release.command`, started in the release's unpacked folder (see unpack.ts) in a
 * process group of its own, detached from the agent: it keeps running when the agent stops. Its
 * environment is a few of the agent's variables (INHERITED_ENV), then release.env, then the
 * secrets, then PORT (a port the agent allocated, on which the instance must listen on
 * 127.0.0.1), CONVEYOR_ENVIRONMENT and CONVEYOR_RELEASE. Its output is appended to
 * `<stateDir>/logs/<env>/<release>-<port>.log`; when it has secrets, through a relay process that
 * masks them (a detached one, so that the instance keeps its output going when the agent stops).
 *
 * Users reach the environment on its public port through the agent's switch
 * (RuntimeServices.route), which points at the live instance:
 *
 *   recreate:   stop old ──> start new ──> route ──> healthy? ──no──> stop new, start old again
 *   blue-green: start new beside old ──> healthy? ──no──> stop new (old never stopped serving)
 *                                          └─yes──> route ──> drain old ──> stop old
 *
 * While the agent runs, a live instance that exits is started again (same port, so the switch
 * needs no change) after a delay that doubles with each quick crash. What runs is written to a
 * state file per environment, so that an agent started again adopts the instances (a reused pid
 * is told apart by its start time), points the switch at the live one and supervises it.
 */
export class ProcessRuntime implements Runtime {
  readonly name = 'process' as const;
  private readonly envs = new Map<string, Environment>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly pollTimer: NodeJS.Timeout;
  private readonly watcher: fs.FSWatcher | undefined;
  private readonly fileEvents = new Map<string, NodeJS.Timeout>();
  private disposed = false;
  private readonly o: Required<Omit<ProcessRuntimeOptions, 'traffic' | 'log'>> & Pick<ProcessRuntimeOptions, 'traffic' | 'log'>;

  constructor(
    private readonly services: RuntimeServices,
    options: ProcessRuntimeOptions = {},
  ) {
    this.o = {
      inheritEnv: INHERITED_ENV,
      stopGraceMs: 5000,
      drainTimeoutMs: 30_000,
      pollMs: 2000,
      restartDelayMs: { first: 500, most: 30_000 },
      stableMs: 30_000,
      supervise: true,
      ...options,
    };
    fs.mkdirSync(this.envFolder, { recursive: true, mode: 0o700 });
    this.pollTimer = setInterval(() => this.poll(), this.o.pollMs);
    this.pollTimer.unref();
    try {
      this.watcher = fs.watch(this.envFolder, (_event, filename) => filename && this.onFileEvent(String(filename)));
      this.watcher.on('error', () => undefined);
      this.watcher.unref();
    } catch {
      // No file watching here: polling still notices exits.
    }
  }

  private get envFolder(): string {
    return path.join(this.services.stateDir, 'environments');
  }

  private stateFile(env: string): string {
    return path.join(this.envFolder, `${safeSegment(env)}.json`);
  }

  /**
   * Adopts the instances of every environment that has a state file: for an agent that starts.
   * Each live instance gets its switch back; crashed ones are restarted. Returns the environments.
   */
  async restore(): Promise<string[]> {
    const names: string[] = [];
    for (const f of fs.readdirSync(this.envFolder)) {
      if (!f.endsWith('.json')) continue;
      const file = readStateFile(path.join(this.envFolder, f));
      if (!file) continue;
      names.push(file.environment);
      await this.load(file.environment);
    }
    return names;
  }

  // -------------------------------------------------------------------------------------------
  // Runtime

  async apply(desired: DesiredState, strategy: DeployStrategy, ctx: ApplyContext): Promise<ApplyResult> {
    const envName = desired.release.environment;
    const env = await this.load(envName);
    return this.withLock(envName, async () => {
      env.applying = true;
      this.fire(env);
      try {
        const result = strategy === 'recreate' ? await this.recreate(env, desired, ctx) : await this.blueGreen(env, desired, ctx);
        if (result.ok) this.pruneReleases(env);
        return result;
      } finally {
        env.applying = false;
        this.fire(env);
      }
    });
  }

  async observe(environment: string): Promise<LiveState> {
    const env = await this.load(environment);
    this.poll(env);
    return this.liveState(env);
  }

  watch(environment: string, onChange: () => void): IDisposable {
    const env = this.env(environment);
    const sub = env.onChange.event(onChange);
    void this.load(environment).catch(() => undefined);
    return toDisposable(() => sub.dispose());
  }

  async health(environment: string): Promise<HealthStatus> {
    const env = await this.load(environment);
    this.poll(env);
    if (env.applying) return 'Progressing';
    const live = env.live();
    if (!live || !env.file) return 'Missing';
    if (!live.alive) return 'Degraded';
    const r = await probeOnce(live.address, env.file.healthCheck);
    if (r.ok) {
      if (!live.healthy) {
        live.healthy = true;
        this.fire(env);
      }
      return 'Healthy';
    }
    if (!live.healthy && Date.now() - live.startedAtMs < env.file.healthCheck.timeoutMs) return 'Progressing';
    return 'Degraded';
  }

  async remove(environment: string): Promise<void> {
    const env = await this.load(environment);
    await this.withLock(environment, async () => {
      for (const inst of env.instances) await this.stopInstance(env, inst, 'the environment was removed');
      env.instances = [];
      env.file = null;
      fs.rmSync(this.stateFile(environment), { force: true });
      fs.rmSync(path.join(this.services.stateDir, 'releases', safeSegment(environment)), { recursive: true, force: true });
      this.o.traffic?.close(environment);
      this.fire(env);
    });
  }

  /** Stops supervising. The instances keep running; a runtime created later adopts them. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.pollTimer);
    this.watcher?.close();
    for (const t of this.fileEvents.values()) clearTimeout(t);
    for (const env of this.envs.values()) {
      for (const inst of env.instances) clearTimeout(inst.restartTimer);
      env.onChange.dispose();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Deploy strategies

  private async blueGreen(env: Environment, desired: DesiredState, ctx: ApplyContext): Promise<ApplyResult> {
    const release = desired.release;
    const old = env.live();
    const oldServes = () => !!old?.alive;
    const prepared = await this.prepare(desired, ctx);
    if ('reason' in prepared) return { ...prepared, restored: oldServes() };
    if (ctx.signal.aborted) return fail('cancelled before anything started', '', oldServes());

    const inst = await this.startCandidate(env, desired, prepared, 'candidate', ctx);
    if ('reason' in inst) return { ...inst, restored: oldServes() };
    const ready = await this.waitReady(inst, desired.healthCheck, ctx.signal);
    if (!ready.ok) {
      const log = this.logTail(inst);
      await this.retire(env, inst, ready.cancelled ? 'the deploy was cancelled' : 'it did not get healthy');
      return fail(`release ${release.number} ${ready.reason}${old && oldServes() ? `; release ${old.rec.release} keeps serving` : ''}`, log, oldServes());
    }
    ctx.progress(`release ${release.number} is healthy on ${inst.address}`);

    try {
      await this.services.route(env.name, desired.publicPort, inst.address);
    } catch (e) {
      await this.retire(env, inst, 'its traffic could not be switched');
      return fail(`release ${release.number} is healthy but the switch could not take it: ${(e as Error).message}`, '', oldServes());
    }
    this.promote(env, inst, desired);
    ctx.progress(`127.0.0.1:${desired.publicPort} now goes to release ${release.number}`);

    for (const prev of env.instances.filter((i) => i !== inst)) {
      if (prev.alive && this.o.traffic) {
        ctx.progress(`waiting for release ${prev.rec.release}'s open connections to finish (up to ${Math.round(this.o.drainTimeoutMs / 1000)}s)`);
        const drained = await this.o.traffic.drain(env.name, prev.address, this.o.drainTimeoutMs, ctx.signal);
        if (ctx.signal.aborted && prev === old && prev.alive) {
          // Cancelled before the old release was stopped: it takes the traffic back.
          try {
            await this.services.route(env.name, desired.publicPort, prev.address);
            prev.rec.role = 'live';
            prev.supervised = true;
            await this.retire(env, inst, 'the deploy was cancelled');
            return fail('cancelled: the previous release took the traffic back', '', true);
          } catch {
            // The switch cannot go back: the new release stays.
          }
        }
        if (!drained && !ctx.signal.aborted) ctx.progress(`release ${prev.rec.release} still had connections open; stopping it anyway`);
      } else if (prev.alive) {
        // No way to see the old instance's connections: give short requests a moment to finish.
        await new Promise((r) => setTimeout(r, Math.min(UNTRACKED_DRAIN_MS, this.o.drainTimeoutMs)));
      }
      await this.retire(env, prev, `replaced by release ${release.number}`);
      ctx.progress(`stopped release ${prev.rec.release} (pid ${prev.rec.pid})`);
    }
    return { ok: true, live: this.liveState(env) };
  }

  private async recreate(env: Environment, desired: DesiredState, ctx: ApplyContext): Promise<ApplyResult> {
    const release = desired.release;
    const old = env.live();
    const prepared = await this.prepare(desired, ctx);
    if ('reason' in prepared) return { ...prepared, restored: !!old?.alive };
    if (ctx.signal.aborted) return fail('cancelled before anything started', '', !!old?.alive);

    // What it takes to start the old release again if the new one fails.
    const previous = old && env.file ? { rec: { ...old.rec }, env: old.env, entry: env.file.releases[String(old.rec.release)] } : undefined;
    for (const prev of [...env.instances]) {
      ctx.progress(`stopping release ${prev.rec.release} (pid ${prev.rec.pid})`);
      await this.retire(env, prev, `replaced by release ${release.number}`);
    }

    const restore = async (failure: Failure): Promise<ApplyResult> => {
      if (!previous) return failure;
      const back = await this.startAgain(env, previous, desired, ctx);
      return {
        ...failure,
        reason: failure.reason + (back.ok ? `; release ${previous.rec.release} was started again` : `; release ${previous.rec.release} could not be started again either: ${back.reason}`),
        restored: back.ok,
      };
    };

    const inst = await this.startCandidate(env, desired, prepared, 'live', ctx);
    if ('reason' in inst) return restore(inst);
    try {
      await this.services.route(env.name, desired.publicPort, inst.address);
    } catch (e) {
      await this.retire(env, inst, 'its traffic could not be switched');
      return restore(fail(`release ${release.number} cannot be served: ${(e as Error).message}`, '', false));
    }
    const ready = await this.waitReady(inst, desired.healthCheck, ctx.signal);
    if (!ready.ok) {
      const log = this.logTail(inst);
      await this.retire(env, inst, ready.cancelled ? 'the deploy was cancelled' : 'it did not get healthy');
      return restore(fail(`release ${release.number} ${ready.reason}`, log, false));
    }
    this.promote(env, inst, desired);
    ctx.progress(`release ${release.number} is healthy and serves 127.0.0.1:${desired.publicPort}`);
    return { ok: true, live: this.liveState(env) };
  }

  /** Starts the release that ran before a failed recreate, on a fresh port. */
  private async startAgain(
    env: Environment,
    previous: { rec: InstanceRecord; env: Record<string, string> | null; entry: { release: Release; secretNames: string[] } | undefined },
    desired: DesiredState,
    ctx: ApplyContext,
  ): Promise<{ ok: true } | { ok: false; reason: string }> {
    const entry = previous.entry;
    if (!entry) return { ok: false, reason: 'its release is not recorded' };
    if (!previous.env && entry.secretNames.length) {
      return { ok: false, reason: 'its secrets are not known since the agent restarted; deploy it again' };
    }
    const port = await this.services.allocatePort();
    const inst = new Instance({ ...previous.rec, port, pid: 0, procStart: null, role: 'live', restarts: 0, log: this.logPath(env.name, previous.rec.release, port) });
    env.file ??= { version: 1, environment: env.name, publicPort: desired.publicPort, healthCheck: desired.healthCheck, releases: {}, instances: [], updatedAt: '' };
    env.file.releases[String(entry.release.number)] = entry;
    inst.env = { ...(previous.env ?? this.instanceEnv(entry.release, {}, port)), PORT: String(port) };
    env.instances.push(inst);
    try {
      await this.spawnInstance(env, inst);
    } catch (e) {
      env.instances = env.instances.filter((i) => i !== inst);
      this.persist(env);
      return { ok: false, reason: (e as Error).message };
    }
    this.persist(env);
    ctx.progress(`starting release ${entry.release.number} again (pid ${inst.rec.pid}, ${inst.address})`);
    // The check the old release passed when it was deployed (the new one's may differ).
    const ready = await this.waitReady(inst, env.file?.healthCheck ?? desired.healthCheck, undefined);
    if (!ready.ok) {
      await this.retire(env, inst, 'it did not get healthy again');
      return { ok: false, reason: ready.reason };
    }
    try {
      await this.services.route(env.name, desired.publicPort, inst.address);
    } catch (e) {
      // It runs (reachable on its own port) and stays supervised; the public port is the problem.
      inst.supervised = true;
      return { ok: false, reason: (e as Error).message };
    }
    inst.supervised = true;
    this.persist(env);
    this.fire(env);
    return { ok: true };
  }

  /** Checks the release and unpacks it. */
  private async prepare(desired: DesiredState, ctx: ApplyContext): Promise<{ dir: string; command: string[] } | Failure> {
    const release = desired.release;
    if (release.artifact.kind !== 'files') {
      return fail(`release ${release.number} is an image (${release.artifact.repository}); the process runtime runs files artifacts: use the docker runtime for images`, '', false);
    }
    if (!release.command.length || !release.command[0]) {
      return fail(`release ${release.number} has no command: say what to run in the unpacked folder, e.g. ["node", "src/server.js"]`, '', false);
    }
    if (release.replicas > 1) {
      ctx.progress(`the process runtime runs one instance per release; replicas: ${release.replicas} is ignored`);
    }
    const artifactName = path.basename(release.artifact.name);
    const runsTheFile = release.command[0] === artifactName || release.command[0] === `./${artifactName}`;
    try {
      const unpacked = await unpackRelease(this.services, release, { executable: runsTheFile });
      ctx.progress(
        unpacked.created
          ? `unpacked ${release.artifact.name} (${release.artifact.digest.slice(0, 19)}) into ${unpacked.dir}`
          : `release ${release.number} is already unpacked in ${unpacked.dir}`,
      );
      // A single file run by its name is run from the folder, not looked up on PATH.
      const command = runsTheFile && unpacked.format === 'file' ? [path.join(unpacked.dir, artifactName), ...release.command.slice(1)] : release.command;
      return { dir: unpacked.dir, command };
    } catch (e) {
      return fail(`release ${release.number} cannot be unpacked: ${(e as Error).message}`, '', false);
    }
  }

  private async startCandidate(
    env: Environment,
    desired: DesiredState,
    prepared: { dir: string; command: string[] },
    role: 'candidate' | 'live',
    ctx: ApplyContext,
  ): Promise<Instance | Failure> {
    const release = desired.release;
    const port = await this.services.allocatePort();
    const inst = new Instance({
      release: release.number,
      digest: release.artifact.digest,
      port,
      pid: 0,
      procStart: null,
      startedAt: new Date().toISOString(),
      dir: prepared.dir,
      log: this.logPath(env.name, release.number, port),
      role,
      restarts: 0,
    });
    inst.env = this.instanceEnv(release, desired.secrets, port);
    if (!env.file) {
      env.file = { version: 1, environment: env.name, publicPort: desired.publicPort, healthCheck: desired.healthCheck, releases: {}, instances: [], updatedAt: '' };
    }
    env.file.releases[String(release.number)] = { release, secretNames: Object.keys(desired.secrets).sort() };
    env.instances.push(inst);
    try {
      await this.spawnInstance(env, inst, prepared.command);
    } catch (e) {
      const log = this.logTail(inst);
      env.instances = env.instances.filter((i) => i !== inst);
      this.persist(env);
      return fail(`release ${release.number} could not start: ${(e as Error).message}`, log, false);
    }
    this.persist(env);
    this.fire(env);
    ctx.progress(`started release ${release.number} (pid ${inst.rec.pid}) on ${inst.address}: ${prepared.command.join(' ')}`);
    return inst;
  }

  /** The new instance serves: it is the live one, supervised; the others are on their way out. */
  private promote(env: Environment, inst: Instance, desired: DesiredState): void {
    for (const other of env.instances) if (other !== inst && other.rec.role === 'live') other.rec.role = 'draining';
    inst.rec.role = 'live';
    inst.supervised = true;
    inst.healthy = true;
    env.file!.publicPort = desired.publicPort;
    env.file!.healthCheck = desired.healthCheck;
    this.persist(env);
    this.fire(env);
  }

  /** Stops an instance and forgets it. */
  private async retire(env: Environment, inst: Instance, why: string): Promise<void> {
    await this.stopInstance(env, inst, why);
    env.instances = env.instances.filter((i) => i !== inst);
    this.persist(env);
    this.fire(env);
  }

  /**
   * Waits until the instance answers its health check; stops waiting when it exits (the reason
   * says how) or the deploy is cancelled.
   */
  private async waitReady(inst: Instance, check: HealthCheck, signal: AbortSignal | undefined): Promise<{ ok: true } | { ok: false; reason: string; cancelled: boolean }> {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    inst.exitListeners.add(onAbort);
    try {
      if (!inst.alive) return { ok: false, reason: `${inst.lastExit ?? 'exited'} before it got healthy`, cancelled: false };
      const r = await waitHealthy(inst.address, check, stop.signal);
      if (r.ok) {
        inst.healthy = true;
        return { ok: true };
      }
      if (!inst.alive) return { ok: false, reason: `${inst.lastExit ?? 'exited'} before it got healthy`, cancelled: false };
      if (signal?.aborted) return { ok: false, reason: 'was cancelled before it got healthy', cancelled: true };
      return { ok: false, reason: `never got healthy: ${r.reason}`, cancelled: false };
    } finally {
      signal?.removeEventListener('abort', onAbort);
      inst.exitListeners.delete(onAbort);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Instances

  private instanceEnv(release: Release, secrets: Record<string, string>, port: number): Record<string, string> {
    const base: Record<string, string> = {};
    for (const k of this.o.inheritEnv) if (process.env[k] !== undefined) base[k] = process.env[k]!;
    return { ...base, ...release.env, ...secrets, PORT: String(port), CONVEYOR_ENVIRONMENT: release.environment, CONVEYOR_RELEASE: String(release.number) };
  }

  private logPath(env: string, release: number, port: number): string {
    return path.join(this.services.stateDir, 'logs', safeSegment(env), `${release}-${port}.log`);
  }

  /** Starts (or starts again) the instance's process; resolves once it runs, rejects when it cannot start. */
  private async spawnInstance(env: Environment, inst: Instance, command?: string[]): Promise<void> {
    const entry = env.file?.releases[String(inst.rec.release)];
    const argv = command ?? this.commandOf(inst, entry?.release);
    const masker = new Masker((entry?.secretNames ?? []).map((name) => inst.env?.[name] ?? ''));
    fs.mkdirSync(path.dirname(inst.rec.log), { recursive: true, mode: 0o700 });
    const fd = fs.openSync(inst.rec.log, 'a', 0o600);
    let child: ChildProcess;
    let relay: ChildProcess | null = null;
    try {
      inst.logOffset = fs.fstatSync(fd).size;
      fs.writeSync(fd, masker.mask(`[conveyor] ${new Date().toISOString()} starting release ${inst.rec.release} on port ${inst.rec.port}: ${argv.join(' ')}\n`));
      relay = await startRelay(masker, fd);
      const out = relay?.stdin ?? fd;
      child = spawn(argv[0], argv.slice(1), { cwd: inst.rec.dir, env: inst.env ?? {}, detached: true, stdio: ['ignore', out, out] });
    } finally {
      fs.closeSync(fd);
      // The instance holds the relay's input now: the relay ends when the instance's output does.
      relay?.stdin?.destroy();
    }
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e: NodeJS.ErrnoException) => {
        const why =
          e.code === 'ENOENT'
            ? `"${argv[0]}" was not found (${argv[0].includes('/') ? `no such file in ${inst.rec.dir}` : `not on PATH: ${inst.env?.PATH ?? ''}`})`
            : `"${argv[0]}": ${e.code ?? e.message}`;
        appendLog(inst.rec.log, `[conveyor] could not start: ${why}\n`);
        reject(new Error(why));
      });
    });
    child.unref();
    inst.child = child;
    inst.alive = true;
    inst.healthy = false;
    inst.stopping = false;
    inst.lastExit = null;
    inst.startedAtMs = Date.now();
    inst.rec.pid = child.pid!;
    inst.rec.procStart = readProcStat(child.pid!)?.start ?? null;
    inst.rec.startedAt = new Date().toISOString();
    child.once('exit', (code, signal) => {
      // What the instance printed last (which a failed deploy shows) is in its log once the relay wrote it.
      const exited = () => this.onExit(env, inst, child, code, signal);
      if (!relay || inst.stopping || relay.exitCode !== null || relay.signalCode !== null) return exited();
      const timer = setTimeout(exited, RELAY_DRAIN_MS);
      relay.once('exit', () => {
        clearTimeout(timer);
        exited();
      });
    });
  }

  private commandOf(inst: Instance, release: Release | undefined): string[] {
    if (!release) throw new Error(`release ${inst.rec.release} is not recorded`);
    const name = release.artifact.kind === 'files' ? path.basename(release.artifact.name) : '';
    const single = fs.existsSync(path.join(inst.rec.dir, name)) && fs.statSync(path.join(inst.rec.dir, name)).isFile();
    if (single && (release.command[0] === name || release.command[0] === `./${name}`)) return [path.join(inst.rec.dir, name), ...release.command.slice(1)];
    return release.command;
  }

  private onExit(env: Environment, inst: Instance, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (inst.child !== child) return;
    inst.child = null;
    this.gone(env, inst, signal ? `was killed by ${signal}` : `exited with code ${code}`);
  }

  /** The instance's process is gone (seen by its exit event or by polling). */
  private gone(env: Environment, inst: Instance, how: string): void {
    inst.alive = false;
    inst.healthy = false;
    inst.lastExit = how;
    for (const l of [...inst.exitListeners]) l();
    if (this.disposed) return;
    if (!inst.stopping) {
      appendLog(inst.rec.log, `[conveyor] ${new Date().toISOString()} release ${inst.rec.release} (pid ${inst.rec.pid}) ${how}\n`);
      if (inst.supervised && inst.rec.role === 'live') this.scheduleRestart(env, inst);
    }
    this.fire(env);
  }

  private scheduleRestart(env: Environment, inst: Instance): void {
    if (!this.o.supervise || inst.restartTimer || this.disposed) return;
    if (inst.cannotRestart) {
      this.o.log?.(`${env.name}: release ${inst.rec.release} ${inst.lastExit}; ${inst.cannotRestart}`);
      return;
    }
    if (Date.now() - inst.startedAtMs >= this.o.stableMs) inst.quickCrashes = 0;
    const delay = Math.min(this.o.restartDelayMs.most, this.o.restartDelayMs.first * 2 ** inst.quickCrashes);
    inst.quickCrashes++;
    this.o.log?.(`${env.name}: release ${inst.rec.release} (pid ${inst.rec.pid}) ${inst.lastExit}; starting it again in ${delay} ms`);
    appendLog(inst.rec.log, `[conveyor] starting it again in ${delay} ms\n`);
    inst.restartTimer = setTimeout(() => {
      inst.restartTimer = undefined;
      void this.withLock(env.name, async () => {
        if (this.disposed || inst.stopping || inst.alive || !env.instances.includes(inst)) return;
        try {
          await this.spawnInstance(env, inst);
        } catch (e) {
          this.o.log?.(`${env.name}: release ${inst.rec.release} could not start again: ${(e as Error).message}`);
          this.scheduleRestart(env, inst);
          return;
        }
        inst.rec.restarts++;
        this.persist(env);
        this.fire(env);
        void this.announceHealthy(env, inst);
      });
    }, delay);
    inst.restartTimer.unref();
  }

  /** After a restart: tells the watchers when the instance answers its health check again. */
  private async announceHealthy(env: Environment, inst: Instance): Promise<void> {
    const check = env.file?.healthCheck;
    if (!check) return;
    const r = await this.waitReady(inst, check, undefined);
    if (r.ok && !this.disposed) this.fire(env);
  }

  /** SIGTERM to the instance's process group, SIGKILL after the grace period. */
  private async stopInstance(env: Environment, inst: Instance, why: string): Promise<void> {
    inst.stopping = true;
    clearTimeout(inst.restartTimer);
    inst.restartTimer = undefined;
    const pid = inst.rec.pid;
    if (!pid) return;
    if (!inst.child) {
      // Not started by this runtime: make sure the pid is still the instance before signalling.
      // A process with the pid but another start time reused a free pid, so the instance's group
      // (same id) is gone too: a pid is not handed out while a group of that id exists.
      const stat = readProcStat(pid);
      if (stat && inst.rec.procStart && stat.start !== inst.rec.procStart) {
        if (inst.alive) this.gone(env, inst, 'was found gone');
        return;
      }
    }
    if (!groupExists(pid) && !isAlive(pid)) {
      if (inst.alive) this.gone(env, inst, 'was found gone');
      return;
    }
    appendLog(inst.rec.log, `[conveyor] ${new Date().toISOString()} stopping release ${inst.rec.release} (pid ${pid}): ${why}\n`);
    signalGroup(pid, 'SIGTERM');
    if (!(await waitGone(pid, this.o.stopGraceMs))) {
      appendLog(inst.rec.log, `[conveyor] still running ${this.o.stopGraceMs} ms after SIGTERM: SIGKILL\n`);
      signalGroup(pid, 'SIGKILL');
      await waitGone(pid, 5000);
    }
    if (inst.alive) this.gone(env, inst, 'was stopped');
  }

  /** The last lines the instance printed since it was (last) started. */
  private logTail(inst: Instance): string {
    try {
      const size = fs.statSync(inst.rec.log).size;
      const from = Math.max(inst.logOffset, size - 64 * 1024);
      const fd = fs.openSync(inst.rec.log, 'r');
      try {
        const buf = Buffer.alloc(size - from);
        fs.readSync(fd, buf, 0, buf.length, from);
        return collapseRepeats(buf.toString('utf8').replace(/\n$/, '').split('\n')).slice(-LOG_TAIL_LINES).join('\n');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return '';
    }
  }

  // -------------------------------------------------------------------------------------------
  // State

  private env(name: string): Environment {
    let env = this.envs.get(name);
    if (!env) {
      env = new Environment(name);
      this.envs.set(name, env);
    }
    return env;
  }

  /** Reads the environment's state file once and adopts what still runs. */
  private load(name: string): Promise<Environment> {
    const env = this.env(name);
    if (!env.loaded) env.loaded = this.withLock(name, () => this.adopt(env));
    return env.loaded.then(() => env);
  }

  private async adopt(env: Environment): Promise<void> {
    const file = readStateFile(this.stateFile(env.name));
    if (!file || file.environment !== env.name) return;
    env.file = file;
    const leftovers: Instance[] = [];
    for (const rec of file.instances) {
      const inst = new Instance(rec);
      inst.alive = instanceAlive(rec);
      inst.startedAtMs = Date.parse(rec.startedAt) || Date.now();
      inst.healthy = inst.alive;
      if (inst.alive) inst.env = readEnviron(rec.pid);
      env.instances.push(inst);
      if (rec.role !== 'live') {
        // A deploy that the agent did not see to its end: what it started (or was retiring) goes.
        leftovers.push(inst);
        continue;
      }
      inst.supervised = true;
      const entry = file.releases[String(rec.release)];
      if (!inst.env && entry) {
        if (entry.secretNames.length) {
          inst.cannotRestart = `its secrets (${entry.secretNames.join(', ')}) are not kept on disk and it stopped while the agent was not running: deploy it again`;
        } else {
          inst.env = this.instanceEnv(entry.release, {}, rec.port);
        }
      }
    }
    for (const inst of leftovers) {
      await this.stopInstance(env, inst, 'left over from a deploy the agent did not finish');
      env.instances = env.instances.filter((i) => i !== inst);
    }
    const live = env.live();
    if (live?.alive) {
      try {
        await this.services.route(env.name, file.publicPort, live.address);
      } catch (e) {
        this.o.log?.(`${env.name}: release ${live.rec.release} runs on ${live.address}, but its public port cannot be served: ${(e as Error).message}`);
      }
    } else if (live) {
      live.lastExit = 'stopped while the agent was not running';
      if (this.o.supervise && !live.cannotRestart) {
        live.startedAtMs = 0;
        this.scheduleRestart(env, live);
      }
    }
    this.persist(env);
  }

  private persist(env: Environment): void {
    const file = this.stateFile(env.name);
    if (!env.file || !env.instances.length) {
      fs.rmSync(file, { force: true });
      return;
    }
    const used = new Set(env.instances.map((i) => String(i.rec.release)));
    env.file.releases = Object.fromEntries(Object.entries(env.file.releases).filter(([n]) => used.has(n)));
    env.file.instances = env.instances.map((i) => i.rec);
    env.file.updatedAt = new Date().toISOString();
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(env.file, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  /** Unpacked releases nothing runs, beyond the few newest. */
  private pruneReleases(env: Environment): void {
    const folder = path.join(this.services.stateDir, 'releases', safeSegment(env.name));
    const inUse = new Set(env.instances.map((i) => path.resolve(i.rec.dir)));
    let names: string[];
    try {
      names = fs.readdirSync(folder).filter((n) => /^\d+-[0-9a-f]{12}$/.test(n));
    } catch {
      return;
    }
    const idle = names.filter((n) => !inUse.has(path.join(folder, n))).sort((a, b) => parseInt(b) - parseInt(a));
    for (const n of idle.slice(KEEP_UNPACKED)) fs.rmSync(path.join(folder, n), { recursive: true, force: true });
  }

  private liveState(env: Environment): LiveState {
    return {
      environment: env.name,
      instances: env.instances.map((inst): LiveInstance => {
        const release = env.file?.releases[String(inst.rec.release)]?.release;
        const labels: Record<string, string> = {
          'conveyor.runtime': 'process',
          'conveyor.role': inst.rec.role,
          'conveyor.restarts': String(inst.rec.restarts),
          'conveyor.started-at': inst.rec.startedAt,
          'conveyor.log': inst.rec.log,
          'conveyor.dir': inst.rec.dir,
        };
        if (inst.lastExit) labels['conveyor.last-exit'] = inst.lastExit;
        if (inst.cannotRestart) labels['conveyor.cannot-restart'] = inst.cannotRestart;
        return {
          id: String(inst.rec.pid),
          environment: env.name,
          release: inst.rec.release,
          artifactDigest: inst.rec.digest,
          address: inst.address,
          state: !inst.alive ? 'exited' : inst.rec.role === 'candidate' || !inst.healthy ? 'starting' : 'running',
          // What the release declares and what the runtime adds; never the secrets.
          env: { ...(release?.env ?? {}), PORT: String(inst.rec.port), CONVEYOR_ENVIRONMENT: env.name, CONVEYOR_RELEASE: String(inst.rec.release) },
          labels,
        };
      }),
    };
  }

  /** Notices instances that are gone without an exit event (those adopted after a restart). */
  private poll(only?: Environment): void {
    if (this.disposed) return;
    for (const env of only ? [only] : this.envs.values()) {
      for (const inst of env.instances) {
        if (inst.alive && !inst.child && !inst.stopping && !instanceAlive(inst.rec)) this.gone(env, inst, 'was found gone');
      }
    }
  }

  private onFileEvent(filename: string): void {
    if (!filename.endsWith('.json')) return;
    const env = [...this.envs.values()].find((e) => `${safeSegment(e.name)}.json` === filename);
    if (!env) return;
    clearTimeout(this.fileEvents.get(filename));
    const t = setTimeout(() => {
      this.fileEvents.delete(filename);
      this.fire(env);
    }, 50);
    t.unref();
    this.fileEvents.set(filename, t);
  }

  private fire(env: Environment): void {
    if (!this.disposed) env.onChange.fire();
  }

  private withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.locks.get(key) ?? Promise.resolve();
    const next = before.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return next;
  }
}

/**
 * Starts the process that masks an instance's output into its log (null when there is nothing to
 * mask): `node -e` in a session of its own, outside the environment's folders, so that it outlives
 * the agent beside the instance and is not taken for one. It writes to `logFd` until its input ends.
 */
async function startRelay(masker: Masker, logFd: number): Promise<ChildProcess | null> {
  const relay = masker.relay();
  if (!relay) return null;
  // The editor's runtime runs as Node with ELECTRON_RUN_AS_NODE (plain Node ignores it).
  const child = spawn(process.execPath, ['-e', relay.script], { cwd: '/', env: { ...relay.env, ELECTRON_RUN_AS_NODE: '1' }, detached: true, stdio: ['pipe', logFd, logFd] });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(new Error(`could not start the process that masks its secrets in its log (${process.execPath}): ${e.message}`)));
  });
  child.on('error', () => undefined);
  child.unref();
  return child;
}

function fail(reason: string, log: string, restored: boolean): Failure {
  return { ok: false, reason, log, restored };
}

/** A line printed many times in a row (a failing probe's message) is shown once, with its count. */
function collapseRepeats(lines: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; ) {
    let j = i + 1;
    while (j < lines.length && lines[j] === lines[i]) j++;
    out.push(lines[i]);
    if (j - i > 1) out.push(`[conveyor] (the line above, ${j - i - 1} more time${j - i > 2 ? 's' : ''})`);
    i = j;
  }
  return out;
}

function readStateFile(file: string): EnvironmentFile | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as EnvironmentFile;
    return parsed.version === 1 && Array.isArray(parsed.instances) ? parsed : null;
  } catch {
    return null;
  }
}

function appendLog(file: string, text: string): void {
  try {
    fs.appendFileSync(file, text, { mode: 0o600 });
  } catch {
    // The log folder went away (the environment was removed).
  }
}

/** State and start time (clock ticks after boot) from /proc/<pid>/stat; null without /proc or process. */
export function readProcStat(pid: number): { state: string; start: string } | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    return { state: fields[0], start: fields[19] };
  } catch {
    return null;
  }
}

/** The environment a running process was started with (same user only). */
function readEnviron(pid: number): Record<string, string> | null {
  try {
    const env: Record<string, string> = {};
    for (const kv of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    return Object.keys(env).length ? env : null;
  } catch {
    return null;
  }
}

/** Is the recorded instance still the process with that pid (not a zombie, not a reused pid)? */
function instanceAlive(rec: InstanceRecord): boolean {
  if (!rec.pid || !isAlive(rec.pid)) return false;
  const stat = readProcStat(rec.pid);
  if (!stat) return true;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return !rec.procStart || stat.start === rec.procStart;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group has exited.
  }
}

/** Resolves true once no process of the group (and not its leader) remains, false after `ms`. */
async function waitGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const leader = readProcStat(pgid);
    const leaderGone = leader ? leader.state === 'Z' || leader.state === 'X' : !isAlive(pgid);
    if (!groupExists(pgid) || (leaderGone && !groupHasLiveMember(pgid))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether a process other than a zombie is in the group (Linux: from /proc; elsewhere: assume so). */
function groupHasLiveMember(pgid: number): boolean {
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return true;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const text = fs.readFileSync(`/proc/${n}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      // fields[2] is field 5 (pgrp).
      if (fields[2] === String(pgid) && fields[0] !== 'Z' && fields[0] !== 'X') return true;
    } catch {
      // Gone meanwhile.
    }
  }
  return false;
}

