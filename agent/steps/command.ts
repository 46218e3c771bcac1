import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { StepInfo, StepStatus } from '../protocol';
import type { Store } from '../store/store';
import type { AbortReason, AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { stepLogName } from './executor';
import { runRemoteStep } from './remote';

/** How much of one step's output is streamed as events; the log file always has all of it. */
export const STREAM_LIMIT_BYTES = 8 * 1024 * 1024;
/** After SIGTERM, how long a process group has before SIGKILL. */
export const KILL_GRACE_MS = 3000;
/** After a step's shell exits, how long its output pipes may stay open (a background child). */
const DRAIN_MS = 200;

/** Where the process groups of steps are recorded while they may run (the agent's history). */
export type StepProcessRecord = Pick<Store, 'recordStepProcess' | 'forgetStepProcess'>;

/**
 * The `command` stage kind: each string of `run` is a step, run by `/bin/sh -c` in its own
 * process group. A step that fails ends the attempt; the steps after it are skipped. Process
 * groups still alive when the attempt ends (background children) are killed then. Each group is
 * recorded in `processes` from its start until it is killed, so that the agent started after a
 * crash can stop it (`stopLeftoverGroups`).
 */
export class CommandExecutor implements StageExecutor {
  readonly kind = 'command' as const;

  constructor(private readonly processes?: StepProcessRecord) {}

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const groups: ChildProcess[] = [];
    try {
      const commands = ctx.stage.run;
      for (let index = 0; index < commands.length; index++) {
        if (ctx.signal.aborted) {
          this.skipRest(ctx, index);
          return abortedOutcome(ctx.signal.reason as AbortReason, ctx);
        }
        const result = await this.runStep(ctx, index, groups);
        if (result.status !== 'succeeded') {
          this.skipRest(ctx, index + 1);
          if (result.status === 'failed') {
            const why = result.exitCode !== null ? `exit code ${result.exitCode}` : result.error ?? 'killed';
            return { status: 'failed', message: `${why} in step ${index + 1} (${oneLine(commands[index])})` };
          }
          return abortedOutcome(result.status === 'timed_out' ? 'timeout' : 'cancel', ctx);
        }
      }
      return { status: 'succeeded', message: null };
    } finally {
      for (const child of groups) {
        killGroup(child, 'SIGKILL');
        if (child.pid !== undefined) this.processes?.forgetStepProcess(child.pid);
      }
    }
  }

  private skipRest(ctx: AttemptContext, from: number): void {
    for (let index = from; index < ctx.stage.run.length; index++) {
      ctx.emit({ type: 'step.changed', step: this.stepInfo(ctx, index, 'skipped', null, null, null) });
    }
  }

  private stepInfo(
    ctx: AttemptContext,
    index: number,
    status: StepStatus,
    exitCode: number | null,
    startedAt: string | null,
    finishedAt: string | null,
  ): StepInfo {
    return {
      runId: ctx.runId,
      stage: ctx.stage.name,
      attempt: ctx.attempt,
      index,
      command: ctx.stage.run[index],
      status,
      exitCode,
      startedAt,
      finishedAt,
    };
  }

  private runStep(
    ctx: AttemptContext,
    index: number,
    groups: ChildProcess[],
  ): Promise<{ status: StepStatus; exitCode: number | null; error?: string }> {
    const startedAt = new Date().toISOString();
    ctx.emit({ type: 'step.changed', step: this.stepInfo(ctx, index, 'running', null, startedAt, null) });
    fs.mkdirSync(ctx.logDir, { recursive: true });
    const logFile = fs.openSync(path.join(ctx.logDir, stepLogName(ctx.attempt, index)), 'a', 0o600);
    let streamed = 0;
    let truncatedNotice = false;
    // The step's output is a stream of its own: what the masker holds back is this step's.
    const masker = ctx.masker.fork();
    const write = (text: string) => {
      if (!text) return;
      fs.writeSync(logFile, text);
      if (streamed < STREAM_LIMIT_BYTES) {
        streamed += text.length;
        ctx.emit({ type: 'log', runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, step: index, text });
      } else if (!truncatedNotice) {
        truncatedNotice = true;
        ctx.emit({
          type: 'log',
          runId: ctx.runId,
          stage: ctx.stage.name,
          attempt: ctx.attempt,
          step: index,
          text: `\n[conveyor] this step printed more than ${STREAM_LIMIT_BYTES >> 20} MiB; the rest is in its log file (conveyor logs ${ctx.runId} --stage ${ctx.stage.name})\n`,
        });
      }
    };

    const executor = ctx.stage.executor;
    if (executor && executor.kind !== 'local') {
      return runRemoteStep(ctx, index, executor, (text) => write(masker.push(text))).then(
        (r) => {
          write(masker.end());
          if (r.error) write(`[conveyor] ${r.error}\n`);
          fs.closeSync(logFile);
          ctx.emit({ type: 'step.changed', step: this.stepInfo(ctx, index, r.status, r.exitCode, startedAt, new Date().toISOString()) });
          return r;
        },
        (e: unknown) => {
          write(masker.end());
          write(`[conveyor] ${executor.kind} executor error: ${(e as Error)?.message ?? String(e)}\n`);
          fs.closeSync(logFile);
          ctx.emit({ type: 'step.changed', step: this.stepInfo(ctx, index, 'failed', null, startedAt, new Date().toISOString()) });
          return { status: 'failed' as const, exitCode: null, error: (e as Error)?.message };
        },
      );
    }
    return new Promise((resolve) => {
      let child: ChildProcess;
      const startFailed = (e: NodeJS.ErrnoException) => {
        const why = startError(e, ctx.cwd);
        write(`[conveyor] ${why}\n`);
        fs.closeSync(logFile);
        const finishedAt = new Date().toISOString();
        ctx.emit({ type: 'step.changed', step: this.stepInfo(ctx, index, 'failed', null, startedAt, finishedAt) });
        resolve({ status: 'failed', exitCode: null, error: why });
      };
      try {
        child = spawn('/bin/sh', ['-c', ctx.stage.run[index]], {
          cwd: ctx.cwd,
          env: ctx.env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (e) {
        startFailed(e as NodeJS.ErrnoException);
        return;
      }
      if (child.pid === undefined) {
        // Node throws some errors of spawn (E2BIG, above) and emits the others (ENOENT, EACCES,
        // EAGAIN, EMFILE), with no 'exit' after them.
        child.once('error', startFailed);
        return;
      }
      groups.push(child);
      // Detached: the shell leads a new process group whose id is its pid.
      const step = { runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, index };
      this.processes?.recordStepProcess({ pgid: child.pid, identity: processIdentity(child.pid) ?? null, ...step });
      const decoder = new StringDecoder('utf8');
      const onData = (chunk: Buffer) => write(masker.push(decoder.write(chunk)));
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);

      let abortReason: AbortReason | undefined;
      let killTimer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        abortReason = ctx.signal.reason as AbortReason;
        killGroup(child, 'SIGTERM');
        killTimer = setTimeout(() => killGroup(child, 'SIGKILL'), KILL_GRACE_MS);
      };
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });

      let spawnError: string | undefined;
      child.on('error', (e) => {
        spawnError = e.message;
      });
      child.on('exit', (code, signal) => {
        ctx.signal.removeEventListener('abort', onAbort);
        // Wait for the pipes to drain, but not for background children that keep them open.
        let pending = 2;
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          clearTimeout(drainTimer);
          if (killTimer) clearTimeout(killTimer);
          child.stdout!.destroy();
          child.stderr!.destroy();
          write(masker.push(decoder.end()) + masker.end());
          let status: StepStatus;
          if (abortReason === 'timeout') status = 'timed_out';
          else if (abortReason === 'cancel') status = 'cancelled';
          else status = code === 0 ? 'succeeded' : 'failed';
          if (status === 'failed' && code === null) {
            write(`[conveyor] the step was killed by ${signal ?? 'a signal'}\n`);
          }
          if (spawnError) write(`[conveyor] ${spawnError}\n`);
          fs.closeSync(logFile);
          const finishedAt = new Date().toISOString();
          ctx.emit({ type: 'step.changed', step: this.stepInfo(ctx, index, status, code, startedAt, finishedAt) });
          resolve({ status, exitCode: code, error: code === null ? `killed by ${signal}` : undefined });
        };
        const drainTimer = setTimeout(finish, DRAIN_MS);
        const ended = () => {
          if (--pending === 0) finish();
        };
        if (child.stdout!.readableEnded) ended();
        else child.stdout!.once('end', ended);
        if (child.stderr!.readableEnded) ended();
        else child.stderr!.once('end', ended);
      });
    });
  }
}

