import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { version as packageVersion } from '../package.json';
import { analyzeConfigText, CONFIG_FILE_NAMES, loadConfig, locateConfigKey } from './config';
import { Deployer } from './deploy/deployer';
import { Alerts } from './alerts/alerts';
import { Engine } from './engine/engine';
import { Metrics } from './metrics/metrics';
import { StateRepo } from './gitops/repo';
import { Reconciler } from './gitops/reconciler';
import { findRepo, git, GitError, type RepoInfo } from './engine/git';
import { resolveSecrets } from './engine/secrets';
import { Runtimes } from './runtimes/runtimes';
import type { AgentDiscovery, AlertsConfig, ConfigState, Diagnostic, GitOpsConfig, Health, WatchState } from './protocol';
import { DISCOVERY_FILE, PROTOCOL_VERSION } from './protocol';
import { startServer, type ServerHandle } from './server/server';
import { Store } from './store/store';
import { reportUnexpected } from './util/lifecycle';
import { CommitWatcher } from './watch/commits';
import { DevelopLoop } from './watch/develop';
import { isAlive } from './util/process';

export { isAlive };

export const VERSION: string = packageVersion;

export interface AgentOptions {
  /** The workspace folder (where conveyor.yml is, or will be). */
  workspace: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Start runs for new commits on the followed branches. Default true. */
  commitTrigger?: boolean;
  /** How often to look at branch tips, in ms. */
  pollMs?: number;
  /** Start ready stages in random order (exposes missing needs). */
  shuffle?: boolean;
  /** Run the develop loop (save runs) when the config declares watch stages. Default true. */
  watch?: boolean;
  /** Environment for steps. Default: the agent's. */
  env?: NodeJS.ProcessEnv;
}

/** Another agent already serves this workspace. */
export class AgentRunningError extends Error {
  constructor(readonly discovery: AgentDiscovery | undefined, readonly pid: number) {
    super(`an agent already runs for this workspace (pid ${pid}${discovery ? `, port ${discovery.port}` : ''}); stop it with "conveyor stop"`);
  }
}

/**
 * The agent for one workspace: the store, the engine, the triggers and the API, wired together.
 * One agent per workspace, enforced by a lock file holding its pid.
 */
export class Agent {
  readonly conveyorDir: string;
  readonly store: Store;
  readonly engine: Engine;
  readonly deployer: Deployer;
  readonly runtimes: Runtimes;
  /** The GitOps reconciler; undefined when the workspace is not in a git repository. */
  reconciler: Reconciler | undefined;
  readonly metrics: Metrics;
  readonly alerts: Alerts;
  private server!: ServerHandle;
  private readonly token = randomBytes(32).toString('base64url');
  private configState: ConfigState;
  private readonly startedAt = new Date().toISOString();
  private configWatcher: fs.FSWatcher | undefined;
  private commitWatcher: CommitWatcher | undefined;
  private configTimer: NodeJS.Timeout | undefined;
  private previewTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private develop: DevelopLoop | undefined;
  private developKey = '';
  private gitopsKey = '';
  private alertRules: AlertsConfig | null = null;
  private watchEnabled: boolean;

