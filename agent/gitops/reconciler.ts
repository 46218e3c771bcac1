import type { Deployer, DesiredStateRecorder, Scheduled } from '../deploy/deployer';
import type {
  ApiError,
  DeploymentInfo,
  DriftItem,
  EnvironmentConfig,
  EnvironmentState,
  HealthStatus,
  LiveState,
  Release,
  RuntimeName,
  StateView,
  SyncInfo,
  SyncResult,
} from '../protocol';
import type { Runtime } from '../runtimes/runtime';
import type { Store } from '../store/store';
import { err, ok, reportUnexpected, type IDisposable, type Result } from '../util/lifecycle';
import { desiredDiff, liveDiff, renderLive } from './diff';
import type { StateRepo } from './repo';
import { listTags, manifestDigest, pickTag, policyProblem } from './image-update';
import { describeArtifact, parseState, renderState, stateOfRelease } from './state';

export interface ReconcilerOptions {
  store: Store;
  repo: StateRepo;
  deployer: Deployer;
  runtime(name: RuntimeName): Result<Runtime, string>;
  /** How often every environment is compared (and another repository fetched). */
  intervalMs(): number;
  /** How often the state branch's tip is looked at, to apply new commits at once. Default 1000. */
  pollMs?: number;
}

interface Desired {
  state: EnvironmentState | null;
  text: string | null;
  lines: Record<string, number>;
  error: SyncInfo['error'];
  /** What to do about the error, when it is not to fix the file. */
  fix?: string;
}

interface Compared {
  env: EnvironmentConfig;
  info: SyncInfo;
  desired: Desired;
  live: Release | undefined;
  observed: LiveState | null;
  problem: string | null;
  desiredItems: DriftItem[];
  driftItems: DriftItem[];
}

const PAUSED = (env: string) => `reconcile-paused:${env}`;

/**
 * The pull-based reconciler. Each environment's desired state is its file on the state branch;
 * the reconciler compares it with the live release and with what the runtime reports, and acts by
 * the environment's policy:
 *
 *   git changed (a commit by anyone)   ──> OutOfSync (desired) ──> deploy it (unless manual or paused)
 *   live changed by hand (drift)       ──> OutOfSync (drift)   ──> drift.detected ──> selfHeal ? apply the release again : report
 *   labelled instances nobody wants    ──> OutOfSync (drift)   ──> prune ? remove them : report
 *
 * It looks when the branch's tip moves (polled every second), when a runtime reports a change
 * (Docker's event stream, a process exit), when a deployment ends, and on an interval. It also
 * keeps git in step with deployments (DesiredStateRecorder): every deploy, promotion and rollback
 * is a commit, and a deploy that fails is reverted, so git and the live state never disagree.
 */
export class Reconciler implements DesiredStateRecorder, IDisposable {
  private readonly infos = new Map<string, SyncInfo>();
  private readonly lastGood = new Map<string, Desired>();
  private readonly watches = new Map<string, { runtime: RuntimeName; sub: IDisposable }>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly reported = new Map<string, string>();
  private readonly healing = new Map<string, DriftItem[]>();
  private readonly failedHeal = new Map<string, number>();
  private tip: string | null = null;
  /** Commits made by this reconciler so far (a read of the tip that started before one is stale). */
  private commits = 0;
  private fetchError: string | null = null;
  /** Why git could not read the branch's tip, when it could not. */
  private tipError: string | null = null;
  /** Environments whose state file git could not read: looked at again on each poll until it can. */
  private readonly unreadable = new Set<string>();
  private readonly imageErrors = new Map<string, string>();
  private readonly imageLooked = new Map<string, number>();
  private imageTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private fullTimer: NodeJS.Timeout | undefined;
  private readonly ticks = new Set<Promise<void>>();
  private disposed = false;

  constructor(private readonly opts: ReconcilerOptions) {}

  start(): void {
    void this.full();
    void this.poll();
    void this.images();
  }

  /** Image update automation: looks at each environment's registry repository on its interval. */
  private images(): Promise<void> {
    return this.tick(() => this.imagesOnce());
  }