function abortedOutcome(reason: AbortReason, ctx: AttemptContext): AttemptOutcome {
  if (reason === 'timeout') {
    return { status: 'timed_out', message: `timed out after ${formatMs(ctx.stage.timeoutMs)} (timeout: ${formatMs(ctx.stage.timeoutMs)})` };
  }
  return { status: 'cancelled', message: 'cancelled' };
}

/** Signals a step's whole process group; a group already gone is fine. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group has exited.
  }
}

/** Why a step's shell could not start, with what to do where there is something to do. */
function startError(e: NodeJS.ErrnoException, cwd: string): string {
  if (e.code === 'E2BIG') {
    return `could not start: the command and its environment are larger than the system allows (E2BIG); shorten the command or the variables of the stage's env (one variable may hold at most 128 KiB)`;
  }
  if (e.code === 'ENOENT' && !fs.existsSync(cwd)) return `could not start: its working directory ${cwd} no longer exists (did an earlier step remove it?)`;
  return `could not start: ${e.message}`;
}

let bootId: string | null | undefined;

/**
 * What tells a process from a later one given the same pid: the machine's boot id and the
 * process's start time (/proc/<pid>/stat, field 22). Undefined when no process has that pid;
 * null where the system has no /proc to tell.
 */
export function processIdentity(pid: number): string | null | undefined {
  if (bootId === undefined) {
    try {
      bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = null;
    }
  }
  if (bootId === null) return null;
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; field 22 is the 20th after it.
  return `${bootId}:${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
}

/**
 * Whether a recorded group is still the step's: its leader's pid is not some later process's,
 * and the machine has not restarted since (a group can outlive its leader, but not a restart).
 * Where there is no /proc, there is nothing to compare and the group is taken as recorded.
 */
function sameGroup(g: { pgid: number; identity: string | null }): boolean {
  if (g.identity === null) return true;
  const now = processIdentity(g.pgid);
  if (now === null) return true;
  if (now !== undefined) return now === g.identity;
  return g.identity.startsWith(`${bootId}:`);
}

/**
 * Stops the process groups of steps that a stopped agent left running, as a cancelled step is
 * stopped: SIGTERM, then SIGKILL for the groups still there after the same grace. Groups whose
 * leader's pid now belongs to another process are left alone. Resolves when every group is gone
 * or has been sent SIGKILL; answers the groups it signalled.
 */
export async function stopLeftoverGroups(groups: readonly { pgid: number; identity: string | null }[]): Promise<number[]> {
  // False when the group is gone (ESRCH), or is not this user's to signal (EPERM): not a step's.
  const signal = (pgid: number, sig: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(-pgid, sig);
      return true;
    } catch {
      return false;
    }
  };
  const signalled = groups.filter((g) => g.pgid > 1 && sameGroup(g) && signal(g.pgid, 'SIGTERM')).map((g) => g.pgid);
  let left = signalled;
  const deadline = Date.now() + KILL_GRACE_MS;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = left.filter((pgid) => signal(pgid, 0));
  }
  for (const pgid of left) signal(pgid, 'SIGKILL');
  return signalled;
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = Math.round(ms / 100) / 10;
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  if (m < 60) return rest ? `${m}m${rest}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
}

function oneLine(command: string): string {
  const first = command.split('\n')[0];
  return first.length > 60 ? `${first.slice(0, 57)}...` : first;
}
