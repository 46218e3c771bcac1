import * as os from 'node:os';
import type {
  ApiError,
  ApprovalInfo,
  ArtifactRef,
  ConfigState,
  DeploymentInfo,
  EnvironmentConfig,
  EnvironmentStatus,
  HealthStatus,
  PreviewInfo,
  Release,
  RuntimeName,
  EnvironmentState,
  SyncInfo,
} from '../protocol';
import { Masker } from '../engine/secrets';
import { sameContent } from '../gitops/state';
import type { ConfigPosition, DesiredState, Runtime } from '../runtimes/runtime';
import type { Store } from '../store/store';
import { Deferred, err, ok, reportUnexpected, type IDisposable, type Result } from '../util/lifecycle';

/** Who asked: the OS user, and through what (cli, editor, api, pipeline). */
export function actor(via: string): string {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry
  }
  return `${user} (${via})`;
}

export interface DeployerOptions {
  store: Store;
  currentConfig(): ConfigState;
  /** The runtime for an environment, or why there is none (Docker not running, ...). */
  runtime(name: RuntimeName): Result<Runtime, string>;
  /** The port users reach an environment on: the configured one, or one allocated once and kept. */
  publicPort(env: EnvironmentConfig): Promise<number>;
  /** Secret values for the service's environment. */
  secrets(): Record<string, string>;
  /** Forgets the port kept for an environment (a destroyed preview). */
  freePort?(environment: string): void;
  /** Points an environment's public port at an instance (after a restart, to instances that kept running). */
  route(environment: string, publicPort: number, upstream: string): Promise<void>;
  /** The desired state in git: each deployment is committed there first. */
  desired?: DesiredStateRecorder;
  /** Where a key of an environment is written in conveyor.yml (see ApplyContext.locate). */
  locate?(environment: string, keyPath: readonly string[]): ConfigPosition | undefined;
}

/** Keeps the desired state in git in step with deployments (agent/gitops). */
export interface DesiredStateRecorder {
  /** Commits the release as the environment's desired state, before it is applied. Throws when it cannot. */
  record(release: Release, deployment: DeploymentInfo): Promise<void>;
  /** The release did not become live: the desired state goes back to what still runs (a revert commit). */
  revert(failed: Release, restored: Release | undefined, reason: string, deployment: DeploymentInfo): Promise<void>;
  /** The environment is gone (a destroyed preview): its state file is removed. */
  forget(environment: string, reason: string): Promise<void>;
  /** A deployment of the environment ended: time to compare again. */
  settled(environment: string): void;
  /** Sync and health against git, as last compared. */
  status(environment: string): SyncInfo | null;
}

export interface DeployRequest {
  environment: string;
  artifact: ArtifactRef;
  runId: number | null;
  stage: string | null;
  commit: string | null;
  requestedBy: string;
  /** Aborted when the run is cancelled: a queued or waiting deployment is then dropped. */
  signal?: AbortSignal;
  /** Told when the deployment starts waiting for an approval, and when it stops waiting. */
  onWaiting?(approval: ApprovalInfo | null): void;
  /** Each progress line, as it happens. */
  onProgress?(message: string): void;
}

/** A deployment as queued, and its end. */
export interface Scheduled {
  deployment: DeploymentInfo;
  done: Promise<DeploymentInfo>;
}

interface Waiter {
  approval: ApprovalInfo;
  decided: Deferred<'approved' | 'rejected'>;
}

/**
 * Moves environments from one release to another through their runtimes. One deployment at a
 * time per environment: the others wait in that environment's queue, visible in its status.
 *
 *   deploy stage ──> release N created ──> [promotion manual: approval pending ──> approve | reject]
 *                ──> queued (environment lock) ──> running: runtime.apply(release N, strategy)
 *                ──> succeeded (N is live) | rolled_back (N never got healthy; N-1 still serves) | failed
 *   rollback ──> a deployment back to an earlier release, same path, no rebuild
 */