  private async imagesOnce(): Promise<void> {
    if (this.disposed) return;
    clearTimeout(this.imageTimer);
    let next = 60_000;
    try {
      for (const env of this.opts.deployer.environments()) {
        if (this.disposed) return;
        if (!env.imageUpdate) continue;
        next = Math.min(next, env.imageUpdate.intervalMs);
        const last = this.imageLooked.get(env.name) ?? 0;
        if (Date.now() - last < env.imageUpdate.intervalMs - 50) continue;
        this.imageLooked.set(env.name, Date.now());
        await this.updateImage(env);
      }
    } catch (e) {
      reportUnexpected(e);
    } finally {
      if (!this.disposed) this.imageTimer = setTimeout(() => void this.images(), Math.max(200, Math.min(next, 60_000)));
    }
  }

  /** Commits the newest tag the environment's policy allows, when the desired state runs another digest. */
  async updateImage(env: EnvironmentConfig): Promise<void> {
    const policy = env.imageUpdate;
    if (!policy) return;
    const fail = (message: string) => {
      const changed = this.imageErrors.get(env.name) !== message;
      this.imageErrors.set(env.name, message);
      if (changed) void this.check(env.name);
    };
    const problem = policyProblem(policy);
    if (problem) return fail(`image update: ${problem}`);
    const tags = await listTags(policy.repository);
    if (!tags.ok) return fail(`image update: ${tags.error}`);
    const tag = pickTag(tags.value, policy);
    if (this.imageErrors.delete(env.name)) void this.check(env.name);
    if (!tag) return;
    const digest = await manifestDigest(policy.repository, tag);
    if (!digest.ok) return fail(`image update: ${digest.error}`);
    const desired = await this.readDesired(env.name, this.tip);
    if (desired.error) return; // a broken state file is the person's to fix; it is not overwritten
    const live = this.opts.deployer.liveRelease(env.name);
    const base: EnvironmentState = desired.state ?? (live ? stateOfRelease(live) : { environment: env.name, artifact: { kind: 'image', repository: policy.repository, digest: digest.value }, command: env.start, env: env.env, replicas: env.replicas, containerPort: env.containerPort, source: { release: null, run: null, commit: null } });
    if (desired.state && base.artifact.kind === 'image' && base.artifact.digest === digest.value && base.artifact.repository === policy.repository) return;
    const next: EnvironmentState = { ...base, artifact: { kind: 'image', repository: policy.repository, digest: digest.value, tag }, source: { release: null, run: null, commit: null } };
    const previous = desired.state ? describeArtifact(desired.state.artifact) : 'nothing';
    const rule = policy.semver ? `semver ${policy.semver}` : `pattern ${policy.pattern}`;
    const sha = await this.commitText(env.name, this.opts.repo.fileOf(env.name), renderState(next), `image update: ${env.name} to ${policy.repository}:${tag}

Digest: ${digest.value}
Policy: ${rule}
Previous: ${previous}`, 'Conveyor (image update)');
    if (sha) this.opts.store.append({ type: 'image.update', environment: env.name, repository: policy.repository, tag, digest: digest.value, commit: sha });
    await this.check(env.name);
  }

  /** Compares every environment now. */
  async checkAll(): Promise<void> {
    if (this.disposed) return;
    this.ensureWatches();
    await Promise.all(this.opts.deployer.environments().map((e) => this.check(e.name)));
  }

  private full(): Promise<void> {
    return this.tick(() => this.fullOnce());
  }

  private async fullOnce(): Promise<void> {
    if (this.disposed) return;
    clearTimeout(this.fullTimer);
    try {
      await this.refresh(true);
      await this.checkAll();
    } catch (e) {
      reportUnexpected(e);
    } finally {
      if (!this.disposed) this.fullTimer = setTimeout(() => void this.full(), this.opts.intervalMs());
    }
  }

  private poll(): Promise<void> {
    return this.tick(() => this.pollOnce());
  }

