import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeployRequest, Scheduled } from '../deploy/deployer';
import type { AgentEvent, ApiError, ArtifactInfo, StageConfig, StageKind, StepInfo, StepStatus } from '../protocol';
import type { Result } from '../util/lifecycle';
import type { Masker } from '../engine/secrets';

/**
 * The seam between the engine and what a stage does. The engine owns attempts, time-outs,
 * reports and artifacts; an executor runs one attempt of one stage kind.
 */
export interface StageExecutor {
  readonly kind: StageKind;
  execute(ctx: AttemptContext): Promise<AttemptOutcome>;
}

export interface AttemptContext {
  runId: number;
  stage: StageConfig;
  attempt: number;
  /** The stage's working directory: inside the run's snapshot, or the working tree. */
  cwd: string;
  env: Record<string, string>;
  masker: Masker;
  /** Folder for this attempt's step logs. */
  logDir: string;
  /** Aborted on cancel (reason 'cancel') or time-out (reason 'timeout'). */
  signal: AbortSignal;
  emit(event: AgentEvent): void;
  /** The commit the run is pinned to (null: working tree). */
  commit: string | null;
  /** Artifacts recorded by this run so far. */
  artifacts(): ArtifactInfo[];
  /** The deploy phase, for deploy stages. */
  deployer: DeployPort | undefined;
  /** Shows the stage as waiting (an approval gate) with a message, or running again (null). */
  setWaiting(message: string | null): void;
}

/** What a deploy stage needs of the deploy phase. */
export interface DeployPort {
  deploy(req: DeployRequest): Result<Scheduled, ApiError>;
  rollback(environment: string, to: number | undefined, requestedBy: string): Result<Scheduled, ApiError>;
  /** Where users reach an environment (http://127.0.0.1:PORT), for stages that test it. */
  environmentUrl(environment: string): Promise<Result<string, ApiError>>;
}

export type AbortReason = 'cancel' | 'timeout';

export interface AttemptOutcome {
  status: 'succeeded' | 'failed' | 'cancelled' | 'timed_out';
  /** One line for people: "exit code 1 in step 2 (npm test)". */
  message: string | null;
}

/** A stage's folder of step logs under .conveyor/logs/<run>/: its name, with "/" written as "%2F" (matrix cells may name images). */
export function stageLogFolder(stage: string): string {
  return stage.replace(/%/g, '%25').replace(/\//g, '%2F');
}

/** The log file of one step of one attempt. */
export function stepLogName(attempt: number, index: number): string {
  return `${attempt}-${index}.log`;
}

/**
 * The one step of a stage kind that is not a list of commands (image, deploy): its status events,
 * and its log both in the step's file (what `conveyor logs` reads) and as events.
 */
export class SingleStep {
  private readonly startedAt = new Date().toISOString();
  private readonly file: number;

  constructor(
    private readonly ctx: AttemptContext,
    private readonly command: string,
  ) {
    fs.mkdirSync(ctx.logDir, { recursive: true });
    this.file = fs.openSync(path.join(ctx.logDir, stepLogName(ctx.attempt, 0)), 'a', 0o600);
    ctx.emit({ type: 'step.changed', step: this.info('running', null) });
  }

  private info(status: StepStatus, finishedAt: string | null): StepInfo {
    const c = this.ctx;
    return { runId: c.runId, stage: c.stage.name, attempt: c.attempt, index: 0, command: this.command, status, exitCode: null, startedAt: this.startedAt, finishedAt };
  }

  /** Writes text that is already masked (e.g. through the masker's stream). */
  write(text: string): void {
    if (!text) return;
    fs.writeSync(this.file, text);
    this.ctx.emit({ type: 'log', runId: this.ctx.runId, stage: this.ctx.stage.name, attempt: this.ctx.attempt, step: 0, text });
  }

  /** Masks a line and writes it. */
  line(text: string): void {
    this.write(this.ctx.masker.mask(text) + '\n');
  }

  /** Ends the step with the attempt's outcome (its message goes to the log when it failed). */
  end(outcome: AttemptOutcome): AttemptOutcome {
    this.write(this.ctx.masker.end());
    if (outcome.message && outcome.status !== 'succeeded') this.line(outcome.message);
    this.ctx.emit({ type: 'step.changed', step: this.info(outcome.status, new Date().toISOString()) });
    fs.closeSync(this.file);
    return outcome;
  }
}