export class Deployer implements IDisposable {
  private readonly locks = new Map<string, Promise<void>>();
  private readonly queued = new Map<string, DeploymentInfo[]>();
  private readonly current = new Map<string, DeploymentInfo>();
  private readonly waiters = new Map<number, Waiter>();
  private readonly health = new Map<string, HealthStatus>();
  private readonly watches = new Map<string, IDisposable>();
  /** Each deployment not yet ended, by id: what stops its runtime, and its end. */
  private readonly inFlight = new Map<number, { stop: AbortController; done: Promise<DeploymentInfo> }>();
  private nextDeployment: number;
  private nextApproval: number;
  private disposed = false;
  /** The agent is stopping: nothing more is recorded for the deployments in flight. */
  private stopping = false;

  constructor(private readonly opts: DeployerOptions) {
    this.nextDeployment = opts.store.nextDeploymentId();
    this.nextApproval = opts.store.nextApprovalId();
  }

  /** Every deployable environment: the declared ones that are not templates, and the live previews. */
  environments(): EnvironmentConfig[] {
    const state = this.opts.currentConfig();
    if (!state.valid) return [];
    const declared = state.config.environments;
    const previews = this.opts.store
      .previews()
      .map((p) => {
        const template = declared.find((e) => e.name === p.template && e.preview);
        return template ? ({ ...template, name: p.name, port: null, preview: false } as EnvironmentConfig) : undefined;
      })
      .filter((e): e is EnvironmentConfig => !!e);
    return [...declared.filter((e) => !e.preview), ...previews];
  }

  private environment(name: string): Result<EnvironmentConfig, ApiError> {
    const state = this.opts.currentConfig();
    if (!state.valid) return err({ error: 'conveyor.yml is not valid', fix: 'run "conveyor validate"', diagnostics: state.diagnostics });
    const env = this.environments().find((e) => e.name === name);
    if (!env) {
      const template = state.config.environments.find((e) => e.name === name && e.preview);
      if (template) return err({ error: `"${name}" is a preview template, not an environment`, fix: `make a preview from it: conveyor preview create --branch <branch>` });
      const names = this.environments().map((e) => e.name);
      return err({ error: `no environment named "${name}"`, fix: names.length ? `environments: ${names.join(', ')}` : 'declare one under "environments:" in conveyor.yml' });
    }
    return ok(env);
  }

  /**
   * A preview environment for a branch, from a template (the only one when not named), deployed
   * with the artifact of the newest green run of that branch. Asking again for the same branch
   * gives the same preview.
   */
  createPreview(branch: string, template: string | undefined, requestedBy: string): Result<{ preview: PreviewInfo; deployment: DeploymentInfo | null; done: Promise<DeploymentInfo> | null }, ApiError> {
    const state = this.opts.currentConfig();
    if (!state.valid) return err({ error: 'conveyor.yml is not valid', fix: 'run "conveyor validate"' });
    const templates = state.config.environments.filter((e) => e.preview);
    const chosen = template ? templates.find((t) => t.name === template) : templates.length === 1 ? templates[0] : undefined;
    if (!chosen) {
      return err({
        error: templates.length === 0 ? 'no environment is a preview template' : template ? `"${template}" is not a preview template` : 'several preview templates: name one',
        fix: templates.length === 0 ? 'add "preview: true" to an environment in conveyor.yml' : `templates: ${templates.map((t) => t.name).join(', ')}`,
      });
    }
    const slug = branch.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
    if (!slug) return err({ error: `"${branch}" is not a branch name that makes an environment name` });
    const name = `${chosen.name}-${slug}`;
    let preview = this.opts.store.previews().find((p) => p.name === name);
    if (!preview) {
      preview = { name, template: chosen.name, branch, createdAt: new Date().toISOString(), createdBy: requestedBy };
      this.opts.store.append({ type: 'preview.created', preview });
    }
    const run = this.opts.store
      .listRuns(200)
      .filter((r) => r.branch === branch && r.status === 'succeeded')
      .map((r) => this.opts.store.getRun(r.id)!)
      .find((r) => r.artifacts.length === 1);
    if (!run) return ok({ preview, deployment: null, done: null });
    const a = run.artifacts[0];
    const artifact: ArtifactRef = a.kind === 'image' ? { kind: 'image', repository: a.path.replace(/:[^:/]+$/, ''), digest: a.digest } : { kind: 'files', digest: a.digest, name: a.path.split('/').pop()! };
    const scheduled = this.deploy({ environment: name, artifact, runId: run.id, stage: null, commit: run.commit, requestedBy }, 'manual');
    if (!scheduled.ok) return scheduled;
    return ok({ preview, deployment: scheduled.value.deployment, done: scheduled.value.done });
  }