  /** Runs one timer's pass; close() waits for the passes in flight. */
  private async tick(pass: () => Promise<void>): Promise<void> {
    const p = pass();
    this.ticks.add(p);
    try {
      await p;
    } finally {
      this.ticks.delete(p);
    }
  }

  private async pollOnce(): Promise<void> {
    if (this.disposed) return;
    try {
      if (!this.opts.repo.remote) {
        const before = [this.tip, this.tipError];
        await this.refresh(false);
        if (this.tip !== before[0] || this.tipError !== before[1]) await this.checkAll();
        else await Promise.all([...this.unreadable].map((e) => this.check(e)));
      }
    } catch (e) {
      reportUnexpected(e);
    } finally {
      if (!this.disposed) this.pollTimer = setTimeout(() => void this.poll(), this.opts.pollMs ?? 1000);
    }
  }

  /**
   * Reads the branch's tip (fetching another repository first when asked). A failed fetch, or a
   * tip git cannot read, keeps the last state.
   */
  private async refresh(fetch: boolean): Promise<void> {
    if (fetch && this.opts.repo.remote) {
      const f = await this.opts.repo.fetch();
      this.fetchError = f.ok ? null : f.error;
    }
    // A commit of ours made while git was read is newer than what was read: keep it.
    const commits = this.commits;
    let tip: string | null;
    try {
      tip = await this.opts.repo.tip();
    } catch (e) {
      this.tipError = (e as Error).message;
      return;
    }
    this.tipError = null;
    if (commits === this.commits) this.tip = tip;
  }

  /** Follows each environment's runtime, so that a change by hand is seen within a second or two. */
  private ensureWatches(): void {
    const envs = this.opts.deployer.environments();
    for (const [name, w] of this.watches) {
      const env = envs.find((e) => e.name === name);
      if (!env || env.runtime !== w.runtime) {
        w.sub.dispose();
        this.watches.delete(name);
      }
    }
    for (const env of envs) {
      if (this.watches.has(env.name)) continue;
      const runtime = this.opts.runtime(env.runtime);
      if (!runtime.ok) continue;
      this.watches.set(env.name, { runtime: env.runtime, sub: runtime.value.watch(env.name, () => void this.check(env.name)) });
    }
  }

  /** Compares one environment and acts by its policy. Calls made meanwhile are folded into one more. */
  check(environment: string): Promise<void> {
    if (this.disposed) return Promise.resolve();
    const current = this.running.get(environment);
    if (current) {
      this.again.add(environment);
      return current;
    }
    const p = (async () => {
      try {
        do {
          this.again.delete(environment);
          await this.checkOnce(environment);
        } while (this.again.has(environment) && !this.disposed);
      } catch (e) {
        reportUnexpected(e);
      } finally {
        this.running.delete(environment);
      }
    })();
    this.running.set(environment, p);
    return p;
  }

