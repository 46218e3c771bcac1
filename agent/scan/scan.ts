import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { err, ok, type Result } from '../util/lifecycle';
import { dependencyKeys } from './json';
import { readLockfile, type Lockfile } from './lockfile';
import { queryNpmAudit } from './npm-audit';
import type { Finding, ScanReport, ScanSource, Severity, SourceStatus } from '../protocol';
import type { Advisory } from './osv';
import { queryOsvApi } from './osv-api';
import { queryOsvFolder } from './osv-folder';
import { packageKey, type PackageQuery, type SourceAnswer, type SourceContext } from './source';

export type { Finding, ScanReport, ScanSource, Severity, SourceStatus } from '../protocol';

/** Lowest first. */
export const SEVERITIES: readonly Severity[] = ['low', 'moderate', 'high', 'critical'];

export interface ScanOptions {
  cwd: string;
  /** Relative to cwd. */
  lockfiles: string[];
  sources: ScanSource[];
  signal?: AbortSignal;
  /** Per request to an advisory service; default 30 s. */
  timeoutMs?: number;
}

/** How long one request to an advisory service may take. */
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Scans the versions the lockfiles install against the advisory sources (all asked at once).
 * A source that cannot be asked is `unreachable` with its reason, never a pass; the result is an
 * error only for bad input: no lockfile or source, a missing or unreadable lockfile (with file
 * and line).
 */
export async function scan(opts: ScanOptions): Promise<Result<ScanReport, string>> {
  if (opts.lockfiles.length === 0) return err('there is no lockfile to scan: name one under "scan: lockfiles:", e.g. [package-lock.json]');
  if (opts.sources.length === 0) return err('there is no advisory source to ask: add one under "scan: sources:", e.g. "- npm-audit: true"');
  const lockfiles: Lockfile[] = [];
  for (const file of opts.lockfiles) {
    const read = await readLockfile(opts.cwd, file);
    if (!read.ok) return read;
    lockfiles.push(read.value);
  }
  const queries = new Map<string, PackageQuery>();
  for (const l of lockfiles) for (const p of l.packages) queries.set(packageKey(p), { name: p.name, version: p.version });
  const ctx: SourceContext = { cwd: opts.cwd, timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, signal: opts.signal };
  const answers = await Promise.all(opts.sources.map((s) => ask(s, [...queries.values()], ctx)));
  const sources = answers.map((a, i): SourceStatus => ({
    source: opts.sources[i].kind,
    label: a.label,
    status: a.result.ok ? 'scanned' : 'unreachable',
    reason: a.result.ok ? null : a.result.error,
    advisories: a.result.ok ? new Set([...a.result.value.values()].flat().map((x) => x.id)).size : 0,
  }));
  const findings = await findingsOf(opts.cwd, lockfiles, answers, opts.sources);
  return ok({ packages: queries.size, findings, sources, lockfiles: lockfiles.map((l) => l.file) });
}

function ask(source: ScanSource, queries: PackageQuery[], ctx: SourceContext): Promise<SourceAnswer> {
  switch (source.kind) {
    case 'npm-audit':
      return queryNpmAudit(source.registry, queries, ctx);
    case 'osv-api':
      return queryOsvApi(source.url, queries, ctx);
    case 'osv-folder':
      return queryOsvFolder(source.path, queries, ctx);
  }
}

/**
 * One finding per advisory, installed version and lockfile. An advisory more than one source
 * reports (by id or alias) is kept once, from the first source listed.
 */
async function findingsOf(cwd: string, lockfiles: Lockfile[], answers: SourceAnswer[], sources: ScanSource[]): Promise<Finding[]> {
  const declarations = new Map<string, Map<string, { line: number; column: number }>>();
  const keysOf = async (file: string) => {
    if (!declarations.has(file)) declarations.set(file, dependencyKeys(await fs.readFile(path.resolve(cwd, file), 'utf8').catch(() => '')));
    return declarations.get(file)!;
  };
  const findings: Finding[] = [];
  for (const lockfile of lockfiles) {
    for (const p of lockfile.packages) {
      const seen = new Set<string>();
      for (const [i, answer] of answers.entries()) {
        if (!answer.result.ok) continue;
        for (const a of answer.result.value.get(packageKey(p)) ?? []) {
          const names = [a.id, ...a.aliases];
          if (names.some((n) => seen.has(n))) continue;
          names.forEach((n) => seen.add(n));
          const at = p.declaredIn ? (await keysOf(p.declaredIn)).get(p.via[0]) : undefined;
          findings.push(finding(a, p.name, p.version, lockfile.file, p.via, at && p.declaredIn ? { file: p.declaredIn, ...at } : null, sources[i].kind));
        }
      }
    }
  }
  return findings.sort(
    (a, b) => SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) || a.package.localeCompare(b.package) || a.version.localeCompare(b.version) || a.id.localeCompare(b.id),
  );
}

function finding(a: Advisory, name: string, version: string, lockfile: string, via: string[], declared: Finding['declared'], source: ScanSource['kind']): Finding {
  const { id, aliases, summary, severity, severityBasis, cvssScore, fixedIn, url } = a;
  return { id, aliases, summary, severity, severityBasis, cvssScore, package: name, version, fixedIn, lockfile, declared, via, source, url };
}

/**
 * The verdict on a report: it fails when a finding is at or above `failOn`, or when a source was
 * not scanned and `unreachable` is 'fail' (with 'warn' the message still says so). The message
 * is one line: the verdict, the count of each severity, and each source's status.
 */
export function gate(report: ScanReport, failOn: Severity, unreachable: 'fail' | 'warn'): { ok: boolean; message: string } {
  const rank = SEVERITIES.indexOf(failOn);
  const blocking = report.findings.filter((f) => SEVERITIES.indexOf(f.severity) >= rank).length;
  const down = report.sources.filter((s) => s.status === 'unreachable');
  const failsOnSources = down.length > 0 && unreachable === 'fail';
  const counts = [...SEVERITIES].reverse().map((s) => `${report.findings.filter((f) => f.severity === s).length} ${s}`).join(', ');
  const verdict =
    blocking > 0
      ? `${blocking} ${blocking === 1 ? 'advisory' : 'advisories'} at or above ${failOn}`
      : failsOnSources
        ? `${down.length} of ${report.sources.length} advisory ${report.sources.length === 1 ? 'source' : 'sources'} could not be scanned`
        : `no advisory at or above ${failOn}`;
  const statuses = report.sources.map((s) => (s.status === 'scanned' ? `${s.label}: scanned` : `${s.label}: not scanned: ${s.reason}`)).join('; ');
  const advice = down.length === 0 ? '' : failsOnSources ? ' (a source that cannot be scanned fails the scan; "unreachable: warn" lets it pass)' : ' (warning only: "unreachable: warn")';
  return {
    ok: blocking === 0 && !failsOnSources,
    message: `${verdict} (${counts}) in ${report.packages} ${report.packages === 1 ? 'package' : 'packages'}; ${statuses}${advice}`,
  };
}