  /** Stops a preview's instances, frees its port, and forgets it (its history stays). */
  async destroyPreview(name: string, reason: string): Promise<Result<PreviewInfo, ApiError>> {
    const preview = this.opts.store.previews().find((p) => p.name === name);
    if (!preview) return err({ error: `no preview named "${name}"`, fix: 'conveyor preview list shows them' });
    await this.locks.get(name);
    const template = this.opts.currentConfig().valid ? (this.opts.currentConfig() as Extract<ConfigState, { valid: true }>).config.environments.find((e) => e.name === preview.template) : undefined;
    const runtime = this.opts.runtime(template?.runtime ?? 'process');
    if (runtime.ok) await runtime.value.remove(name);
    this.watches.get(name)?.dispose();
    this.watches.delete(name);
    this.health.delete(name);
    this.opts.freePort?.(name);
    await this.opts.desired?.forget(name, reason).catch(reportUnexpected);
    this.opts.store.append({ type: 'preview.destroyed', name, reason });
    return ok(preview);
  }

  /** Destroys the previews whose branch no longer exists. */
  async prunePreviews(branchExists: (branch: string) => Promise<boolean>): Promise<string[]> {
    const gone: string[] = [];
    for (const p of this.opts.store.previews()) {
      if (await branchExists(p.branch)) continue;
      const r = await this.destroyPreview(p.name, `branch ${p.branch} was deleted`);
      if (r.ok) gone.push(p.name);
    }
    return gone;
  }

  /**
   * A new release of the artifact, deployed (after an approval when promotion is manual and the
   * pipeline asked; a person asking directly is the approval).
   */
  deploy(req: DeployRequest, trigger: 'pipeline' | 'manual' = 'pipeline'): Result<Scheduled, ApiError> {
    const envResult = this.environment(req.environment);
    if (!envResult.ok) return envResult;
    const env = envResult.value;
    const release: Release = {
      environment: env.name,
      number: this.opts.store.nextReleaseNumber(env.name),
      artifact: req.artifact,
      command: env.start,
      env: env.env,
      containerPort: env.containerPort,
      replicas: env.replicas,
      runId: req.runId,
      commit: req.commit,
      createdAt: new Date().toISOString(),
      createdBy: req.requestedBy,
    };
    if (release.artifact.kind === 'files' && release.command.length === 0 && env.runtime === 'process') {
      return err({ error: `environment "${env.name}" has no "start" command for the files artifact`, fix: `add "start: node src/server.js" (the command that starts your service) under environments: ${env.name}:` });
    }
    this.opts.store.append({ type: 'release.created', release });
    return ok(this.schedule(env, release, trigger, req));
  }

  /** Deploys the live release of one environment to another: the same artifact, by digest. */
  promote(from: string, to: string, requestedBy: string): Result<Scheduled, ApiError> {
    const source = this.liveRelease(from);
    if (!source) return err({ error: `${from} has no live release to promote`, fix: `deploy to ${from} first` });
    return this.deploy({ environment: to, artifact: source.artifact, runId: source.runId, stage: null, commit: source.commit, requestedBy }, 'manual');
  }