  private async checkOnce(environment: string): Promise<void> {
    const c = await this.compare(environment);
    if (!c || this.disposed) return;
    const { info, env } = c;
    this.publish(info);
    if (this.opts.deployer.busy(environment)) return;
    // Act only on a comparison that is still true: the branch or the live release may have moved
    // while it was made (a rollback commits and deploys meanwhile). Then look again.
    if (info.revision !== this.tip || this.opts.deployer.liveRelease(environment)?.number !== c.live?.number) {
      this.again.add(environment);
      return;
    }
    // An environment deployed before it had a state file: its live release becomes the desired state.
    if (c.desired.text === null && !c.desired.error && !this.tipError && c.live) {
      await this.commitState(c.live, `record ${environment}@${c.live.number} as the desired state`, 'Conveyor (reconciler)', `${environment}@${c.live.number} was live before its desired state was kept in git.`).catch(reportUnexpected);
      return;
    }
    if (info.paused || env.reconcile.manual) {
      if (c.driftItems.length) this.reportDrift(info, c.driftItems, info.paused ? 'paused' : 'reported');
      return;
    }
    if (c.desiredItems.length && c.desired.state) {
      if (this.failedHeal.get(`${environment}:${info.revision}`)) return; // this revision failed to deploy once; git was reverted
      const r = this.opts.deployer.syncTo(environment, c.desired.state, info.revision ?? 'unknown', 'conveyor (git)');
      if (!r.ok) this.failedHeal.set(`${environment}:${info.revision}`, Date.now());
      return;
    }
    if (!c.driftItems.length) return;
    const heal = c.driftItems.filter((i) => i.kind !== 'extra');
    const extra = c.driftItems.filter((i) => i.kind === 'extra');
    if (heal.length && env.reconcile.selfHeal && c.live) {
      const last = this.failedHeal.get(environment) ?? 0;
      if (Date.now() - last < this.opts.intervalMs()) {
        this.reportDrift(info, c.driftItems, 'reported');
        return;
      }
      this.reportDrift(info, c.driftItems, 'healing');
      this.healing.set(environment, c.driftItems);
      const r = this.opts.deployer.heal(environment, 'conveyor (self-heal)');
      if (r.ok) void r.value.done.then((d) => d.status !== 'succeeded' && this.failedHeal.set(environment, Date.now()), reportUnexpected);
      return;
    }
    if (extra.length && !heal.length && env.reconcile.prune && c.observed) {
      this.reportDrift(info, extra, 'healing');
      this.healing.set(environment, extra);
      await this.prune(env, c.observed, c.live);
      this.again.add(environment);
      return;
    }
    this.reportDrift(info, c.driftItems, 'reported');
  }

  /** Removes the labelled instances that are not the live release's (or one copy too many). */
  private async prune(env: EnvironmentConfig, observed: LiveState, live: Release | undefined): Promise<void> {
    const runtime = this.opts.runtime(env.runtime);
    if (!runtime.ok) return;
    const keep = new Set<string>();
    const want = env.runtime === 'process' ? 1 : (live?.replicas ?? 0);
    for (const i of observed.instances) if (live && i.release === live.number && i.state !== 'exited' && keep.size < want) keep.add(i.id);
    const ids = observed.instances.filter((i) => !keep.has(i.id)).map((i) => i.id);
    if (ids.length === 0) return;
    if (runtime.value.removeInstances) await runtime.value.removeInstances(env.name, ids).catch(reportUnexpected);
    else if (live) this.opts.deployer.heal(env.name, 'conveyor (prune)');
  }

  private async compare(environment: string): Promise<Compared | undefined> {
    const env = this.opts.deployer.environments().find((e) => e.name === environment);
    if (!env) return undefined;
    const revision = this.tip;
    const file = this.opts.repo.fileOf(environment);
    const desired = await this.readDesired(environment, revision);
    if (this.disposed) return undefined;
    const live = this.opts.deployer.liveRelease(environment);
    const busy = this.opts.deployer.busy(environment);
    const desiredItems = desired.state ? desiredDiff(desired.state, live) : [];
    let observed: LiveState | null = null;
    let problem: string | null = null;
    let health: HealthStatus = this.infos.get(environment)?.health ?? 'Missing';
    const runtime = this.opts.runtime(env.runtime);
    if (!runtime.ok) problem = runtime.error;
    else {
      try {
        observed = await runtime.value.observe(environment);
        health = await runtime.value.health(environment);
      } catch (e) {
        problem = (e as Error).message;
      }
    }
    if (this.disposed) return undefined;
    let driftItems: DriftItem[] = [];
    if (observed && !busy) {
      if (live) driftItems = liveDiff(live, observed, env.runtime);
      else
        driftItems = observed.instances.map((i) => ({
          path: `instance ${i.id.slice(0, 12)}`,
          kind: 'extra' as const,
          desired: null,
          live: `release ${i.release} (${i.state})`,
          message: `instance ${i.id.slice(0, 12)} runs in ${environment}, which has no live release`,
        }));
    }
    if (busy) {
      health = 'Progressing';
      // While a deployment runs, the live state is in flux: the drift seen before it stands until
      // the deployment ends and the next look says otherwise.
      const before = this.infos.get(environment);
      if (before) driftItems = before.diff.filter((i) => !desiredItems.some((d) => d.path === i.path));
    }
    const causes: SyncInfo['causes'] = [];
    if (desiredItems.length) causes.push('desired');
    if (driftItems.length) causes.push('drift');
    const imageError = this.imageErrors.get(environment);
    const error = desired.error ?? (this.tipError ? { message: `${this.tipError}; the last desired state read stays`, line: null, column: null } : null) ?? (imageError ? { message: imageError, line: null, column: null } : null) ?? (this.fetchError ? { message: `${this.fetchError}; the last fetched desired state stays`, line: null, column: null } : null) ?? (problem ? { message: `cannot read the live state: ${problem}`, line: null, column: null } : null);
    const unknown = (problem !== null && !observed) || ((desired.error !== null || this.tipError !== null) && !desired.state);
    const info: SyncInfo = {
      environment,
      sync: unknown ? 'Unknown' : causes.length ? 'OutOfSync' : 'Synced',
      health,
      revision,
      causes,
      diff: [...desiredItems, ...driftItems],
      policy: env.reconcile,
      paused: this.opts.store.getMeta(PAUSED(environment)) === '1',
      file,
      error,
      checkedAt: new Date().toISOString(),
    };
    return { env, info, desired, live, observed, problem, desiredItems, driftItems };
  }

