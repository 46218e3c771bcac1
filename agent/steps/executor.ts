import type { DeployRequest, Scheduled } from '../deploy/deployer';
import type { AgentEvent, ApiError, ArtifactInfo, StageConfig, StageKind } from '../protocol';
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