  /** Deploys an earlier release again: the same artifact, no rebuild. Default: the one before the live one. */
  rollback(environment: string, to: number | undefined, requestedBy: string): Result<Scheduled, ApiError> {
    const envResult = this.environment(environment);
    if (!envResult.ok) return envResult;
    const live = this.liveRelease(environment);
    let target: Release | undefined;
    if (to !== undefined) {
      target = this.opts.store.getRelease(environment, to);
      if (!target) return err({ error: `${environment} has no release ${to}`, fix: `conveyor envs lists the releases of ${environment}` });
    } else {
      const earlier = this.opts.store
        .deployments(environment, 200)
        .filter((d) => d.status === 'succeeded' && d.toRelease !== live?.number)
        .map((d) => d.toRelease);
      if (earlier.length === 0) return err({ error: `${environment} has no earlier release to roll back to`, fix: 'deploy a release first' });
      target = this.opts.store.getRelease(environment, earlier[0]);
    }
    if (live && target!.number === live.number) return err({ error: `${environment}@${live.number} is already live`, fix: 'name another release with --to' });
    return ok(this.schedule(envResult.value, target!, 'rollback', { requestedBy, runId: null, stage: null }));
  }

  /**
   * Deploys what the desired state in git says: the release with exactly that content when there
   * is one (a revert in git brings back the same release), else a new release of it.
   */
  syncTo(environment: string, state: EnvironmentState, revision: string, requestedBy: string): Result<Scheduled, ApiError> {
    const envResult = this.environment(environment);
    if (!envResult.ok) return envResult;
    const env = envResult.value;
    let release = this.opts.store.releases(environment, 200).find((r) => sameContent(state, r));
    if (!release) {
      release = {
        environment,
        number: this.opts.store.nextReleaseNumber(environment),
        artifact: state.artifact.kind === 'image' ? { kind: 'image', repository: state.artifact.repository, digest: state.artifact.digest } : { ...state.artifact },
        command: state.command,
        env: state.env,
        containerPort: state.containerPort,
        replicas: state.replicas,
        runId: state.source.run,
        commit: state.source.commit,
        createdAt: new Date().toISOString(),
        createdBy: `${requestedBy} (git ${revision.slice(0, 7)})`,
      };
      this.opts.store.append({ type: 'release.created', release });
    }
    return ok(this.schedule(env, release, 'sync', { requestedBy, runId: null, stage: null }));
  }

  /** Applies the live release again: drift corrected. */
  heal(environment: string, requestedBy: string): Result<Scheduled, ApiError> {
    const envResult = this.environment(environment);
    if (!envResult.ok) return envResult;
    const live = this.liveRelease(environment);
    if (!live) return err({ error: `${environment} has no live release to restore` });
    return ok(this.schedule(envResult.value, live, 'heal', { requestedBy, runId: null, stage: null }));
  }

  /** A deployment of the environment is running or queued. */
  busy(environment: string): boolean {
    return this.locks.has(environment) || (this.queued.get(environment)?.length ?? 0) > 0;
  }

  approve(id: number, by: string, reason: string | null): Result<ApprovalInfo, ApiError> {
    return this.decide(id, 'approved', by, reason);
  }

  reject(id: number, by: string, reason: string | null): Result<ApprovalInfo, ApiError> {
    return this.decide(id, 'rejected', by, reason);
  }

  private decide(id: number, status: 'approved' | 'rejected', by: string, reason: string | null): Result<ApprovalInfo, ApiError> {
    const w = this.waiters.get(id);
    if (!w) {
      const known = this.opts.store.getApproval(id);
      if (!known) return err({ error: `no approval #${id}`, fix: 'conveyor envs shows pending approvals' });
      return err({ error: `approval #${id} was already ${known.status}${known.decidedBy ? ` by ${known.decidedBy}` : ''}` });
    }
    const approval: ApprovalInfo = { ...w.approval, status, decidedAt: new Date().toISOString(), decidedBy: by, reason };
    this.waiters.delete(id);
    this.opts.store.append({ type: 'approval.changed', approval });
    w.decided.resolve(status);
    return ok(approval);
  }