  /**
   * The state file at a revision; when it is not valid, the last good one (and the error). A file
   * git cannot read is an error too, never "no state file": nothing is committed over it.
   */
  private async readDesired(environment: string, revision: string | null): Promise<Desired> {
    if (!revision) return { state: null, text: null, lines: {}, error: null };
    let text: string | null;
    try {
      text = await this.opts.repo.read(this.opts.repo.fileOf(environment), revision);
      this.unreadable.delete(environment);
    } catch (e) {
      this.unreadable.add(environment);
      const good = this.lastGood.get(environment);
      const message = `${(e as Error).message}; ${good ? 'the last valid desired state stays live' : 'nothing is applied until git can read it'}`;
      return { state: good?.state ?? null, text: good?.text ?? null, lines: good?.lines ?? {}, error: { message, line: null, column: null }, fix: 'repair the repository (`git fsck` shows what is damaged), or commit the file again' };
    }
    if (text === null) return { state: null, text: null, lines: {}, error: null };
    const parsed = parseState(text, environment);
    if (parsed.ok) {
      const d: Desired = { state: parsed.value.state, text, lines: parsed.value.lines, error: null };
      this.lastGood.set(environment, d);
      return d;
    }
    const e = parsed.error;
    const good = this.lastGood.get(environment);
    const where = `${this.opts.repo.fileOf(environment)}${e.line ? `:${e.line}${e.column ? `:${e.column}` : ''}` : ''}`;
    const message = `${where}: ${e.message} (at ${revision.slice(0, 7)}); ${good ? 'the last valid desired state stays live' : 'nothing is applied until it is fixed'}`;
    return { state: good?.state ?? null, text, lines: good?.lines ?? {}, error: { message, line: e.line, column: e.column } };
  }

  /** Appends sync.changed when anything but the time of the look changed. */
  private publish(info: SyncInfo): void {
    if (this.disposed) return;
    const before = this.infos.get(info.environment);
    this.infos.set(info.environment, info);
    const key = (i: SyncInfo) => JSON.stringify({ ...i, checkedAt: '' });
    if (!before || key(before) !== key(info)) this.opts.store.append({ type: 'sync.changed', status: info });
    if (info.sync === 'Synced' && !this.opts.deployer.busy(info.environment)) {
      const healed = this.healing.get(info.environment);
      if (healed) {
        this.healing.delete(info.environment);
        this.failedHeal.delete(info.environment);
        this.opts.store.append({ type: 'drift.detected', environment: info.environment, revision: info.revision, items: healed, action: 'healed' });
      }
      this.reported.delete(info.environment);
    }
  }

