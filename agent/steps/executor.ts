import type { AgentEvent, StageConfig, StageKind } from '../protocol';
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
}

export type AbortReason = 'cancel' | 'timeout';

export interface AttemptOutcome {
  status: 'succeeded' | 'failed' | 'cancelled' | 'timed_out';
  /** One line for people: "exit code 1 in step 2 (npm test)". */
  message: string | null;
}

/** The log file of one step of one attempt. */
export function stepLogName(attempt: number, index: number): string {
  return `${attempt}-${index}.log`;
}
