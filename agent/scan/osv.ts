import type { Finding } from '../protocol';
import * as semver from 'semver';
import { cvss3BaseScore } from './cvss';
import type { Severity } from './scan';

/** The parts of an OSV record (https://ossf.github.io/osv-schema/) that a scan reads. */
export interface OsvRecord {
  id: string;
  aliases?: string[];
  summary?: string;
  details?: string;
  withdrawn?: string;
  severity?: OsvSeverity[];
  affected?: OsvAffected[];
  references?: { type?: string; url?: string }[];
  database_specific?: { severity?: unknown };
}

export interface OsvSeverity {
  type: string;
  score: string;
}

export interface OsvAffected {
  package?: { ecosystem?: string; name?: string };
  ranges?: { type?: string; events?: OsvEvent[] }[];
  versions?: string[];
  severity?: OsvSeverity[];
}

export type OsvEvent = { introduced?: string; fixed?: string; last_affected?: string; limit?: string };

/** How a severity was known: the advisory's own rating, a CVSS vector's score, or not at all. */
export type SeverityBasis = Finding['severityBasis'];

/** One advisory as it applies to one installed version. */
export interface Advisory {
  id: string;
  aliases: string[];
  summary: string;
  severity: Severity;
  severityBasis: SeverityBasis;
  /** The CVSS base score, when the severity came from a vector. */
  cvssScore: number | null;
  /** The lowest version that leaves every affected range this version is in; null when there is none. */
  fixedIn: string | null;
  url: string | null;
}

/** OSV's name for the npm ecosystem. */
export const NPM = 'npm';

/** True when `value` has the shape of an OSV record (an id and, if any, a list of affected packages). */
export function isOsvRecord(value: unknown): value is OsvRecord {
  const r = value as OsvRecord | null;
  return typeof r === 'object' && r !== null && typeof r.id === 'string' && (r.affected === undefined || Array.isArray(r.affected));
}

/** The npm package names a record is about. */
export function npmPackagesOf(record: OsvRecord): string[] {
  return [...new Set((record.affected ?? []).filter((a) => a.package?.ecosystem === NPM && a.package.name).map((a) => a.package!.name!))];
}

/**
 * The advisory as it applies to `name@version`, or null when the record does not affect that
 * version (or is withdrawn). A version is affected when a `versions` list names it, or when a
 * SEMVER or ECOSYSTEM range holds it: from an `introduced` event (inclusive) to the next `fixed`
 * (exclusive) or `last_affected` (inclusive), in semver order, prereleases included.
 */
export function advisoryFor(record: OsvRecord, name: string, version: string): Advisory | null {
  if (record.withdrawn) return null;
  const v = semver.parse(version);
  if (!v) return null;
  let listed = false;
  const fixes: (string | null)[] = [];
  for (const a of record.affected ?? []) {
    if (a.package?.ecosystem !== NPM || a.package.name !== name) continue;
    listed ||= (a.versions ?? []).some((l) => l === version || (semver.valid(l) !== null && semver.eq(l, v)));
    for (const range of a.ranges ?? []) {
      if (range.type !== 'SEMVER' && range.type !== 'ECOSYSTEM') continue;
      const hit = inRange(range.events ?? [], v);
      if (hit) fixes.push(hit.fixed);
    }
  }
  // A `versions` list says nothing of fixes; ranges do, when the version is in one.
  if (fixes.length > 0) return describeAdvisory(record, name, latestFix(fixes));
  return listed ? describeAdvisory(record, name, null) : null;
}

/** An advisory from its record, for a package a service already matched (`fixedIn` as known). */
export function describeAdvisory(record: OsvRecord, name: string, fixedIn: string | null): Advisory {
  const { severity, basis, score } = severityOf(record, name);
  return {
    id: record.id,
    aliases: record.aliases ?? [],
    summary: summaryOf(record),
    severity,
    severityBasis: basis,
    cvssScore: score,
    fixedIn,
    url: urlOf(record),
  };
}