  private schedule(
    env: EnvironmentConfig,
    release: Release,
    trigger: DeploymentInfo['trigger'],
    req: Pick<DeployRequest, 'requestedBy' | 'runId' | 'stage' | 'signal' | 'onWaiting' | 'onProgress'>,
  ): Scheduled {
    let d: DeploymentInfo = {
      id: this.nextDeployment++,
      environment: env.name,
      fromRelease: null,
      toRelease: release.number,
      strategy: env.strategy,
      trigger,
      status: 'queued',
      reason: null,
      runId: req.runId,
      stage: req.stage,
      requestedBy: req.requestedBy,
      queuedAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
    };
    const emit = (patch: Partial<DeploymentInfo>) => {
      // Once the agent stops, the history keeps the deployment as it was: the next start ends it.
      if (this.stopping) return { ...d, ...patch };
      d = { ...d, ...patch };
      this.opts.store.append({ type: 'deployment.changed', deployment: d });
      return d;
    };
    const queued = emit({});
    const stop = new AbortController();
    const done = this.proceed(env, release, trigger, req, () => d, emit, stop.signal);
    this.inFlight.set(d.id, { stop, done });
    const forget = () => this.inFlight.delete(queued.id);
    void done.then(forget, forget);
    return { deployment: queued, done };
  }

  private async proceed(
    env: EnvironmentConfig,
    release: Release,
    trigger: DeploymentInfo['trigger'],
    req: Pick<DeployRequest, 'requestedBy' | 'runId' | 'stage' | 'signal' | 'onWaiting' | 'onProgress'>,
    current: () => DeploymentInfo,
    emit: (patch: Partial<DeploymentInfo>) => DeploymentInfo,
    signal: AbortSignal,
  ): Promise<DeploymentInfo> {
    const d = current();
    // The approval gate: continuous delivery waits for a person; rollbacks do not.
    if (env.promotion === 'manual' && trigger === 'pipeline') {
      const approval: ApprovalInfo = {
        id: this.nextApproval++,
        deploymentId: d.id,
        environment: env.name,
        release: release.number,
        runId: req.runId,
        stage: req.stage,
        status: 'pending',
        requestedAt: new Date().toISOString(),
        decidedAt: null,
        decidedBy: null,
        reason: null,
      };
      const waiter: Waiter = { approval, decided: new Deferred() };
      this.waiters.set(approval.id, waiter);
      this.opts.store.append({ type: 'approval.changed', approval });
      emit({ status: 'waiting' });
      req.onWaiting?.(approval);
      const onAbort = () => {
        if (this.waiters.delete(approval.id)) {
          this.opts.store.append({ type: 'approval.changed', approval: { ...approval, status: 'rejected', decidedAt: new Date().toISOString(), decidedBy: 'conveyor', reason: 'the run was cancelled' } });
          waiter.decided.resolve('rejected');
        }
      };
      req.signal?.addEventListener('abort', onAbort, { once: true });
      const decision = await waiter.decided.promise;
      req.signal?.removeEventListener('abort', onAbort);
      if (this.stopping) return stoppedDuring(current());
      req.onWaiting?.(null);
      if (decision === 'rejected') {
        const decided = this.opts.store.getApproval(approval.id);
        return emit({ status: req.signal?.aborted ? 'cancelled' : 'rejected', finishedAt: new Date().toISOString(), reason: `rejected by ${decided?.decidedBy ?? 'someone'}${decided?.reason ? `: ${decided.reason}` : ''}` });
      }
      emit({ status: 'queued' });
    }

    // One deployment at a time per environment.
    const queue = this.queued.get(env.name) ?? [];
    queue.push(current());
    this.queued.set(env.name, queue);
    const previous = this.locks.get(env.name) ?? Promise.resolve();
    const done = new Deferred();
    const mine = previous.then(() => done.promise);
    this.locks.set(env.name, mine);
    await previous;
    queue.splice(queue.findIndex((q) => q.id === d.id), 1);
    try {
      if (this.stopping) return stoppedDuring(current());
      if (req.signal?.aborted) return emit({ status: 'cancelled', finishedAt: new Date().toISOString(), reason: 'the run was cancelled' });
      const ended = await this.apply(env, release, current(), emit, req.onProgress, signal);
      return this.stopping ? stoppedDuring(current()) : ended;
    } finally {
      this.current.delete(env.name);
      done.resolve();
      if (this.locks.get(env.name) === mine) this.locks.delete(env.name);
      if (!this.stopping) this.opts.desired?.settled(env.name);
    }
  }

