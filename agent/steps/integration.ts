import * as fs from 'node:fs';
import * as path from 'node:path';
import Docker from 'dockerode';
import type { StepInfo, StepStatus } from '../protocol';
import { describeDockerError } from '../runtimes/docker';
import { reportUnexpected } from '../util/lifecycle';
import { CommandExecutor, formatMs } from './command';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { stepLogName } from './executor';
import { removeLeftovers, ServiceError, ServiceSet } from './services';

export interface IntegrationOptions {
  /** Separates this agent's containers from another workspace's on the same daemon. */
  scope: string;
  /** The runs in flight: containers of other runs of the stage are leftovers of a stopped agent. */
  activeRuns(): number[];
  docker?: Docker;
}

/**
 * The `integration` stage kind: starts the stage's service containers on a private network made
 * for the attempt, waits for each one's health, then runs the stage's commands (as a command
 * stage does, with its report) with `<NAME>_HOST`, `<NAME>_PORT` and `<NAME>_URL` of each service.
 * The containers and the network are removed when the attempt ends, however it ends; those a
 * stopped agent left behind are removed before the services start. The services' start is logged
 * at the head of the first step's log.
 */
export class IntegrationExecutor implements StageExecutor {
  readonly kind = 'integration' as const;
  private readonly docker: Docker;

  constructor(
    private readonly opts: IntegrationOptions,
    private readonly commands = new CommandExecutor(),
  ) {
    this.docker = opts.docker ?? new Docker();
  }

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const log = firstStepLog(ctx);
    const services = new ServiceSet(this.docker, { scope: this.opts.scope, runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt });
    try {
      const env = { ...ctx.env };
      try {
        const leftovers = await removeLeftovers(this.docker, this.opts.scope, ctx.stage.name, this.opts.activeRuns());
        if (leftovers.length) log(`removed what a stopped agent left: ${leftovers.join(', ')}`);
        for (const s of await services.start(ctx.stage.services ?? [], ctx.signal, log)) Object.assign(env, s.env);
      } catch (e) {
        const outcome = this.failure(ctx, e);
        if (outcome.status === 'failed') log(e instanceof ServiceError ? e.message : outcome.message!);
        if (e instanceof ServiceError && e.log) log(`last log lines:\n${e.log.replace(/^/gm, '  ')}`);
        endSteps(ctx, outcome.status);
        return outcome;
      }
      return await this.commands.execute({ ...ctx, env });
    } finally {
      const problems = await services.dispose();
      for (const p of problems) reportUnexpected(new Error(p));
    }
  }

  private failure(ctx: AttemptContext, e: unknown): AttemptOutcome {
    if (ctx.signal.aborted) {
      return ctx.signal.reason === 'timeout'
        ? { status: 'timed_out', message: `timed out after ${formatMs(ctx.stage.timeoutMs)} while starting the services (timeout: ${formatMs(ctx.stage.timeoutMs)})` }
        : { status: 'cancelled', message: 'cancelled' };
    }
    if (!(e instanceof ServiceError)) return { status: 'failed', message: `could not start the services: ${describeDockerError(this.docker, e)}` };
    const tail = lastLines(e.log, 3);
    return { status: 'failed', message: tail ? `${e.message}; its log ends: ${tail}` : e.message };
  }
}

/**
 * Writes lines to the head of the first step's log (the command appends to it), as events and
 * in the file.
 */
function firstStepLog(ctx: AttemptContext): (line: string) => void {
  fs.mkdirSync(ctx.logDir, { recursive: true });
  const file = path.join(ctx.logDir, stepLogName(ctx.attempt, 0));
  return (line) => {
    const text = ctx.masker.mask(`[services] ${line}`) + '\n';
    fs.appendFileSync(file, text, { mode: 0o600 });
    ctx.emit({ type: 'log', runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, step: 0, text });
  };
}

/** The steps never ran: the first one ends with the attempt (its log says why), the rest are skipped. */
function endSteps(ctx: AttemptContext, status: StepStatus): void {
  const now = new Date().toISOString();
  ctx.stage.run.forEach((command, index) => {
    const first = index === 0;
    const step: StepInfo = {
      runId: ctx.runId,
      stage: ctx.stage.name,
      attempt: ctx.attempt,
      index,
      command,
      status: first ? status : 'skipped',
      exitCode: null,
      startedAt: first ? now : null,
      finishedAt: first ? now : null,
    };
    ctx.emit({ type: 'step.changed', step });
  });
}

function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}
