import { execFile } from 'node:child_process';
import * as vscode from 'vscode';
import { AgentHttp, type AgentEndpoint } from '../agent/agentApi';
import { isAlive, probeAgent, readDiscovery } from '../agent/discovery';
import { followEvents } from '../agent/eventStream';
import { AgentSupervisor, type AgentLaunch, type BackoffPolicy } from '../agent/supervisor';
import { MAX_RUNS, RunModel } from '../model/runModel';
import { errorMessage, Signal, sleep, waitForEvent } from '../util/async';

/**
 *   starting ──seeded + stream open──> connected ──socket closed──> reconnecting ──> connected
 *      │                                                             │
 *      └── no agent and none may be started (autoStart off, stopped, gave up) ──> offline
 *   offline ──Start Agent / settings──> starting
 */
export type SessionState = 'starting' | 'connected' | 'reconnecting' | 'offline';

export interface FolderSessionOptions {
  folder: vscode.WorkspaceFolder;
  log: vscode.LogOutputChannel;
  /** One line of the agent's output. */
  agentOutput(folder: vscode.WorkspaceFolder, line: string): void;
  launch(folder: vscode.WorkspaceFolder): AgentLaunch;
  autoStart(): boolean;
  onCrashed(session: FolderSession, detail: string): void;
  onGaveUp(session: FolderSession, detail: string): void;
  backoff?: Partial<BackoffPolicy>;
}

/**
 * Everything Conveyor does for one workspace folder: finds or starts its agent, follows its
 * event stream into a RunModel, and reconnects after any drop, resuming after the last seq it
 * applied, so the views neither miss nor repeat an event.
 */
export class FolderSession implements vscode.Disposable {
  readonly model = new RunModel();
  readonly supervisor: AgentSupervisor;
  private _state: SessionState = 'starting';
  private _offlineReason = '';
  private _http: AgentHttp | undefined;
  private _branch: string | undefined;
  private readonly wake = new Signal();
  private readonly abort = new AbortController();
  private streamAbort: AbortController | undefined;
  private userStopped = false;
  /** What keeps the session from starting an agent until the user starts one (a lock held by a silent agent). */
  private problem: string | undefined;
  private startRequested = false;
  private loop: Promise<void> | undefined;
  private readonly details = new Map<number, Promise<void>>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly _onDidChangeState = new vscode.EventEmitter<SessionState>();
  readonly onDidChangeState = this._onDidChangeState.event;
  private readonly _onDidChangeBranch = new vscode.EventEmitter<string | undefined>();
  readonly onDidChangeBranch = this._onDidChangeBranch.event;