  private async apply(
    env: EnvironmentConfig,
    release: Release,
    d: DeploymentInfo,
    emit: (patch: Partial<DeploymentInfo>) => DeploymentInfo,
    onProgress: ((message: string) => void) | undefined,
    signal: AbortSignal,
  ): Promise<DeploymentInfo> {
    const live = this.liveRelease(env.name);
    d = emit({ status: 'running', startedAt: new Date().toISOString(), fromRelease: live?.number ?? null });
    this.current.set(env.name, d);
    const progress = (message: string) => {
      if (this.stopping) return;
      this.opts.store.append({ type: 'deployment.progress', deploymentId: d.id, environment: env.name, message });
      onProgress?.(message);
    };
    const runtime = this.opts.runtime(env.runtime);
    if (!runtime.ok) return emit({ status: 'failed', finishedAt: new Date().toISOString(), reason: runtime.error });
    let desired: DesiredState;
    try {
      desired = { release, healthCheck: env.health, publicPort: await this.opts.publicPort(env), secrets: this.opts.secrets() };
    } catch (e) {
      return emit({ status: 'failed', finishedAt: new Date().toISOString(), reason: (e as Error).message });
    }
    if (this.opts.desired) {
      try {
        await this.opts.desired.record(release, d);
      } catch (e) {
        return emit({ status: 'failed', finishedAt: new Date().toISOString(), reason: `could not commit the desired state to git, so nothing was changed: ${(e as Error).message}` });
      }
    }
    if (this.stopping) return d;
    progress(`deploying ${env.name}@${release.number} (${shortDigest(release.artifact.digest)}) with ${env.strategy} on ${env.runtime}`);
    let result;
    try {
      // A preview's settings are written under its template's name.
      const locate = (keyPath: readonly string[]) => this.opts.locate?.(this.opts.store.previews().find((p) => p.name === env.name)?.template ?? env.name, keyPath);
      result = await runtime.value.apply(desired, env.strategy, { progress, signal, locate });
    } catch (e) {
      if (this.stopping) return d;
      reportUnexpected(e);
      await this.opts.desired?.revert(release, live, `${env.runtime} runtime error`, d).catch(reportUnexpected);
      const why = new Masker(Object.values(desired.secrets)).mask((e as Error).message);
      return emit({ status: 'failed', finishedAt: new Date().toISOString(), reason: `${env.runtime} runtime error: ${why}` });
    }
    if (this.stopping) return d;
    this.watch(env, runtime.value);
    if (result.ok) {
      progress(`${env.name}@${release.number} is live and healthy at http://127.0.0.1:${desired.publicPort}`);
      this.setHealth(env.name, 'Healthy', release.number);
      return emit({ status: 'succeeded', finishedAt: new Date().toISOString() });
    }
    // What the service printed (and what the runtime says of it) may hold the environment's secrets.
    const masker = new Masker(Object.values(desired.secrets));
    const why = masker.mask(result.reason);
    const tail = masker.mask(result.log.trim().split('\n').slice(-5).join('\n'));
    if (d.trigger !== 'heal') await this.opts.desired?.revert(release, result.restored ? live : undefined, why, d).catch(reportUnexpected);
    if (result.restored && live) {
      progress(`rolled back: ${env.name}@${live.number} still serves`);
      return emit({ status: 'rolled_back', finishedAt: new Date().toISOString(), reason: `${why}; ${env.name}@${live.number} still serves${tail ? `\n${tail}` : ''}` });
    }
    return emit({ status: 'failed', finishedAt: new Date().toISOString(), reason: `${why}${tail ? `\n${tail}` : ''}` });
  }

