import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { sleep } from '../util/async';
import { probeAgent, readDiscovery } from './discovery';

/** How to start an agent: the program, its arguments and environment. */
export interface AgentLaunch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** The exit code with which `conveyor agent` says another agent already serves the folder. */
export const EXIT_AGENT_RUNNING = 3;

export interface SupervisorOptions {
  /** The workspace folder (file system path). */
  folder: string;
  /** The folder's name, for messages. */
  label: string;
  /** Computed at every start, so setting changes apply to the next one. */
  launch(): AgentLaunch;
  /** One line of the agent's output, for the "Conveyor Agent" channel. */
  output(line: string): void;
  log: vscode.LogOutputChannel;
  /** The first crash of a streak (the agent is being restarted). */
  onCrashed(detail: string): void;
  /** Too many crashes in the window: no more restarts until the user starts it. */
  onGaveUp(detail: string): void;
  backoff?: Partial<BackoffPolicy>;
}

export interface BackoffPolicy {
  /** Delay before the first restart; doubled after each crash, up to maxMs. */
  initialMs: number;
  maxMs: number;
  /** This many crashes within windowMs and the supervisor gives up. */
  maxFailures: number;
  windowMs: number;
  /** An agent that stayed up this long ends the crash streak. */
  stableMs: number;
  /** How long a new agent has to write its discovery file. */
  readyTimeoutMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  initialMs: 1000,
  maxMs: 30_000,
  maxFailures: 5,
  windowMs: 3 * 60_000,
  stableMs: 60_000,
  readyTimeoutMs: 30_000,
};

/**
 *   idle ──start()──> starting ──discovery file + health──> running
 *                        │  exit 3 (another agent holds the lock) ──> idle ("another")
 *                        └─ exit / time-out ─┐
 *   running ──crash──────────────────────────┴─> backoff ──timer──> starting
 *                                  too many crashes in the window ──> gaveUp
 *   any ──stop()──> idle
 */
export type SupervisorState = 'idle' | 'starting' | 'running' | 'backoff' | 'gaveUp';
export type StartOutcome = 'ready' | 'another' | 'failed' | 'stopped';

/**
 * Runs the agent of one workspace folder as a child process of the extension host and
 * restarts it with exponential backoff when it crashes. The user hears about a crash streak
 * once, and once more if the supervisor gives up. Its output goes to the "Conveyor Agent"
 * channel and to `.conveyor/agent.log`.
 */
export class AgentSupervisor implements vscode.Disposable {
  private _state: SupervisorState = 'idle';
  private child: ChildProcess | undefined;
  private starting: Promise<StartOutcome> | undefined;
  private stopRequested = false;
  private failures: number[] = [];
  private warned = false;
  private backoffTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private readonly policy: BackoffPolicy;
  private readonly _onDidChangeState = new vscode.EventEmitter<SupervisorState>();
  readonly onDidChangeState = this._onDidChangeState.event;

  constructor(private readonly opts: SupervisorOptions) {
    this.policy = { ...DEFAULT_BACKOFF, ...opts.backoff };
  }

  get state(): SupervisorState {
    return this._state;
  }

  /** The pid of the agent this supervisor runs, while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starting or waiting to restart: someone will have an agent soon. */
  get busy(): boolean {
    return this._state === 'starting' || this._state === 'backoff';
  }

  private setState(state: SupervisorState): void {
    if (this._state === state) return;
    this._state = state;
    this._onDidChangeState.fire(state);
  }

  /** Forgets the crash streak: the next crash warns again. The user asked for a start. */
  resetFailures(): void {
    this.failures = [];
    this.warned = false;
    if (this._state === 'gaveUp') this.setState('idle');
  }

  /** Starts the agent now (a pending restart is brought forward). */
  start(): Promise<StartOutcome> {
    if (this.disposed) return Promise.resolve('stopped');
    if (this.starting) return this.starting;
    if (this.child && this._state === 'running') return Promise.resolve('ready');
    clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    const p = this.spawnAgent().finally(() => {
      if (this.starting === p) this.starting = undefined;
    });
    this.starting = p;
    return p;
  }

  private async spawnAgent(): Promise<StartOutcome> {
    const { folder, log } = this.opts;
    this.stopRequested = false;
    this.setState('starting');
    const launch = this.opts.launch();
    const conveyorDir = path.join(folder, '.conveyor');
    let logFile: fs.WriteStream | undefined;
    try {
      await fs.promises.mkdir(conveyorDir, { recursive: true, mode: 0o700 });
      logFile = fs.createWriteStream(path.join(conveyorDir, 'agent.log'), { flags: 'a' });
      logFile.on('error', () => undefined);
    } catch (e) {
      log.warn(`cannot write ${conveyorDir}/agent.log: ${(e as Error).message}`);
    }
    log.info(`starting the agent for ${folder}: ${launch.command} ${launch.args.join(' ')}`);
    this.opts.output(`── starting: ${launch.command} ${launch.args.join(' ')}`);

    let child: ChildProcess;
    try {
      child = spawn(launch.command, launch.args, { cwd: folder, env: launch.env, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      logFile?.end();
      return this.crashed(`could not start ${launch.command}: ${(e as Error).message}`);
    }
    this.child = child;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: string }>((resolve) => {
      let spawnError: string | undefined;
      child.once('error', (e) => {
        spawnError = e.message;
        // A process that never started emits no 'exit'.
        if (child.pid === undefined) resolve({ code: null, signal: null, error: e.message });
      });
      child.once('exit', (code, signal) => resolve({ code, signal, error: spawnError }));
    });
    const forward = (stream: NodeJS.ReadableStream | null) => {
      if (!stream) return;
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        logFile?.write(chunk);
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.opts.output(line);
      });
      stream.on('end', () => {
        if (partial) this.opts.output(partial);
        partial = '';
      });
    };
    forward(child.stdout);
    forward(child.stderr);