  private constructor(
    private readonly opts: AgentOptions,
    readonly workspace: string,
    conveyorDir: string,
    store: Store,
    readonly repo: RepoInfo | undefined,
    config: ConfigState,
  ) {
    this.conveyorDir = conveyorDir;
    this.store = store;
    this.configState = config;
    this.watchEnabled = opts.watch !== false;
    this.runtimes = new Runtimes({
      conveyorDir,
      store,
      settingsOf: (name) => (this.configState.valid ? this.configState.config.environments.find((e) => e.name === name)?.settings ?? {} : {}),
    });
    this.deployer = new Deployer({
      store,
      currentConfig: () => this.configState,
      runtime: (name) => this.runtimes.get(name),
      publicPort: (env) => this.runtimes.publicPort(env),
      route: (environment, port, upstream) => this.runtimes.switchboard.route(environment, port, upstream),
      freePort: (environment) => {
        this.runtimes.switchboard.close(environment);
        this.store.deleteMeta(`port:${environment}`);
      },
      secrets: () => {
        const names = this.configState.valid ? this.configState.config.secrets : [];
        return Object.fromEntries(resolveSecrets(names, workspace, opts.env ?? process.env).values);
      },
      // Bound late: the reconciler needs the deployer, and follows the config's gitops settings.
      desired: repo
        ? {
            record: (release, d) => this.reconciler?.record(release, d) ?? Promise.resolve(),
            revert: (failed, restored, reason, d) => this.reconciler?.revert(failed, restored, reason, d) ?? Promise.resolve(),
            forget: (environment, reason) => this.reconciler?.forget(environment, reason) ?? Promise.resolve(),
            settled: (environment) => this.reconciler?.settled(environment),
            status: (environment) => this.reconciler?.status(environment) ?? null,
          }
        : undefined,
      locate: (environment, keyPath) => {
        const at = locateConfigKey(this.configState.file, ['environments', environment, ...keyPath]);
        return at && { ...at, file: path.relative(workspace, at.file) };
      },
    });
    this.metrics = new Metrics(store, { repo: repo?.root ?? null });
    this.alerts = new Alerts({
      store,
      // The last valid rules: a commit that breaks conveyor.yml is exactly what pipelineFailed is for.
      config: () => (this.configState.valid ? (this.alertRules = this.configState.config.alerts) : this.alertRules),
      branches: () => (this.configState.valid ? this.configState.config.pipeline.branches : []),
      slowdown: (subject, newest, pct) => {
        const r = this.metrics.slowdown(subject, newest, pct);
        return r.ok ? r.value : null;
      },
    });
    this.engine = new Engine({
      deployer: this.deployer,
      workspace,
      conveyorDir,
      store,
      repo,
      currentConfig: () => this.configState,
      shuffle: opts.shuffle,
      env: opts.env,
    });
  }

  static async start(opts: AgentOptions): Promise<Agent> {
    const workspace = fs.realpathSync(path.resolve(opts.workspace));
    const conveyorDir = path.join(workspace, '.conveyor');
    fs.mkdirSync(conveyorDir, { recursive: true, mode: 0o700 });
    // The folder ignores itself, so nothing the agent writes shows up in git, and no tracked
    // file of the user's (.gitignore) has to change.
    const selfIgnore = path.join(conveyorDir, '.gitignore');
    if (!fs.existsSync(selfIgnore)) fs.writeFileSync(selfIgnore, '*\n');
    acquireLock(conveyorDir);
    let store: Store | undefined;
    try {
      store = Store.open(path.join(conveyorDir, 'history.db'));
      const repo = await findRepo(workspace);
      const config = await loadConfig(workspace);
      const agent = new Agent(opts, workspace, conveyorDir, store, repo, config);
      await agent.init();
      return agent;
    } catch (e) {
      store?.dispose();
      releaseLock(conveyorDir);
      throw e;
    }
  }

  private async init(): Promise<void> {
    const interrupted = await this.engine.recover();
    await this.runtimes.restore();
    this.updateReconciler();
    await this.deployer.recover();
    this.store.append({ type: 'agent.started', pid: process.pid, version: VERSION, interruptedRuns: interrupted });
    this.reconciler?.start();
    this.store.append({ type: 'config.changed', state: this.configState });
    this.server = await startServer(this, this.token, this.opts.port ?? 0);
    this.writeDiscovery();
    this.watchConfig();
    this.updateDevelopLoop();
    this.schedulePreviewPrune();
    if (this.opts.commitTrigger !== false && this.repo) {
      this.commitWatcher = new CommitWatcher({
        cwd: this.workspace,
        store: this.store,
        branches: () => (this.configState.valid ? this.configState.config.pipeline.branches : []),
        onNewTip: (branch, sha) => {
          void this.engine.start({ trigger: 'commit', commit: sha, branch }).then((r) => {
            if (!r.ok) process.emitWarning(`no run for ${branch} at ${sha.slice(0, 7)}: ${r.error.error}`);
          });
        },
        intervalMs: this.opts.pollMs,
      });
      this.commitWatcher.start();
    }
  }

  get port(): number {
    return this.server.port;
  }

  get discovery(): AgentDiscovery {
    return {
      port: this.server.port,
      pid: process.pid,
      token: this.token,
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      workspace: this.workspace,
      startedAt: this.startedAt,
    };
  }

