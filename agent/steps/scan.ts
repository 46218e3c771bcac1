import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ScanConfig, TestResult } from '../protocol';
import { gate, scan, SEVERITIES, type Finding, type ScanReport, type ScanSource } from '../scan/scan';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { SingleStep } from './executor';

/**
 * The `scan` stage kind: checks the versions the stage's lockfiles install against advisory
 * sources (npm audit, the OSV API, a folder of OSV records), logs each source's status and the
 * findings, most severe first, reports one test result per affected package (failed at or above
 * `failOn`, placed on its declaration in package.json), and fails when the gate does.
 */
export class ScanExecutor implements StageExecutor {
  readonly kind = 'scan' as const;

  /**
   * @param opts.workspace the user's workspace folder: test results of a run in a snapshot are
   * placed on the workspace's files, and an OSV folder that is not committed is read from there.
   */
  constructor(private readonly opts: { workspace?: string } = {}) {}

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const settings = ctx.stage.scan;
    const step = new SingleStep(ctx, `scan ${settings?.lockfiles.join(', ') ?? 'lockfiles'}`);
    const end = (outcome: AttemptOutcome) => step.end(outcome);
    if (!settings) return end({ status: 'failed', message: `stage "${ctx.stage.name}" has no "scan:" settings` });
    try {
      const root = configFolder(ctx);
      const sources = settings.sources.map((s) => this.source(s, root, (note) => step.line(note)));
      const scanned = await scan({ cwd: ctx.cwd, lockfiles: settings.lockfiles, sources, signal: ctx.signal });
      if (ctx.signal.aborted) {
        return end(ctx.signal.reason === 'timeout' ? { status: 'timed_out', message: 'timed out while scanning' } : { status: 'cancelled', message: 'cancelled' });
      }
      if (!scanned.ok) return end({ status: 'failed', message: scanned.error });
      const report = scanned.value;
      for (const line of describe(report)) step.line(line);
      const results = testResults(report, settings, (file) => this.placed(path.resolve(ctx.cwd, file), root));
      if (results.length > 0) {
        ctx.emit({
          type: 'tests.reported',
          runId: ctx.runId,
          stage: ctx.stage.name,
          attempt: ctx.attempt,
          passed: results.filter((r) => r.status === 'passed').length,
          failed: results.filter((r) => r.status === 'failed').length,
          skipped: 0,
          results: results.map((r) => ({ ...r, message: r.message === null ? null : ctx.masker.mask(r.message) })),
        });
      }
      const verdict = gate(report, settings.failOn, settings.unreachable);
      ctx.emit({ type: 'scan.reported', runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, failOn: settings.failOn, ok: verdict.ok, verdict: verdict.message, report });
      // A failed outcome's message ends the log by itself.
      if (verdict.ok) step.line(verdict.message);
      return end({ status: verdict.ok ? 'succeeded' : 'failed', message: verdict.message });
    } catch (e) {
      return end({ status: 'failed', message: `the scan stopped on an internal error: ${(e as Error)?.message ?? String(e)}` });
    }
  }

  /** A configured source as the scan takes it: an OSV folder by absolute path, relative to the config file's folder. */
  private source(s: ScanConfig['sources'][number], root: string, note: (text: string) => void): ScanSource {
    if (s.kind !== 'osv-folder') return s;
    const inTree = path.resolve(root, s.path);
    const workspace = this.opts.workspace;
    if (fs.existsSync(inTree) || !workspace || workspace === root) return { kind: 'osv-folder', path: inTree };
    // Advisory data is often kept out of git: a run of a commit reads the workspace's copy.
    const inWorkspace = path.resolve(workspace, s.path);
    if (!fs.existsSync(inWorkspace)) return { kind: 'osv-folder', path: inTree };
    note(`${s.path} is not in this commit; reading the workspace's ${inWorkspace}`);
    return { kind: 'osv-folder', path: inWorkspace };
  }

  /** A file of the stage's tree as the user sees it: in the workspace when the run has a snapshot. */
  private placed(file: string, root: string): string {
    const workspace = this.opts.workspace;
    const rel = path.relative(root, file);
    if (!workspace || workspace === root || rel.startsWith('..') || path.isAbsolute(rel)) return file;
    return path.join(workspace, rel);
  }
}

/** The folder of the config file in the stage's tree: the stage's `workdir` is relative to it (and stays inside it). */
function configFolder(ctx: AttemptContext): string {
  const top = path.resolve('/');
  return path.resolve(ctx.cwd, path.relative(path.resolve(top, ctx.stage.workdir), top));
}

/** The log: lockfiles, each source's status, then the findings, most severe first. */
function describe(report: ScanReport): string[] {
  const lines = [`scanned ${report.packages} installed ${report.packages === 1 ? 'version' : 'versions'} from ${report.lockfiles.join(', ')}`];
  for (const s of report.sources) {
    lines.push(
      s.status === 'scanned'
        ? `  ${s.label}: scanned, ${s.advisories} ${s.advisories === 1 ? 'advisory' : 'advisories'} found`
        : `  ${s.label}: not scanned: ${s.reason}`,
    );
  }
  if (report.findings.length === 0) return [...lines, 'no advisory affects these versions'];
  lines.push(`${report.findings.length} ${report.findings.length === 1 ? 'finding' : 'findings'}, most severe first:`);
  for (const f of report.findings) lines.push(`  ${findingLine(f)}`);
  return lines;
}

/** "high      qs@6.5.2  GHSA-xxxx  Prototype pollution  fixed in 6.5.3  (express > body-parser > qs)  package.json:12" */
function findingLine(f: Finding): string {
  const basis = f.severityBasis === 'unknown' ? '  [severity unknown: counted as moderate]' : f.severityBasis === 'cvss' ? `  [CVSS ${f.cvssScore}]` : '';
  return [
    f.severity.padEnd(8),
    `${f.package}@${f.version}`,
    f.id,
    f.summary,
    f.fixedIn ? `fixed in ${f.fixedIn}` : 'no fixed version',
    `(${f.via.join(' > ')})`,
    f.declared ? `${f.declared.file}:${f.declared.line}` : f.lockfile,
  ].join('  ') + basis;
}

/**
 * One test result per affected version of each lockfile: failed when an advisory is at or above
 * `failOn` (else passed, with the advisories in its message), placed on the key of the direct
 * dependency that brings it in (else on the lockfile).
 */
function testResults(report: ScanReport, settings: Pick<ScanConfig, 'failOn'>, place: (file: string) => string): TestResult[] {
  const groups = new Map<string, Finding[]>();
  for (const f of report.findings) {
    const key = `${f.lockfile}\0${f.package}@${f.version}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const rank = SEVERITIES.indexOf(settings.failOn);
  return [...groups.values()].map((list): TestResult => {
    const first = list[0];
    const failed = list.some((f) => SEVERITIES.indexOf(f.severity) >= rank);
    const advisories = list.map((f) => `${f.severity} ${f.id}: ${f.summary} (${f.fixedIn ? `fixed in ${f.fixedIn}` : 'no fixed version'})`);
    const where = first.declared;
    return {
      suite: first.lockfile,
      name: `${first.package}@${first.version}`,
      status: failed ? 'failed' : 'passed',
      durationMs: null,
      message: [...advisories, `via ${first.via.join(' > ')}`, ...(failed ? [] : [`below failOn ${settings.failOn}`])].join('\n'),
      expected: null,
      actual: null,
      stack: null,
      location: where ? { file: place(where.file), line: where.line, column: where.column } : { file: place(first.lockfile), line: 1, column: 1 },
    };
  });
}
