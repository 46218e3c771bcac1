import * as semver from 'semver';
import type { ImageUpdatePolicy } from '../protocol';
import { err, ok, type Result } from '../util/lifecycle';

/**
 * Image update automation, the registry side: the tags of a repository (Docker Registry HTTP API
 * v2), the newest one a policy allows, and its manifest digest, which is what a deploy pins.
 */

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** "127.0.0.1:5000/team/app" → the registry's base URL and the repository's name in it. */
export function splitRepository(repository: string): { base: string; name: string } {
  const slash = repository.indexOf('/');
  const host = repository.slice(0, slash);
  const name = repository.slice(slash + 1);
  const loopback = /^(localhost|127\.[0-9.]+|\[::1\])(:\d+)?$/.test(host);
  return { base: `${loopback ? 'http' : 'https'}://${host}`, name };
}

async function request(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}

/** The repository's tags, or why they could not be read. */
export async function listTags(repository: string, timeoutMs = 5000): Promise<Result<string[], string>> {
  const { base, name } = splitRepository(repository);
  const url = `${base}/v2/${name}/tags/list?n=1000`;
  try {
    const res = await request(url, {}, timeoutMs);
    if (res.status === 404) return ok([]);
    if (!res.ok) return err(`the registry answered ${res.status} to GET ${url}`);
    const body = (await res.json()) as { tags?: unknown };
    return ok(Array.isArray(body.tags) ? body.tags.filter((t): t is string => typeof t === 'string') : []);
  } catch (e) {
    return err(`could not reach the registry at ${base}: ${(e as Error).cause ? String((e as { cause: Error }).cause.message ?? (e as Error).cause) : (e as Error).message}`);
  }
}

/** The manifest digest of a tag (what `docker pull repo@digest` pins). */
export async function manifestDigest(repository: string, tag: string, timeoutMs = 5000): Promise<Result<string, string>> {
  const { base, name } = splitRepository(repository);
  const url = `${base}/v2/${name}/manifests/${encodeURIComponent(tag)}`;
  try {
    const res = await request(url, { method: 'HEAD', headers: { Accept: MANIFEST_TYPES } }, timeoutMs);
    const digest = res.headers.get('docker-content-digest');
    if (!res.ok || !digest) return err(`the registry answered ${res.status} to HEAD ${url}${digest ? '' : ' without a digest'}`);
    return ok(digest);
  } catch (e) {
    return err(`could not reach the registry at ${base}: ${(e as Error).message}`);
  }
}

/** Compares tags as people read them: numbers as numbers ("main-10" after "main-9"). */
function natural(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The newest tag the policy allows, or null. A semver range wins over a pattern when both are given. */
export function pickTag(tags: readonly string[], policy: Pick<ImageUpdatePolicy, 'semver' | 'pattern'>): string | null {
  let candidates = [...tags];
  if (policy.pattern) {
    const re = new RegExp(policy.pattern);
    candidates = candidates.filter((t) => re.test(t));
  }
  if (policy.semver) {
    const range = policy.semver;
    const versions = candidates.filter((t) => semver.valid(semver.clean(t) ?? '') && semver.satisfies(semver.clean(t)!, range));
    return versions.sort((a, b) => semver.compare(semver.clean(a)!, semver.clean(b)!)).pop() ?? null;
  }
  if (!policy.pattern) return null;
  return candidates.sort(natural).pop() ?? null;
}

/** Checks a policy before it is used: a semver range and a regular expression that parse. */
export function policyProblem(policy: Pick<ImageUpdatePolicy, 'semver' | 'pattern'>): string | null {
  if (!policy.semver && !policy.pattern) return 'imageUpdate needs "semver" (a version range such as ^1.0.0) or "pattern" (a regular expression)';
  if (policy.semver && semver.validRange(policy.semver) === null) return `"${policy.semver}" is not a semver range; write one such as ^1.0.0 or ">=1.2 <2"`;
  if (policy.pattern) {
    try {
      new RegExp(policy.pattern);
    } catch (e) {
      return `"${policy.pattern}" is not a regular expression: ${(e as Error).message}`;
    }
  }
  return null;
}