  /** Follows the runtime's live changes for the environment, as health events. */
  private watch(env: EnvironmentConfig, runtime: Runtime): void {
    if (this.watches.has(env.name) || this.disposed) return;
    let checking = false;
    const check = () => {
      if (checking || this.disposed) return;
      checking = true;
      runtime
        .health(env.name)
        .then((h) => this.setHealth(env.name, h, this.liveRelease(env.name)?.number ?? null))
        .catch(() => undefined)
        .finally(() => (checking = false));
    };
    this.watches.set(env.name, runtime.watch(env.name, check));
  }

  private setHealth(environment: string, health: HealthStatus, release: number | null): void {
    if (this.health.get(environment) === health) return;
    this.health.set(environment, health);
    this.opts.store.append({ type: 'environment.health', environment, health, release });
  }

  /** Where users reach an environment: its public port on 127.0.0.1. */
  async environmentUrl(environment: string): Promise<Result<string, ApiError>> {
    const env = this.environment(environment);
    if (!env.ok) return env;
    if (env.value.runtime === 'kubernetes') {
      return err({ error: `${environment} runs on Kubernetes: it is reached through the cluster's Service, not on this machine`, fix: 'use the Service (kubectl port-forward, an Ingress) or give the stage an absolute url' });
    }
    try {
      return ok(`http://127.0.0.1:${await this.opts.publicPort(env.value)}`);
    } catch (e) {
      return err({ error: `no address for ${environment}: ${(e as Error).message}` });
    }
  }

  liveRelease(environment: string): Release | undefined {
    const d = this.opts.store.lastSucceededDeployment(environment);
    return d ? this.opts.store.getRelease(environment, d.toRelease) : undefined;
  }

  /**
   * After a crash: a deployment left running or waiting is marked failed, and the environment is
   * brought back to its last good release, so it serves a healthy release and the record says
   * which.
   */
  async recover(): Promise<void> {
    for (const d of this.opts.store.unfinishedDeployments()) {
      const live = this.liveRelease(d.environment);
      this.opts.store.append({
        type: 'deployment.changed',
        deployment: {
          ...d,
          status: 'failed',
          finishedAt: new Date().toISOString(),
          reason: `the agent stopped during this deployment; ${live ? `${d.environment} stays on release ${live.number}` : `${d.environment} had no earlier release`}`,
        },
      });
    }
    for (const a of this.opts.store.pendingApprovals()) {
      this.opts.store.append({ type: 'approval.changed', approval: { ...a, status: 'rejected', decidedAt: new Date().toISOString(), decidedBy: 'conveyor', reason: 'the agent stopped while this approval was pending; run the pipeline again' } });
    }
    const state = this.opts.currentConfig();
    if (!state.valid) return;
    for (const env of this.environments()) {
      const live = this.liveRelease(env.name);
      if (!live) continue;
      const runtime = this.opts.runtime(env.runtime);
      if (!runtime.ok) continue;
      try {
        const desired: DesiredState = { release: live, healthCheck: env.health, publicPort: await this.opts.publicPort(env), secrets: this.opts.secrets() };
        // Instances outlive the agent: when exactly the live release runs and is healthy, only the
        // public port needs pointing at it again. Anything else (a half-done blue-green, a dead
        // instance) is made right by deploying the live release again.
        const observed = await runtime.value.observe(env.name);
        const own = observed.instances.filter((i) => i.release === live.number && i.state === 'running' && i.address);
        const others = observed.instances.filter((i) => i.release !== live.number);
        const healthy = own.length > 0 && others.length === 0 && (await runtime.value.health(env.name)) === 'Healthy';
        let ok = healthy;
        if (healthy) {
          await this.opts.route(env.name, desired.publicPort, own[0].address!);
        } else {
          const result = await runtime.value.apply(desired, 'recreate', { progress: () => undefined, signal: new AbortController().signal });
          ok = result.ok;
        }
        this.setHealth(env.name, ok ? 'Healthy' : 'Degraded', live.number);
        this.watch(env, runtime.value);
      } catch (e) {
        reportUnexpected(e);
      }
    }
  }

