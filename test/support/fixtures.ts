import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent, type AgentOptions } from '../../agent/agent';
import type { AgentDiscovery, RunDetail, SequencedEvent } from '../../agent/protocol';
import { runIdOf } from '../../agent/store/store';

/** Path of the bundled CLI (built by `npm run build`). */
export const CLI = path.resolve(__dirname, '../../../dist/cli.js');

/** A real git repository in a temporary folder. */
export class TempRepo {
  readonly dir: string;

  constructor(files: Record<string, string> = {}) {
    this.dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-test-')));
    this.git('init', '-q', '-b', 'main');
    this.git('config', 'user.email', 'test@example.com');
    this.git('config', 'user.name', 'Test');
    this.git('config', 'commit.gpgsign', 'false');
    if (Object.keys(files).length) {
      this.write(files);
      this.commit('initial');
    }
  }

  git(...args: string[]): string {
    return execFileSync('git', args, { cwd: this.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  write(files: Record<string, string>): void {
    for (const [name, text] of Object.entries(files)) {
      const file = path.join(this.dir, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
    }
  }

  commit(message: string): string {
    this.git('add', '-A');
    this.git('commit', '-q', '--allow-empty', '-m', message);
    return this.git('rev-parse', 'HEAD').trim();
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A scratch folder outside any repository, for files that stages write to prove things. */
export function scratch(): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-scratch-')));
}

export async function startAgent(repo: TempRepo | string, opts: Partial<AgentOptions> = {}): Promise<Agent> {
  const workspace = typeof repo === 'string' ? repo : repo.dir;
  return Agent.start({ workspace, commitTrigger: false, watch: false, shuffle: true, ...opts });
}

/** Resolves with the run's detail once it has finished. */
export async function finished(agent: Agent, id: number, timeoutMs = 60_000): Promise<RunDetail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await agent.engine.whenFinished(id);
    const run = agent.store.getRun(id);
    if (run && ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run #${id} did not finish: ${JSON.stringify(run)}`);
    await sleep(20);
  }
}

export async function startRun(agent: Agent, req: Parameters<Agent['engine']['start']>[0]): Promise<number> {
  const r = await agent.engine.start(req);
  if (!r.ok) throw new Error(`start failed: ${JSON.stringify(r.error)}`);
  return r.value.id;
}

/** Waits until `check` returns a truthy value (bounded), polling. No timing is asserted. */
export async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function eventsOf(agent: Agent, runId?: number): SequencedEvent[] {
  const out: SequencedEvent[] = [];
  let since = 0;
  for (;;) {
    const batch = agent.store.events(since, 5000);
    if (batch.length === 0) return out;
    since = batch[batch.length - 1].seq;
    for (const e of batch) if (runId === undefined || runIdOf(e) === runId) out.push(e);
  }
}

/** Runs the bundled CLI and returns its exit code and output. */
export function cli(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, NO_COLOR: '1', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`conveyor ${args.join(' ')} did not finish; stdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Starts `conveyor agent` as its own process (for crash tests) and waits for its discovery file. */
export async function spawnAgent(workspace: string, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; discovery: AgentDiscovery; log: () => string }> {
  const before = readDiscoveryFile(workspace);
  let log = '';
  const child = spawn(process.execPath, [CLI, 'agent', '--workspace', workspace, '--no-commit-trigger'], {
    cwd: workspace,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const discovery = await until(() => {
    const d = readDiscoveryFile(workspace);
    return d && d.pid === child.pid && d !== before ? d : undefined;
  }, `agent discovery file (log: ${log})`);
  return { child, discovery, log: () => log };
}

export function readDiscoveryFile(workspace: string): AgentDiscovery | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(workspace, '.conveyor', 'agent.json'), 'utf8')) as AgentDiscovery;
  } catch {
    return undefined;
  }
}

/** A conveyor.yml from a list of stages written as YAML snippets. */
export function pipelineYaml(stages: string, extra = ''): string {
  return `pipeline:\n  maxParallel: 4\n  stages:\n${stages
    .trim()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n${extra}`;
}
