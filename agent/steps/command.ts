import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { StepInfo, StepStatus } from '../protocol';
import type { AbortReason, AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { stepLogName } from './executor';
import { runRemoteStep } from './remote';

/** How much of one step's output is streamed as events; the log file always has all of it. */
export const STREAM_LIMIT_BYTES = 8 * 1024 * 1024;
/** After SIGTERM, how long a process group has before SIGKILL. */
const KILL_GRACE_MS = 3000;
/** After a step's shell exits, how long its output pipes may stay open (a background child). */
const DRAIN_MS = 200;

/**
 * The `command` stage kind: each string of `run` is a step, run by `/bin/sh -c` in its own
 * process group. A step that fails ends the attempt; the steps after it are skipped. Process
 * groups still alive when the attempt ends (background children) are killed then.
 */
export class CommandExecutor implements StageExecutor {
  readonly kind = 'command' as const;

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
      for (const child of groups) killGroup(child, 'SIGKILL');
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
      try {
        child = spawn('/bin/sh', ['-c', ctx.stage.run[index]], {
          cwd: ctx.cwd,
          env: ctx.env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (e) {
        write(`[conveyor] could not start the step: ${(e as Error).message}\n`);
        fs.closeSync(logFile);
        const finishedAt = new Date().toISOString();
        ctx.emit({ type: 'step.changed', step: this.stepInfo(ctx, index, 'failed', null, startedAt, finishedAt) });
        resolve({ status: 'failed', exitCode: null, error: (e as Error).message });
        return;
      }
      groups.push(child);
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