  /** One drift.detected per distinct drift and action. */
  private reportDrift(info: SyncInfo, items: DriftItem[], action: 'healing' | 'reported' | 'paused'): void {
    const key = JSON.stringify([items.map((i) => [i.path, i.kind, i.live]), action]);
    if (this.reported.get(info.environment) === key) return;
    this.reported.set(info.environment, key);
    this.opts.store.append({ type: 'drift.detected', environment: info.environment, revision: info.revision, items, action });
  }

  // -- what the API offers ---------------------------------------------------------------------

  status(environment: string): SyncInfo | null {
    return this.infos.get(environment) ?? null;
  }

  /** The desired state file and the live state, side by side. */
  async view(environment: string): Promise<Result<StateView, ApiError>> {
    const c = await this.compare(environment);
    if (!c) return err({ error: `no environment named "${environment}"`, fix: 'conveyor envs lists them' });
    this.publish(c.info);
    return ok({
      sync: c.info,
      desired: c.desired.text,
      live: renderLive(environment, c.live, c.observed, c.env.runtime, c.problem),
      lines: c.desired.lines,
      repo: this.opts.repo.remote,
      branch: this.opts.repo.branch,
    });
  }

  /** Applies the desired state now, whatever the policy says; with dryRun, says what it would do. */
  async sync(environment: string, dryRun: boolean, requestedBy: string): Promise<Result<SyncResult, ApiError>> {
    await this.refresh(true);
    const c = await this.compare(environment);
    if (!c) return err({ error: `no environment named "${environment}"`, fix: 'conveyor envs lists them' });
    this.publish(c.info);
    if (this.opts.deployer.busy(environment)) return err({ error: `a deployment of ${environment} is in progress`, fix: 'wait for it to end, then sync' });
    if (c.desired.error && !c.desired.state) return err({ error: c.desired.error.message, fix: c.desired.fix ?? `fix ${c.info.file} on ${this.opts.repo.branch} and commit` });
    const plan: string[] = [];
    let deploy: (() => Result<Scheduled, ApiError>) | undefined;
    if (c.desiredItems.length && c.desired.state) {
      const s = c.desired.state;
      plan.push(`deploy ${describeArtifact(s.artifact)} to ${environment} as git says (${c.desiredItems.map((i) => i.path).join(', ')})`);
      deploy = () => this.opts.deployer.syncTo(environment, s, c.info.revision ?? 'unknown', requestedBy);
    } else if (c.driftItems.length && c.live) {
      const live = c.live;
      plan.push(`apply ${environment}@${live.number} again: ${c.driftItems.map((i) => i.message).join('; ')}`);
      deploy = () => this.opts.deployer.heal(environment, requestedBy);
    } else if (c.driftItems.length && c.observed) {
      plan.push(...c.driftItems.map((i) => `remove ${i.path}`));
    }
    if (dryRun || plan.length === 0) return ok({ sync: c.info, plan, dryRun, deployment: null });
    let deployment: DeploymentInfo | null = null;
    if (deploy) {
      const r = deploy();
      if (!r.ok) return r;
      deployment = r.value.deployment;
      if (c.driftItems.length) this.healing.set(environment, c.driftItems);
    } else if (c.observed) {
      await this.prune(c.env, c.observed, c.live);
      void this.check(environment);
    }
    return ok({ sync: c.info, plan, dryRun, deployment });
  }

  async setPaused(environment: string, paused: boolean): Promise<Result<SyncInfo, ApiError>> {
    if (!this.opts.deployer.environments().some((e) => e.name === environment)) return err({ error: `no environment named "${environment}"`, fix: 'conveyor envs lists them' });
    if (paused) this.opts.store.setMeta(PAUSED(environment), '1');
    else this.opts.store.deleteMeta(PAUSED(environment));
    await this.check(environment);
    return ok(this.infos.get(environment)!);
  }

  // -- the recorder: deployments are commits -------------------------------------------------