  health(): Health {
    return {
      ok: true,
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      pid: process.pid,
      workspace: this.workspace,
      startedAt: this.startedAt,
      lastSeq: this.store.lastSeq,
      configValid: this.configState.valid,
      activeRuns: this.engine.activeRunIds,
      sqlite: this.store.engine.name,
    };
  }

  config(): ConfigState {
    return this.configState;
  }

  validate(text: string): Diagnostic[] {
    return analyzeConfigText(text, path.join(this.workspace, CONFIG_FILE_NAMES[0]), { defaultName: path.basename(this.workspace) }).diagnostics;
  }

  /** The save stages the config declares: watch.stages, else every stage whose when includes save. */
  private saveStages(): string[] {
    if (!this.configState.valid) return [];
    const c = this.configState.config;
    return c.watch.stages.length ? c.watch.stages : c.pipeline.stages.filter((s) => s.when.includes('save')).map((s) => s.name);
  }

  watchState(): WatchState {
    const stages = this.saveStages();
    let problem: string | null = null;
    if (!this.configState.valid) problem = 'conveyor.yml is not valid';
    else if (stages.length === 0) problem = 'no stage runs on save: add "watch: { stages: [test] }" or "when: [save]" to a stage';
    return { enabled: this.watchEnabled, ready: !!this.develop && this.develop.state !== 'starting', stages, problem };
  }

  /** Turns the develop loop on or off (the editor's continuous run). */
  setWatch(enabled: boolean): WatchState {
    this.watchEnabled = enabled;
    this.updateDevelopLoop();
    return this.watchState();
  }

  /** Starts, restarts or stops the develop loop to match the config and the switch. */
  private updateDevelopLoop(): void {
    const stages = this.saveStages();
    const wanted = this.watchEnabled && !this.stopped && stages.length > 0 && this.configState.valid;
    const key = wanted && this.configState.valid ? JSON.stringify([this.configState.config.watch, stages]) : '';
    if (key === this.developKey) return;
    this.developKey = key;
    this.develop?.dispose();
    this.develop = undefined;
    if (!wanted || !this.configState.valid) return;
    const c = this.configState.config;
    // What the pipeline writes (reports, artifacts) must not start the next save run.
    const outputs = c.pipeline.stages.flatMap((s) => [
      ...(s.report ? [path.posix.join(s.workdir, s.report.path)] : []),
      ...s.artifacts.map((a) => path.posix.join(s.workdir, a)),
    ]);
    this.develop = new DevelopLoop({
      root: this.workspace,
      watch: { ...c.watch, exclude: [...c.watch.exclude, ...outputs] },
      start: async (impact) => {
        const r = await this.engine.start({ trigger: 'save', workingTree: true, stages, impact });
        if (r.ok) await this.engine.whenFinished(r.value.id);
        else process.emitWarning(`no save run: ${r.error.error}`);
      },
    });
  }

  /**
   * Makes the reconciler match the config's gitops settings (where the desired state lives).
   * Returns true when it made a new one.
   */
  private updateReconciler(): boolean {
    if (!this.repo || this.stopped) return false;
    const gitops: GitOpsConfig = this.configState.valid ? this.configState.config.gitops : { repo: null, branch: 'conveyor/state', path: 'environments', intervalMs: 30_000 };
    const key = JSON.stringify({ ...gitops, intervalMs: 0 });
    if (this.reconciler && key === this.gitopsKey) return false;
    this.gitopsKey = key;
    this.reconciler?.dispose();
    const repo = new StateRepo({ workspaceRepo: this.repo.root, config: gitops, cacheDir: path.join(this.conveyorDir, 'gitops') });
    this.reconciler = new Reconciler({
      store: this.store,
      repo,
      deployer: this.deployer,
      runtime: (name) => this.runtimes.get(name),
      intervalMs: () => (this.configState.valid ? this.configState.config.gitops.intervalMs : 30_000),
      pollMs: this.opts.pollMs,
    });
    return true;
  }

  /** Resolves when the develop loop has listed the tree and built its import graph. */
  async developReady(): Promise<void> {
    await this.develop?.ready;
  }