    // Ready when the discovery file names this process and its API answers.
    let exit: { code: number | null; signal: NodeJS.Signals | null; error?: string } | undefined;
    void exited.then((e) => (exit = e));
    const deadline = Date.now() + this.policy.readyTimeoutMs;
    let ready = false;
    while (!exit && Date.now() < deadline && !this.stopRequested) {
      await sleep(100);
      const d = await readDiscovery(folder);
      if (d && d.pid === child.pid && (await probeAgent(folder, 2000))) {
        ready = true;
        break;
      }
    }
    void exited.then((e) => {
      logFile?.end();
      if (this.child === child) this.child = undefined;
      if (ready) this.onExit(e);
    });
    if (ready && !exit) {
      log.info(`agent ready (pid ${child.pid}) for ${folder}`);
      this.setState('running');
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => {
        this.failures = [];
        this.warned = false;
      }, this.policy.stableMs);
      return 'ready';
    }
    if (!exit) {
      if (this.stopRequested) return 'stopped';
      child.kill('SIGKILL');
      await exited;
      return this.crashed(`the agent did not become ready within ${Math.round(this.policy.readyTimeoutMs / 1000)} s`);
    }
    const e = exit as { code: number | null; signal: NodeJS.Signals | null; error?: string };
    if (this.stopRequested) {
      this.setState('idle');
      return 'stopped';
    }
    if (e.code === EXIT_AGENT_RUNNING) {
      log.info(`another agent already serves ${folder}; connecting to it`);
      this.setState('idle');
      return 'another';
    }
    return this.crashed(describeExit(e));
  }

  private onExit(e: { code: number | null; signal: NodeJS.Signals | null; error?: string }): void {
    clearTimeout(this.stableTimer);
    if (this.disposed || this.stopRequested) {
      this.setState('idle');
      return;
    }
    if (e.code === 0) {
      // Stopped on purpose from outside (conveyor stop): not a crash.
      this.opts.log.info(`the agent for ${this.opts.folder} stopped`);
      this.setState('idle');
      return;
    }
    this.crashed(describeExit(e));
  }

  private crashed(detail: string): 'failed' {
    const { log } = this.opts;
    log.warn(`agent for ${this.opts.folder}: ${detail}`);
    this.opts.output(`── ${detail}`);
    const now = Date.now();
    this.failures = this.failures.filter((t) => now - t < this.policy.windowMs);
    this.failures.push(now);
    if (this.failures.length >= this.policy.maxFailures) {
      log.error(`giving up on the agent for ${this.opts.folder} after ${this.failures.length} failures`);
      this.setState('gaveUp');
      this.opts.onGaveUp(`${detail}; it failed ${this.failures.length} times in ${Math.round(this.policy.windowMs / 60_000)} min`);
      return 'failed';
    }
    if (!this.warned) {
      this.warned = true;
      this.opts.onCrashed(detail);
    }
    const delay = Math.min(this.policy.maxMs, this.policy.initialMs * 2 ** (this.failures.length - 1));
    log.info(`restarting the agent for ${this.opts.folder} in ${delay} ms`);
    this.setState('backoff');
    clearTimeout(this.backoffTimer);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      if (this.disposed || this._state !== 'backoff') return;
      this.start().catch((err: unknown) => log.error(`restart failed: ${(err as Error).message}`));
    }, delay);
    return 'failed';
  }

  /** Stops the agent this supervisor runs (SIGTERM, then SIGKILL after graceMs) and any pending restart. */
  async stop(graceMs = 10_000): Promise<void> {
    clearTimeout(this.backoffTimer);
    clearTimeout(this.stableTimer);
    this.backoffTimer = undefined;
    this.stopRequested = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    }
    await this.starting?.catch(() => undefined);
    this.child = undefined;
    if (this._state !== 'gaveUp' || child) this.setState('idle');
  }

  dispose(): void {
    this.disposed = true;
    void this.stop(2000);
    this._onDidChangeState.dispose();
  }
}

function describeExit(e: { code: number | null; signal: NodeJS.Signals | null; error?: string }): string {
  if (e.error && e.code === null && !e.signal) return `the agent could not start: ${e.error}`;
  if (e.signal) return `the agent was killed by ${e.signal}`;
  return `the agent exited with code ${e.code}`;
}