  async record(release: Release, d: DeploymentInfo): Promise<void> {
    // A sync applies what git already says; a heal re-applies the live release: nothing to commit.
    if (d.trigger === 'sync' || d.trigger === 'heal') return;
    const env = release.environment;
    const file = this.opts.repo.fileOf(env);
    const text = renderState(stateOfRelease(release));
    let subject = `deploy ${env}@${release.number}: ${describeArtifact(release.artifact)}`;
    let body = '';
    if (d.trigger === 'rollback') {
      subject = `rollback ${env} to @${release.number}: ${describeArtifact(release.artifact)}`;
      const [last] = await this.opts.repo.log(file, 1);
      if (last?.parent) {
        const before = await this.opts.repo.read(file, last.parent);
        if (before === text) {
          subject = `Revert "${last.subject}"`;
          body = `This reverts commit ${last.sha}.\n\n`;
        }
      }
    }
    body += [
      `Deployment #${d.id} (${d.trigger}) by ${d.requestedBy}.`,
      `Release: ${env}@${release.number}`,
      release.runId !== null ? `Run: #${release.runId}${d.stage ? ` (stage ${d.stage})` : ''}` : null,
      release.commit ? `Source-Commit: ${release.commit}` : null,
    ]
      .filter(Boolean)
      .join('\n');
    await this.commitText(env, file, text, `${subject}\n\n${body}`, d.requestedBy);
  }

  async revert(failed: Release, restored: Release | undefined, reason: string, d: DeploymentInfo): Promise<void> {
    const env = failed.environment;
    const file = this.opts.repo.fileOf(env);
    const [last] = await this.opts.repo.log(file, 1);
    const tipText = last ? await this.opts.repo.read(file, last.sha) : null;
    const wanted = restored ? renderState(stateOfRelease(restored)) : null;
    if (tipText === wanted) return;
    const before = last?.parent ? await this.opts.repo.read(file, last.parent) : null;
    // A true revert when the commit before puts back what still runs; else the state of what runs.
    const revertable = last && restored && before !== null && (() => {
      const p = parseState(before, env);
      return p.ok && desiredDiff(p.value.state, restored).length === 0;
    })();
    const text = revertable ? before : wanted;
    const subject = last ? `Revert "${last.subject}"` : `${env}: back to what runs`;
    const body = `${last ? `This reverts commit ${last.sha}.\n\n` : ''}Deployment #${d.id} of ${env}@${failed.number} did not go live: ${reason.split('\n')[0]}.\n${restored ? `${env}@${restored.number} still serves.` : `Nothing of ${env} runs.`}`;
    await this.commitText(env, file, text, `${subject}\n\n${body}`, 'Conveyor (rollback)');
    if (d.trigger === 'sync') this.failedHeal.set(`${env}:${this.tip}`, Date.now());
  }

  async forget(environment: string, reason: string): Promise<void> {
    await this.commitText(environment, this.opts.repo.fileOf(environment), null, `remove ${environment}\n\n${reason}`, 'Conveyor');
  }

  settled(environment: string): void {
    void this.refresh(false)
      .catch(() => undefined)
      .then(() => this.check(environment));
  }

  private async commitState(release: Release, subject: string, author: string, body: string): Promise<void> {
    await this.commitText(release.environment, this.opts.repo.fileOf(release.environment), renderState(stateOfRelease(release)), `${subject}\n\n${body}`, author);
  }

  private async commitText(environment: string, file: string, text: string | null, message: string, author: string): Promise<string | null> {
    const sha = await this.opts.repo.commit({ file, text, message, author });
    if (!sha || this.disposed) return sha;
    this.commits++;
    this.tip = sha;
    this.opts.store.append({ type: 'state.committed', environment, branch: this.opts.repo.branch, commit: sha, message: message.split('\n')[0] });
    return sha;
  }

  /** Stops looking and waits for the looks in flight. */
  async close(): Promise<void> {
    this.dispose();
    await Promise.all([...this.ticks, ...this.running.values()]);
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.fullTimer);
    clearTimeout(this.imageTimer);
    for (const w of this.watches.values()) w.sub.dispose();
    this.watches.clear();
  }
}