  /** Destroys previews whose branch was deleted; looks every few seconds while previews exist. */
  async prunePreviews(): Promise<string[]> {
    if (!this.repo) return [];
    return this.deployer.prunePreviews(async (branch) => {
      try {
        await git(this.workspace, ['show-ref', '--verify', '--quiet', `refs/heads/${branch}`]);
        return true;
      } catch (e) {
        // show-ref answers 1 for a missing ref; anything else (a locked repo) is not a deletion.
        return !(e instanceof GitError && e.code === 1);
      }
    });
  }

  private schedulePreviewPrune(): void {
    if (this.stopped) return;
    this.previewTimer = setTimeout(() => {
      const work = this.store.previews().length ? this.prunePreviews() : Promise.resolve([]);
      void work.catch(reportUnexpected).finally(() => this.schedulePreviewPrune());
    }, this.opts.pollMs ?? 5000);
  }

  /** Looks at the branch tips now instead of at the next interval. */
  async lookForCommits(): Promise<void> {
    await this.commitWatcher?.look();
  }

  private writeDiscovery(): void {
    const file = path.join(this.workspace, DISCOVERY_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.discovery, null, 2) + '\n', { mode: 0o600 });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, file);
  }

  /** Reloads conveyor.yml when it changes and tells subscribers if its meaning changed. */
  private watchConfig(): void {
    const reload = async () => {
      try {
        const next = await loadConfig(this.workspace);
        if (this.stopped || JSON.stringify(next) === JSON.stringify(this.configState)) return;
        this.configState = next;
        this.store.append({ type: 'config.changed', state: next });
        this.updateDevelopLoop();
        if (this.updateReconciler()) this.reconciler?.start();
      } catch (e) {
        reportUnexpected(e);
      }
    };
    try {
      this.configWatcher = fs.watch(this.workspace, (_event, name) => {
        if (name && !CONFIG_FILE_NAMES.includes(String(name))) return;
        clearTimeout(this.configTimer);
        this.configTimer = setTimeout(() => void reload(), 100);
      });
      this.configWatcher.on('error', () => undefined);
    } catch {
      // No watcher (an exotic file system): the config is read at start only.
    }
  }

  /** Stops triggers, interrupts runs and deployments in flight, closes the API and the store. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.configTimer);
    clearTimeout(this.previewTimer);
    this.configWatcher?.close();
    this.commitWatcher?.dispose();
    await this.reconciler?.close();
    const develop = this.develop;
    this.develop = undefined;
    await develop?.close();
    await this.engine.shutdown();
    // Before the store closes: deployments in flight are stopped and left for the next start.
    await this.deployer.stop();
    this.alerts.dispose();
    this.runtimes.dispose();
    await this.server.close();
    this.store.dispose();
    try {
      const file = path.join(this.workspace, DISCOVERY_FILE);
      const d = JSON.parse(fs.readFileSync(file, 'utf8')) as AgentDiscovery;
      if (d.pid === process.pid) fs.rmSync(file, { force: true });
    } catch {
      // Already gone.
    }
    releaseLock(this.conveyorDir);
  }
}

/** Takes `.conveyor/agent.lock`, or throws AgentRunningError if a live agent holds it. */
function acquireLock(conveyorDir: string): void {
  const lock = path.join(conveyorDir, 'agent.lock');
  for (let tries = 0; tries < 3; tries++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = Number(fs.readFileSync(lock, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      let discovery: AgentDiscovery | undefined;
      try {
        discovery = JSON.parse(fs.readFileSync(path.join(conveyorDir, 'agent.json'), 'utf8')) as AgentDiscovery;
      } catch {
        discovery = undefined;
      }
      throw new AgentRunningError(discovery, holder);
    }
    // A stale lock from an agent that died: take it over.
    fs.rmSync(lock, { force: true });
  }
  throw new Error(`could not take ${lock}; remove it if no agent is running`);
}

function releaseLock(conveyorDir: string): void {
  const lock = path.join(conveyorDir, 'agent.lock');
  try {
    if (Number(fs.readFileSync(lock, 'utf8').trim()) === process.pid) fs.rmSync(lock, { force: true });
  } catch {
    // Already gone.
  }
}
