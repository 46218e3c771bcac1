import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AgentClient } from '../../agent/cli/client';
import type { EnvironmentStatus, Health } from '../../agent/protocol';
import { ProcessRuntime } from '../../agent/runtimes/process';
import { sleep, spawnAgent, type TempRepo } from '../support/fixtures';
import { isAlive } from '../../agent/agent';

/** A real agent in its own process (`conveyor agent`), as the crash-prone suites need it. */
export class AgentProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly client: AgentClient,
    /** Everything the agent printed (its log). */
    readonly log: () => string,
  ) {}

  static async start(workspace: string, env: NodeJS.ProcessEnv = {}): Promise<AgentProcess> {
    const a = await spawnAgent(workspace, env);
    return new AgentProcess(a.child, new AgentClient(a.discovery), a.log);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get port(): number {
    return this.client.discovery.port;
  }

  get token(): string {
    return this.client.discovery.token;
  }

  /** The process is still running (it did not crash). */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  health(): Promise<Health> {
    return this.client.health();
  }

  /** kill -9, as a crash or the OOM killer would; resolves once the process is gone. */
  async kill9(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** A clean stop (SIGTERM), bounded: SIGKILL after 30 s. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Waits until nothing is in flight: no active run, and every environment with no deployment
   * running or queued and, when it has desired state in git, Synced. Resolves with the
   * environments then, or undefined when they did not settle within the bound.
   */
  async settled(timeoutMs = 60_000): Promise<EnvironmentStatus[] | undefined> {
    const deadline = Date.now() + timeoutMs;
    let quiet = 0;
    while (Date.now() < deadline) {
      const [health, envs] = await Promise.all([this.health(), this.client.request<EnvironmentStatus[]>('GET', '/environments')]);
      const idle = health.activeRuns.length === 0 && envs.every((e) => e.current === null && e.queue.length === 0 && (!e.sync || e.sync.sync === 'Synced'));
      // Twice in a row, a beat apart: a deployment the reconciler is about to start shows by then.
      quiet = idle ? quiet + 1 : 0;
      if (quiet >= 2) return envs;
      await sleep(300);
    }
    return undefined;
  }
}

/**
 * Stops every service instance the process runtime runs for a workspace's environments (they
 * outlive the agent by design), then any process still working in the workspace's folder: every
 * one of them was started by the suite that made the folder.
 */
export async function removeInstances(repo: TempRepo, environments: string[]): Promise<void> {
  const runtime = new ProcessRuntime({
    allocatePort: async () => 0,
    route: async () => undefined,
    artifactsDir: repo.path('.conveyor', 'artifacts'),
    stateDir: repo.path('.conveyor', 'runtimes', 'process'),
  });
  try {
    for (const env of environments) await runtime.remove(env).catch(() => undefined);
  } finally {
    runtime.dispose();
  }
  for (const pid of processesUnder(repo.dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

/** Processes whose working directory is inside `dir` (service instances, steps). */
export function processesUnder(dir: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cwd = fs.readlinkSync(`/proc/${name}/cwd`);
      if (cwd === dir || cwd.startsWith(dir + path.sep)) out.push(Number(name));
    } catch {
      // Exited, or not ours to look at.
    }
  }
  return out.filter(isAlive);
}

/** The process groups among `pids` (a service instance is one group: its shell and children). */
export function groupsOf(pids: number[]): Set<number> {
  const groups = new Set<number>();
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      groups.add(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]));
    } catch {
      // Exited.
    }
  }
  return groups;
}
