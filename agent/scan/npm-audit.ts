import { execFile } from 'node:child_process';
import * as semver from 'semver';
import { err, ok } from '../util/lifecycle';
import { isHttpUrl, requestJson } from './http';
import type { Advisory } from './osv';
import type { Severity } from './scan';
import { addMatch, type Matches, type PackageQuery, type SourceAnswer, type SourceContext } from './source';

/** npm's own default, when `npm config get registry` says nothing usable. */
const DEFAULT_REGISTRY = 'https://registry.npmjs.org/';
/** How long `npm config get registry` may take. */
const NPM_CONFIG_TIMEOUT_MS = 15_000;

/** An advisory as the bulk advisories endpoint returns it. */
interface BulkAdvisory {
  id?: unknown;
  url?: unknown;
  title?: unknown;
  severity?: unknown;
  vulnerable_versions?: unknown;
  cvss?: { score?: unknown };
}

/**
 * The `npm-audit` source: what `npm audit` asks, `POST {registry}/-/npm/v1/security/advisories/bulk`
 * with `{ name: [versions] }`, answered with the advisories of each package and the ranges they
 * affect. The registry is the one given, else npm's configured one for the folder. A registry
 * that does not serve the endpoint (a mirror answering 404 or 405) makes the source unreachable.
 */
export async function queryNpmAudit(registry: string | null, queries: PackageQuery[], ctx: SourceContext): Promise<SourceAnswer> {
  const base = (registry ?? (await configuredRegistry(ctx.cwd))).replace(/\/*$/, '/');
  const label = `npm audit ${base}`;
  if (!isHttpUrl(base)) return { label, result: err(`"${registry}" is not an http:// or https:// URL; write the registry's address in full, e.g. ${DEFAULT_REGISTRY}`) };
  const body: Record<string, string[]> = {};
  for (const q of queries) (body[q.name] ??= []).push(q.version);
  const got = await requestJson('POST', `${base}-/npm/v1/security/advisories/bulk`, body, ctx);
  if (!got.ok) {
    const { status, reason } = got.error;
    if (status === null) return { label, result: err(reason === 'cancelled' ? reason : `the advisories request to ${base} failed: ${reason}`) };
    const unsupported = status === 404 || status === 405 || status === 501 ? ' (it does not support npm audit)' : '';
    return { label, result: err(`the registry ${base} answered ${status} to the advisories request${unsupported}`) };
  }
  if (typeof got.value !== 'object' || got.value === null || Array.isArray(got.value)) {
    return { label, result: err(`the registry ${base} answered the advisories request with something other than advisories by package`) };
  }
  const answer = got.value as Record<string, unknown>;
  const matches: Matches = new Map();
  for (const q of queries) {
    const list = answer[q.name];
    if (!Array.isArray(list)) continue;
    for (const a of list as BulkAdvisory[]) {
      const advisory = toAdvisory(a, q.version);
      if (advisory) addMatch(matches, q, advisory);
    }
  }
  return { label, result: ok(matches) };
}

/** The registry npm uses in `cwd` (its .npmrc files and environment included). */
function configuredRegistry(cwd: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('npm', ['config', 'get', 'registry'], { cwd, timeout: NPM_CONFIG_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout) => {
      const value = (stdout ?? '').trim();
      resolve(!error && /^https?:\/\//.test(value) ? value : DEFAULT_REGISTRY);
    });
  });
}

const SEVERITIES: Record<string, Severity> = { info: 'low', low: 'low', moderate: 'moderate', high: 'high', critical: 'critical' };

/** The advisory for `version`, when its `vulnerable_versions` range holds that version (prereleases included). */
function toAdvisory(a: BulkAdvisory, version: string): Advisory | null {
  if (typeof a?.vulnerable_versions !== 'string') return null;
  let range: semver.Range;
  try {
    range = new semver.Range(a.vulnerable_versions, { includePrerelease: true });
  } catch {
    return null;
  }
  if (!range.test(version)) return null;
  const url = typeof a.url === 'string' ? a.url : null;
  const ghsa = url ? /GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}$/.exec(url)?.[0] : undefined;
  const npmId = typeof a.id === 'number' || typeof a.id === 'string' ? String(a.id) : null;
  const severity = typeof a.severity === 'string' ? SEVERITIES[a.severity] : undefined;
  const score = typeof a.cvss?.score === 'number' && a.cvss.score > 0 ? a.cvss.score : null;
  return {
    id: ghsa ?? `npm-${npmId ?? 'unknown'}`,
    aliases: ghsa && npmId ? [npmId] : [],
    summary: typeof a.title === 'string' && a.title ? a.title : (ghsa ?? `npm advisory ${npmId}`),
    severity: severity ?? 'moderate',
    severityBasis: severity ? 'advisory' : 'unknown',
    cvssScore: score,
    fixedIn: fixOf(range, version),
    url,
  };
}

/**
 * The version that leaves the range: of each alternative (`||`) holding the version, its `<`
 * bound; the latest of those. None when an alternative has no upper bound or ends with `<=`.
 */
function fixOf(range: semver.Range, version: string): string | null {
  let fix: string | null = null;
  for (const set of range.set) {
    if (!set.every((c) => c.test(version))) continue;
    const below = set.find((c) => c.operator === '<');
    if (!below) return null;
    if (fix === null || semver.gt(below.semver, fix)) fix = below.semver.version;
  }
  return fix;
}