/**
 * OSV's evaluation of one range: its events in version order, `v` inside from an `introduced`
 * at or below it until a `fixed` at or below it or a `last_affected` below it. When inside, the
 * span's end above `v` says the fix: a `fixed` version, or none after a `last_affected`.
 */
function inRange(events: OsvEvent[], v: semver.SemVer): { fixed: string | null } | null {
  type Point = { at: semver.SemVer | null /* "0": before every version */; kind: 'introduced' | 'fixed' | 'last_affected' };
  const points: Point[] = [];
  for (const e of events) {
    for (const kind of ['introduced', 'fixed', 'last_affected'] as const) {
      const raw = e[kind];
      if (raw === undefined) continue;
      const zero = kind === 'introduced' && raw === '0';
      const at = zero ? null : semver.parse(raw);
      // A range with a version that is not semver cannot be evaluated safely: skip it whole.
      if (at === null && !zero) return null;
      points.push({ at, kind });
    }
  }
  const cmp = (a: semver.SemVer, b: Point['at']) => (b === null ? 1 : semver.compare(a, b));
  points.sort((a, b) => (a.at === null ? (b.at === null ? 0 : -1) : cmp(a.at, b.at)));
  let inside = false;
  for (const p of points) {
    const reached = p.kind === 'last_affected' ? cmp(v, p.at) > 0 : cmp(v, p.at) >= 0;
    if (reached) inside = p.kind === 'introduced';
  }
  if (!inside) return null;
  const end = points.find((p) => (p.kind === 'fixed' && cmp(v, p.at) < 0) || (p.kind === 'last_affected' && cmp(v, p.at) <= 0));
  return { fixed: end?.kind === 'fixed' && end.at ? end.at.version : null };
}

/** A version leaves every span it is in at the latest of their fixes; none when a span has no fix. */
function latestFix(fixes: (string | null)[]): string | null {
  let latest: string | null = null;
  for (const f of fixes) {
    if (f === null) return null;
    if (latest === null || semver.gt(f, latest)) latest = f;
  }
  return latest;
}

const RATINGS: Record<string, Severity> = { LOW: 'low', MODERATE: 'moderate', MEDIUM: 'moderate', HIGH: 'high', CRITICAL: 'critical' };

/**
 * A record's severity: the database's own rating (GitHub's LOW / MODERATE / HIGH / CRITICAL),
 * else the score of a CVSS 3 vector (the record's, else the affected package's), else unknown,
 * which counts as moderate.
 */
export function severityOf(record: OsvRecord, name: string): { severity: Severity; basis: SeverityBasis; score: number | null } {
  const rated = record.database_specific?.severity;
  if (typeof rated === 'string' && RATINGS[rated.toUpperCase()]) return { severity: RATINGS[rated.toUpperCase()], basis: 'advisory', score: null };
  const vectors = [...(record.severity ?? []), ...(record.affected ?? []).filter((a) => a.package?.name === name).flatMap((a) => a.severity ?? [])];
  for (const s of vectors) {
    if (s.type !== 'CVSS_V3') continue;
    const score = cvss3BaseScore(s.score);
    if (score !== null) return { severity: severityOfScore(score), basis: 'cvss', score };
  }
  return { severity: 'moderate', basis: 'unknown', score: null };
}

/** CVSS's qualitative bands: below 4 low, below 7 moderate (CVSS "medium"), below 9 high, else critical. */
export function severityOfScore(score: number): Severity {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'moderate';
  return 'low';
}

function summaryOf(record: OsvRecord): string {
  const text = record.summary?.trim() || record.details?.trim().split('\n')[0] || '';
  return text || record.id;
}

/** The advisory's own page when the record names one, else its OSV page. */
function urlOf(record: OsvRecord): string | null {
  const refs = record.references ?? [];
  const advisory = refs.find((r) => r.type === 'ADVISORY' && r.url) ?? refs.find((r) => r.url?.includes(record.id));
  return advisory?.url ?? `https://osv.dev/vulnerability/${encodeURIComponent(record.id)}`;
}
