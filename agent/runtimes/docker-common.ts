import { createHash } from 'node:crypto';
import type { HealthCheck } from '../protocol';
import type { DesiredState } from './runtime';

/**
 * Labels the docker runtime puts on its containers and the swarm runtime on its services and
 * tasks; observe, watch and remove select by them, and they are the record read back after an
 * agent restart.
 */
export const LABEL = {
  managed: 'conveyor.managed',
  environment: 'conveyor.environment',
  release: 'conveyor.release',
  digest: 'conveyor.digest',
  repository: 'conveyor.repository',
  /** Which agent owns the container: two workspaces may both have a "staging". */
  scope: 'conveyor.scope',
  /** The environment's health check (JSON), so that health() works after an agent restart. */
  health: 'conveyor.health',
  /** The names of the variables the release set (the image's own ENV is not the release's). */
  envKeys: 'conveyor.env-keys',
  containerPort: 'conveyor.container-port',
  publicPort: 'conveyor.public-port',
  run: 'conveyor.run',
  commit: 'conveyor.commit',
} as const;

/** The settings every Docker-based runtime reads to label what it creates. */
export interface LabelSettings {
  /** Extra labels on everything the runtime creates. */
  labels: Record<string, string>;
  /** Separates the containers of two agents on one daemon. */
  scope: string;
}

/** The scope of the agent whose runtime keeps its files in `stateDir`: a short hash of the folder. */
export function scopeOf(stateDir: string): string {
  return createHash('sha256').update(stateDir).digest('hex').slice(0, 12);
}

/**
 * One environment's settings over `defaults`: `given` is the settings, or a function of the
 * environment that returns them; a setting left undefined takes the default.
 */
export function resolveSettings<S extends object, D extends object>(given: S | ((environment: string) => S), environment: string, defaults: D): D & S {
  const s = typeof given === 'function' ? (given as (environment: string) => S)(environment) : given;
  const set = Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined));
  return { ...defaults, ...set } as D & S;
}

/** The daemon's label filter that selects one environment of one agent. */
export function environmentFilter(scope: string, environment: string): string[] {
  return [`${LABEL.managed}=true`, `${LABEL.scope}=${scope}`, `${LABEL.environment}=${environment}`];
}

/** Whether `labels` (a container's, or the attributes of its event) hold every `key=value` of a filter. */
export function hasLabels(labels: Record<string, string> | undefined, filter: string[]): boolean {
  return filter.every((f) => {
    const i = f.indexOf('=');
    return labels?.[f.slice(0, i)] === f.slice(i + 1);
  });
}

/** The labels that record a release on what runs it (the settings' extra labels first). */
export function releaseLabels(desired: DesiredState, settings: LabelSettings): Record<string, string> {
  const { release, healthCheck, publicPort } = desired;
  const artifact = release.artifact as { repository: string; digest: string };
  const labels: Record<string, string> = {
    ...settings.labels,
    [LABEL.managed]: 'true',
    [LABEL.scope]: settings.scope,
    [LABEL.environment]: release.environment,
    [LABEL.release]: String(release.number),
    [LABEL.digest]: artifact.digest,
    [LABEL.repository]: artifact.repository,
    [LABEL.health]: JSON.stringify(healthCheck),
    [LABEL.containerPort]: String(release.containerPort),
    [LABEL.publicPort]: String(publicPort),
  };
  if (release.runId !== null) labels[LABEL.run] = String(release.runId);
  if (release.commit) labels[LABEL.commit] = release.commit;
  return labels;
}

/** The variables of a `NAME=value` list (a container's Env) whose names `keep` accepts. */
export function envOf(list: string[] | undefined, keep: (name: string) => boolean): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of list ?? []) {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? kv : kv.slice(0, eq);
    if (keep(k)) env[k] = eq < 0 ? '' : kv.slice(eq + 1);
  }
  return env;
}

/**
 * The digest an image reference really runs (repository@sha256:...), else the reference itself,
 * else the digest label: a container made by hand, or changed by hand, may carry copied labels.
 */
export function runningDigest(image: string, labels: Record<string, string>): string {
  return /@(sha256:[0-9a-f]{64})$/.exec(image)?.[1] ?? (image || labels[LABEL.digest] || '');
}

/** The health check recorded in the labels; null when there is none or it does not parse. */
export function healthCheckOf(labels: Record<string, string> | undefined): HealthCheck | null {
  try {
    return labels?.[LABEL.health] ? (JSON.parse(labels[LABEL.health]) as HealthCheck) : null;
  } catch {
    return null;
  }
}

/** Anything with the daemon's logs call: a container, a swarm task. */
export interface LogSource {
  logs(options: { stdout: boolean; stderr: boolean; tail: number; follow: false }): Promise<unknown>;
}

/** The last `lines` lines of a container's or task's log as text; '' when they cannot be read. */
export async function tailLog(source: LogSource, lines: number): Promise<string> {
  try {
    const buf = await source.logs({ stdout: true, stderr: true, tail: lines, follow: false });
    return demuxLog(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
  } catch {
    return '';
  }
}

/** Splits the daemon's multiplexed log format (8-byte frame headers) into text. */
export function demuxLog(buf: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length && buf[i] <= 2 && buf[i + 1] === 0 && buf[i + 2] === 0 && buf[i + 3] === 0) {
    const size = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  if (i === 0) return buf.toString('utf8');
  if (i < buf.length) parts.push(buf.subarray(i));
  return Buffer.concat(parts).toString('utf8');
}

/** Closes a stream the daemon opened (events, progress); one that is closed already is left alone. */
export function destroyStream(s: NodeJS.ReadableStream): void {
  const d = s as NodeJS.ReadableStream & { destroy?: () => void };
  try {
    d.destroy?.();
  } catch {
    // closed already
  }
}