  /** What the Environments tree and `conveyor envs` show. */
  async status(): Promise<EnvironmentStatus[]> {
    const state = this.opts.currentConfig();
    if (!state.valid) return [];
    const out: EnvironmentStatus[] = [];
    const previews = new Map(this.opts.store.previews().map((p) => [p.name, p]));
    for (const env of this.environments()) {
      const last = this.opts.store.lastSucceededDeployment(env.name);
      const live = last ? this.opts.store.getRelease(env.name, last.toRelease) ?? null : null;
      let health: HealthStatus = this.health.get(env.name) ?? (live ? 'Progressing' : 'Missing');
      const runtime = this.opts.runtime(env.runtime);
      if (runtime.ok && live) {
        health = await runtime.value.health(env.name).catch(() => health);
        this.health.set(env.name, health);
      }
      let url: string | null = null;
      try {
        // Kubernetes environments are reached through the cluster's Service, not a local port.
        url = env.runtime !== 'kubernetes' && (live || env.port) ? `http://127.0.0.1:${await this.opts.publicPort(env)}` : null;
      } catch {
        url = null;
      }
      const pending = [...this.waiters.values()].find((w) => w.approval.environment === env.name)?.approval ?? null;
      out.push({
        name: env.name,
        runtime: env.runtime,
        promotion: env.promotion,
        url,
        live,
        liveSince: last?.finishedAt ?? null,
        liveBy: last?.requestedBy ?? null,
        health,
        releases: this.opts.store.releases(env.name, 20),
        pendingApproval: pending,
        queue: [...(this.queued.get(env.name) ?? [])],
        current: this.current.get(env.name) ?? null,
        preview: previews.get(env.name) ?? null,
        sync: this.opts.desired?.status(env.name) ?? null,
      });
    }
    return out;
  }

  /**
   * For an agent that stops: each deployment in flight is told to stop (the signal its runtime
   * got aborts) and waited for, up to `timeoutMs`. Nothing more is recorded for them: one that
   * ran stays running in the history until the next start's recover() marks it failed and brings
   * the environment back to its live release. Their promises resolve, whenever their runtime
   * returns, with the deployment as it will be recorded then; they never reject.
   */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    const all = [...this.inFlight.values()];
    for (const f of all) f.stop.abort();
    this.dispose();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(all.map((f) => f.done)), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  dispose(): void {
    this.disposed = true;
    for (const w of this.watches.values()) w.dispose();
    this.watches.clear();
    for (const [id, w] of this.waiters) {
      this.waiters.delete(id);
      w.decided.resolve('rejected');
    }
  }
}

/** A deployment the agent stopped during, as the next start records it (Deployer.recover). */
function stoppedDuring(d: DeploymentInfo): DeploymentInfo {
  return { ...d, status: 'failed', finishedAt: new Date().toISOString(), reason: 'the agent stopped during this deployment' };
}

function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
