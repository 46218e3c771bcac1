/** The Run page's tables: test results, artifacts, deployments, scan findings and load results. */
import type { ArtifactInfo, DeploymentInfo, StageTestResults, TestResult } from '../../agent/protocol';
import { h, type Child } from '../shared/dom';
import type { Host } from '../shared/host';
import { statusClass, statusWord } from '../shared/status';
import { absoluteTime, formatDuration, relativeTime } from '../shared/time';
import type { LoadResult, ScanResult } from './model';

/** A time shown relative, absolute on hover. */
export function when(iso: string | null | undefined): HTMLElement {
  return h('time', { attrs: { datetime: iso ?? '' }, title: absoluteTime(iso) }, relativeTime(iso));
}

function table(head: string[], rows: Child[][], numeric: number[] = []): HTMLTableElement {
  return h(
    'table',
    { class: 'grid' },
    h('thead', null, h('tr', null, head.map((t, i) => h('th', { class: numeric.includes(i) ? 'num' : undefined }, t)))),
    h(
      'tbody',
      null,
      rows.map((r) => h('tr', null, r.map((c, i) => h('td', { class: numeric.includes(i) ? 'num' : undefined }, c)))),
    ),
  );
}

/** Where a failed test is: a link that opens the file in the editor, or path:line in a browser. */
function location(host: Host, t: TestResult): HTMLElement | null {
  const loc = t.location;
  if (!loc) return null;
  const text = `${loc.file}:${loc.line}${loc.column ? `:${loc.column}` : ''}`;
  if (host.kind !== 'vscode') return h('span', { class: 'test-location mono' }, text);
  return h(
    'a',
    {
      class: 'test-location mono',
      attrs: { href: '#', title: 'Open in the editor' },
      on: {
        click: (e: Event) => {
          e.preventDefault();
          host.post({ type: 'openLocation', file: loc.file, line: loc.line, column: loc.column });
        },
      },
    },
    text,
  );
}

/** Test results, stage by stage: counts, then failures with their message and location, then every test. */
export function renderTests(host: Host, tests: readonly StageTestResults[]): HTMLElement {
  if (tests.length === 0) return h('p', { class: 'empty' }, 'No test report in this run. A stage with "report:" records one.');
  return h(
    'div',
    { class: 'tests' },
    tests.map((t) => {
      const counts = { passed: 0, failed: 0, skipped: 0 };
      for (const r of t.results) counts[r.status]++;
      const failed = t.results.filter((r) => r.status === 'failed');
      return h(
        'section',
        { class: 'test-stage', data: { stage: t.stage } },
        h('h3', null, `${t.stage}${t.attempt > 1 ? ` (attempt ${t.attempt})` : ''}: `, h('span', { class: 'st-passed' }, `${counts.passed} passed`), ', ', h('span', { class: counts.failed ? 'st-failed' : 'muted' }, `${counts.failed} failed`), `, ${counts.skipped} skipped`),
        failed.map((r) =>
          h(
            'div',
            { class: 'failure' },
            h('div', { class: 'failure-title' }, h('span', { class: statusClass('failed') }, '✗ '), h('span', { class: 'test-name' }, r.name), r.suite ? h('span', { class: 'muted' }, ` — ${r.suite}`) : null),
            location(host, r),
            r.message ? h('pre', { class: 'failure-message mono' }, r.message) : null,
            r.expected !== null || r.actual !== null ? h('pre', { class: 'failure-diff mono' }, `expected: ${r.expected ?? ''}\nactual:   ${r.actual ?? ''}`) : null,
          ),
        ),
        table(
          ['', 'test', 'suite', 'time'],
          t.results.map((r) => [h('span', { class: statusClass(r.status) }, r.status === 'passed' ? '✓' : r.status === 'failed' ? '✗' : '–'), h('span', { class: 'test-name' }, r.name), r.suite, formatDuration(r.durationMs)]),
          [3],
        ),
      );
    }),
  );
}

/** The run's artifacts: stage, path, kind, digest (full on hover) and size. */
export function renderArtifacts(artifacts: readonly ArtifactInfo[]): HTMLElement {
  if (artifacts.length === 0) return h('p', { class: 'empty' }, 'No artifact recorded. A stage with "artifacts:" records its files.');
  return table(
    ['stage', 'path', 'kind', 'digest', 'size'],
    artifacts.map((a) => [a.stage, h('span', { class: 'mono' }, a.path), a.kind, h('span', { class: 'mono', title: a.digest }, a.digest.slice(0, 19)), a.kind === 'file' ? bytes(a.size) : '–']),
    [4],
  );
}

/** The run's deployments, newest first: environment, releases, status, trigger and reason. */
export function renderDeployments(deployments: readonly DeploymentInfo[]): HTMLElement {
  if (deployments.length === 0) return h('p', { class: 'empty' }, 'This run deployed nothing.');
  const sorted = [...deployments].sort((a, b) => b.id - a.id);
  return table(
    ['deploy', 'environment', 'release', 'status', 'trigger', 'reason', 'when'],
    sorted.map((d) => [
      `#${d.id}`,
      d.environment,
      `${d.fromRelease ?? '∅'} → ${d.toRelease}`,
      h('span', { class: statusClass(d.status) }, statusWord(d.status)),
      d.trigger,
      d.reason ?? '',
      when(d.finishedAt ?? d.startedAt ?? d.queuedAt),
    ]),
  );
}

/** Each scan's verdict, its sources, and its findings, most severe first. */
export function renderScans(scans: readonly ScanResult[]): HTMLElement {
  if (scans.length === 0) return h('p', { class: 'empty' }, 'No scan in this run.');
  return h(
    'div',
    null,
    scans.map((s) =>
      h(
        'section',
        { class: 'scan' },
        h('h3', null, `${s.stage}: `, h('span', { class: s.ok ? 'st-succeeded' : 'st-failed' }, s.verdict)),
        h('p', { class: 'muted' }, `${s.report.packages} packages in ${s.report.lockfiles.join(', ') || 'no lockfile'} · fails on ${s.failOn} · ${s.report.sources.map((src) => `${src.label}: ${src.status}${src.reason ? ` (${src.reason})` : ''}`).join('; ')}`),
        s.report.findings.length === 0
          ? h('p', { class: 'empty' }, 'No known vulnerability.')
          : table(
              ['severity', 'package', 'advisory', 'summary', 'fixed in'],
              s.report.findings.map((f) => [h('span', { class: `sev sev-${f.severity}` }, f.severity), `${f.package}@${f.version}`, f.url ? h('span', { class: 'mono', title: f.url }, f.id) : h('span', { class: 'mono' }, f.id), f.summary, f.fixedIn ?? '–']),
            ),
      ),
    ),
  );
}

/** Each load test's requests, error rate, throughput and latency percentiles. */
export function renderLoads(loads: readonly LoadResult[]): HTMLElement {
  if (loads.length === 0) return h('p', { class: 'empty' }, 'No load test in this run.');
  return table(
    ['stage', 'environment', 'requests', 'errors', 'throughput', 'p50', 'p95', 'p99', 'max'],
    loads.map((l) => {
      const r = l.result;
      return [l.stage, l.environment, String(r.requests), `${(r.errorRate * 100).toFixed(1)} %`, `${r.throughput.toFixed(1)}/s`, ms(r.latencyMs.p50), ms(r.latencyMs.p95), ms(r.latencyMs.p99), ms(r.latencyMs.max)];
    }),
    [2, 3, 4, 5, 6, 7, 8],
  );
}

function ms(v: number): string {
  return `${v < 10 ? v.toFixed(2) : v.toFixed(0)} ms`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
