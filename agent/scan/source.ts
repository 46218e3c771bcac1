import type { Result } from '../util/lifecycle';
import type { Advisory } from './osv';

/** One installed version to look up. */
export interface PackageQuery {
  name: string;
  version: string;
}

/** What an advisory source found: advisories by `name@version`. */
export type Matches = Map<string, Advisory[]>;

/** The answer of one advisory source: what it matched, or why it could not be asked (the "not scanned" reason). */
export interface SourceAnswer {
  label: string;
  result: Result<Matches, string>;
}

export interface SourceContext {
  /** The scan's folder (npm reads its .npmrc from there). */
  cwd: string;
  /** Per request. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** The key of a package version in `Matches`. */
export function packageKey(q: PackageQuery): string {
  return `${q.name}@${q.version}`;
}

/** Adds an advisory for a package version to a match set. */
export function addMatch(matches: Matches, q: PackageQuery, advisory: Advisory): void {
  const key = packageKey(q);
  const list = matches.get(key);
  if (list) list.push(advisory);
  else matches.set(key, [advisory]);
}