  constructor(private readonly opts: FolderSessionOptions) {
    const folder = opts.folder;
    this.supervisor = new AgentSupervisor({
      folder: folder.uri.fsPath,
      label: folder.name,
      launch: () => opts.launch(folder),
      output: (line) => opts.agentOutput(folder, line),
      log: opts.log,
      onCrashed: (detail) => opts.onCrashed(this, detail),
      onGaveUp: (detail) => opts.onGaveUp(this, detail),
      backoff: opts.backoff,
    });
    this.disposables.push(this.supervisor, this.model, this._onDidChangeState, this._onDidChangeBranch);
    this.disposables.push(this.supervisor.onDidChangeState(() => this.wake.fire()));
    const head = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '.git/HEAD'));
    this.disposables.push(head, head.onDidChange(() => void this.updateBranch()), head.onDidCreate(() => void this.updateBranch()));
    this.disposables.push(
      this.model.onDidChange((c) => {
        if (c.listChanged) void this.updateBranch();
      }),
    );
  }

  get folder(): vscode.WorkspaceFolder {
    return this.opts.folder;
  }

  get state(): SessionState {
    return this._state;
  }

  /** Why the session is offline, for views and messages. */
  get offlineReason(): string {
    return this._offlineReason;
  }

  /** A client of the agent while connected. */
  get http(): AgentHttp | undefined {
    return this._state === 'connected' ? this._http : undefined;
  }

  /** The branch checked out in the folder, when on one. */
  get branch(): string | undefined {
    return this._branch;
  }

  /** The agent's pid while one is known. */
  get agentPid(): number | undefined {
    return this._http?.endpoint.pid;
  }

  /** True when the agent was started by this window (its output is in the Conveyor Agent channel). */
  get ownsAgent(): boolean {
    return this.supervisor.pid !== undefined;
  }

  start(): void {
    this.loop ??= this.run().catch((e: unknown) => this.opts.log.error(`session for ${this.folder.name} ended: ${errorMessage(e)}`));
    void this.updateBranch();
  }

  private setState(state: SessionState, reason = ''): void {
    this._offlineReason = state === 'offline' ? reason : '';
    if (this._state === state) return;
    this._state = state;
    this.opts.log.info(`${this.folder.name}: ${state}${reason ? ` (${reason})` : ''}`);
    this._onDidChangeState.fire(state);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      const endpoint = await this.locate();
      if (signal.aborted) return;
      if (!endpoint) {
        this.setState('offline', this.whyNotStarting());
        await this.wake.wait(signal);
        if (!signal.aborted && this.mayStart()) this.setState('starting');
        continue;
      }
      const http = new AgentHttp(endpoint);
      this._http = http;
      try {
        await this.seed(http);
        this.streamAbort = new AbortController();
        const onAbort = () => this.streamAbort?.abort();
        signal.addEventListener('abort', onAbort, { once: true });
        const end = await followEvents(
          endpoint,
          () => this.model.lastSeq,
          {
            onHello: (hello) => {
              if (hello.lastSeq < this.model.lastSeq) {
                // The agent's history is not the one the model folded (.conveyor was removed).
                this.opts.log.warn(`${this.folder.name}: the agent's history restarted at ${hello.lastSeq} (had ${this.model.lastSeq}); reloading`);
                this.model.reset();
                return false;
              }
              attempt = 0;
              this.setState('connected');
              return true;
            },
            onEvents: (events) => this.model.apply(events),
          },
          this.streamAbort.signal,
        );
        signal.removeEventListener('abort', onAbort);
        this.opts.log.info(`${this.folder.name}: event stream ended: ${end.reason}`);
      } catch (e) {
        this.opts.log.warn(`${this.folder.name}: ${errorMessage(e)}`);
      }
      if (signal.aborted) return;
      this.setState(this.model.lastSeq > 0 ? 'reconnecting' : 'starting');
      await sleep(Math.min(2000, 100 * 2 ** attempt++), signal);
    }
  }

  /** Seeds the model from REST: on first contact the runs, always the config. */
  private async seed(http: AgentHttp): Promise<void> {
    const health = await http.health();
    if (health.lastSeq < this.model.lastSeq) this.model.reset();
    const seqBefore = this.model.lastSeq;
    const fresh = seqBefore === 0;
    if (fresh) {
      const runs = await http.listRuns(MAX_RUNS);
      this.model.seedRuns(runs, seqBefore);
      this.model.fastForward(health.lastSeq);
      // The newest run and the runs in flight are shown expanded and in the status bar.
      const wanted = new Set([...(runs[0] ? [runs[0].id] : []), ...health.activeRuns]);
      await Promise.all([...wanted].map((id) => this.ensureDetail(id, http)));
    }
    this.model.seedConfig(await http.config(), fresh ? health.lastSeq : seqBefore);
  }

  /** Finds a live agent, or starts one when allowed; undefined when there is none to use. */
  private async locate(): Promise<AgentEndpoint | undefined> {
    const folder = this.folder.uri.fsPath;
    for (let round = 0; !this.abort.signal.aborted; round++) {
      const found = await probeAgent(folder);
      if (found) return found;
      if (this.supervisor.busy) {
        await waitForEvent(this.supervisor.onDidChangeState, () => true, 5000);
        continue;
      }
      if (!this.mayStart()) return undefined;
      this.setState(this._state === 'connected' ? 'reconnecting' : this._state === 'offline' ? 'starting' : this._state);
      const outcome = await this.supervisor.start();
      if (outcome === 'another') {
        // The agent holding the lock may still be writing its discovery file.
        for (let i = 0; i < 50 && !this.abort.signal.aborted; i++) {
          const ep = await probeAgent(folder);
          if (ep) return ep;
          await sleep(200, this.abort.signal);
        }
        const holder = (await readDiscovery(folder))?.pid;
        this.problem = `another agent${holder ? ` (pid ${holder})` : ''} holds .conveyor/agent.lock but does not answer`;
        return undefined;
      }
      if (outcome === 'stopped') return undefined;
      if (round > 100) return undefined;
    }
    return undefined;
  }

  private mayStart(): boolean {
    if (this.userStopped || this.problem) return false;
    if (this.supervisor.state === 'gaveUp') return false;
    return this.startRequested || this.opts.autoStart();
  }

  private whyNotStarting(): string {
    if (this.userStopped) return 'the agent was stopped';
    if (this.problem) return this.problem;
    if (this.supervisor.state === 'gaveUp') return 'the agent kept failing';
    if (!this.opts.autoStart()) return 'conveyor.agent.autoStart is off';
    return 'the agent is not running';
  }

  /** Makes sure the run's stages and steps are known (GET /api/runs/:id once). */
  ensureDetail(id: number, http = this.http): Promise<void> {
    const run = this.model.get(id);
    if (run?.complete || !http) return Promise.resolve();
    let p = this.details.get(id);
    if (!p) {
      const seqBefore = this.model.lastSeq;
      p = http
        .getRun(id)
        .then((detail) => this.model.mergeDetail(detail, seqBefore))
        .catch((e: unknown) => this.opts.log.warn(`${this.folder.name}: run #${id}: ${errorMessage(e)}`))
        .finally(() => this.details.delete(id));
      this.details.set(id, p);
    }
    return p;
  }

  /**
   * A client for a command: waits for the agent (starting it when allowed) up to timeoutMs.
   * Throws with a message for the user when there is none.
   */
  async requireApi(timeoutMs = 45_000): Promise<AgentHttp> {
    if (this.http) return this.http;
    if (this._state === 'offline') {
      if (!this.mayStart()) throw new Error(`The Conveyor agent for ${this.folder.name} is not running (${this._offlineReason}). Start it with "Conveyor: Start Agent".`);
      this.wake.fire();
    }
    await waitForEvent(this.onDidChangeState, (s) => s === 'connected' || s === 'offline', timeoutMs);
    if (this.http) return this.http;
    throw new Error(`The Conveyor agent for ${this.folder.name} is not reachable${this._offlineReason ? ` (${this._offlineReason})` : ''}. See "Conveyor: Show Agent Log".`);
  }

  /** Start Agent: clears a stop or a give-up and connects (starting one if none runs). */
  async startAgent(timeoutMs = 45_000): Promise<void> {
    this.userStopped = false;
    this.problem = undefined;
    this.startRequested = true;
    this.supervisor.resetFailures();
    if (this._state === 'offline') this.setState('starting');
    this.wake.fire();
    await this.requireApi(timeoutMs);
  }

  /** Stop Agent: stops the agent (ours, or one found running) and stays offline until started. */
  async stopAgent(): Promise<void> {
    this.userStopped = true;
    this.startRequested = false;
    const ownPid = this.supervisor.pid;
    await this.supervisor.stop();
    const d = await readDiscovery(this.folder.uri.fsPath);
    if (d && d.pid !== ownPid && isAlive(d.pid)) {
      process.kill(d.pid, 'SIGTERM');
      for (let i = 0; i < 150 && isAlive(d.pid); i++) await sleep(100);
    }
    if (this._state === 'offline') return;
    this.streamAbort?.abort();
    await waitForEvent(this.onDidChangeState, (s) => s === 'offline', 10_000);
  }

  async restartAgent(): Promise<void> {
    await this.stopAgent();
    await this.startAgent();
  }

  /** Drops the model and loads it again from the agent. */
  refresh(): void {
    this.model.reset();
    this.streamAbort?.abort();
    this.wake.fire();
  }

  /** Tries again now (after a settings change, or to leave offline). */
  poke(): void {
    this.wake.fire();
  }

  private async updateBranch(): Promise<void> {
    const branch = await new Promise<string | undefined>((resolve) => {
      execFile('git', ['symbolic-ref', '--short', '-q', 'HEAD'], { cwd: this.folder.uri.fsPath, timeout: 5000 }, (err, stdout) => {
        resolve(err ? undefined : stdout.trim() || undefined);
      });
    });
    if (branch !== this._branch) {
      this._branch = branch;
      this._onDidChangeBranch.fire(branch);
    }
  }

  dispose(): void {
    this.abort.abort();
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
