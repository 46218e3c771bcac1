import type { DeployStrategy, HealthCheck, HealthStatus, LiveState, Release, RuntimeName } from '../protocol';
import type { IDisposable } from '../util/lifecycle';

/**
 * The seam between deployments and where releases run. The deploy stage and the GitOps
 * reconciler use only this interface; one file per runtime implements it (process, docker, later
 * swarm and kubernetes).
 *
 *   apply(desired, strategy) ──> instances of the new release started, healthy, serving ──> old ones stopped
 *   observe(env)             ──> what runs now (LiveState), read from the runtime itself
 *   watch(env, onChange)     ──> called when the live state may have changed (a container died, ...)
 *   health(env)              ──> Healthy | Progressing | Degraded | Missing
 *   remove(env)              ──> nothing of the environment runs any more
 */
export interface Runtime extends IDisposable {
  readonly name: RuntimeName;
  apply(desired: DesiredState, strategy: DeployStrategy, ctx: ApplyContext): Promise<ApplyResult>;
  observe(environment: string): Promise<LiveState>;
  watch(environment: string, onChange: () => void): IDisposable;
  health(environment: string): Promise<HealthStatus>;
  remove(environment: string): Promise<void>;
  /** Removes some instances of an environment (prune); runtimes without it are pruned by applying the release again. */
  removeInstances?(environment: string, ids: string[]): Promise<void>;
}

/** What an environment should run: the release and how to reach and check it. */
export interface DesiredState {
  release: Release;
  healthCheck: HealthCheck;
  /**
   * The port users reach the environment on (127.0.0.1). The runtime serves it through the
   * agent's switch (see proxy.ts), so that blue-green changes the upstream, not the port.
   */
  publicPort: number;
  /** Secrets for the instance's environment, already resolved; never logged. */
  secrets: Record<string, string>;
}

export interface ApplyContext {
  /** One line per step, for the deploy's progress events and logs. */
  progress(message: string): void;
  /** Aborted on cancel; a runtime stops what it started and restores the previous release. */
  signal: AbortSignal;
  /**
   * Where a key of the environment is written in conveyor.yml (`['env', 'PORT']`,
   * `['kubernetes', 'context']`; `[]`: the environment's name), the file named as messages name
   * it; undefined when it is not written there. A failure whose fix is in conveyor.yml starts its
   * reason with it, as config errors do: `conveyor.yml:12:7: ...`.
   */
  locate?(keyPath: readonly string[]): ConfigPosition | undefined;
}

/** A place in a file: 1-based line and column. */
export interface ConfigPosition {
  file: string;
  line: number;
  column: number;
}

export type ApplyResult =
  | { ok: true; live: LiveState }
  /** The new release never got healthy (or failed to start); `restored` says the old one still serves. */
  | { ok: false; reason: string; log: string; restored: boolean };

/** Ports and addresses a runtime needs from the agent. */
export interface RuntimeServices {
  /** A free TCP port on 127.0.0.1 for an instance. */
  allocatePort(): Promise<number>;
  /** Routes the environment's public port to an instance's address (blue-green switch). */
  route(environment: string, publicPort: number, upstream: string): Promise<void>;
  /** Folder where files artifacts live by digest: <dir>/sha256/<hex>. */
  artifactsDir: string;
  /** Folder for the runtime's own files (unpacked releases, instance logs). */
  stateDir: string;
}
