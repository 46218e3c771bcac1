import * as net from 'node:net';
import type { LoadSummary, TestResult } from '../protocol';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { SingleStep } from './executor';
import { checkThresholds, parseThreshold, runLoad, type LoadResult, type Threshold } from './loadgen';
import { connectionError, environmentUrl, formatDuration, targetUrl } from './probe';

/** How long the reachability check before the load may take. */
const CONNECT_TIMEOUT_MS = 3000;

/**
 * The `load` stage kind: first checks that the target accepts connections (an unreachable one
 * fails at once, naming the URL), then sends the stage's request for its duration with the load
 * generator, logging progress once a second. The result goes to the log as a table and is
 * recorded as a `load.reported` event, for trends; each threshold is a test result, and a breach
 * fails the stage.
 */
export class LoadExecutor implements StageExecutor {
  readonly kind = 'load' as const;

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const load = ctx.stage.load!;
    const environment = ctx.stage.environment ?? '';
    const target = load.url ?? load.path ?? '/';
    const step = new SingleStep(ctx, `load ${environment}: ${load.method} ${target}, ${load.connections} connections${load.rate ? ` at ${load.rate}/s` : ''} for ${formatDuration(load.durationMs)}`);
    const base = await environmentUrl(ctx);
    if (!base.ok) return step.end({ status: 'failed', message: base.error });
    const url = targetUrl(base.value, load.path, load.url);

    const thresholds: Threshold[] = [];
    for (const t of load.thresholds) {
      const parsed = parseThreshold(t.metric, t.expr);
      if (!parsed.ok) return step.end({ status: 'failed', message: `threshold ${t.metric}: ${parsed.error}` });
      thresholds.push(parsed.value);
    }
    const reachable = await canConnect(url);
    if (!reachable.ok) return step.end({ status: 'failed', message: `could not connect to ${url}: ${reachable.reason}` });

    step.line(`${load.method} ${url}: ${load.connections} connections${load.rate ? `, ${load.rate} requests/s` : ''}, for ${formatDuration(load.durationMs)}`);
    let result: LoadResult;
    try {
      result = await runLoad({
        url,
        method: load.method,
        headers: load.headers,
        body: load.body ?? undefined,
        connections: load.connections,
        rate: load.rate ?? undefined,
        durationMs: load.durationMs,
        signal: ctx.signal,
        onProgress: (p) => step.line(`${formatDuration(p.elapsedMs).padStart(7)}  ${p.requests} requests, ${p.errors} errors, ${Math.round(p.rps)}/s`),
      });
    } catch (e) {
      return step.end({ status: 'failed', message: `the load could not start: ${(e as Error).message}` });
    }
    if (ctx.signal.aborted) {
      return step.end(ctx.signal.reason === 'timeout' ? { status: 'timed_out', message: `timed out after ${formatDuration(result.durationMs)} of load` } : { status: 'cancelled', message: 'cancelled' });
    }
    for (const line of resultTable(result)) step.line(line);
    ctx.emit({ type: 'load.reported', runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, environment, url, result: loadSummary(result) });

    const answered = Object.values(result.statusCounts).reduce((a, b) => a + b, 0);
    if (result.requests > 0 && answered === 0) {
      const kinds = Object.entries(result.errorKinds).map(([k, n]) => `${k} ×${n}`).join(', ');
      return step.end({ status: 'failed', message: `no request to ${url} got an answer (${kinds || 'no answers'})` });
    }
    const checks = checkThresholds(result, thresholds);
    const results: TestResult[] = checks.map((c, k) => {
      const actual = formatMetric(c.threshold.metric, c.actual);
      step.line(`${c.ok ? '✓' : '✗'} ${c.threshold.source}: ${actual}`);
      return {
        suite: ctx.stage.name,
        name: c.threshold.source,
        status: c.ok ? 'passed' : 'failed',
        durationMs: null,
        message: c.ok ? null : `${c.threshold.source} breached: ${actual}`,
        expected: `${c.threshold.op} ${formatMetric(c.threshold.metric, c.threshold.value)}`,
        actual,
        stack: null,
        location: load.thresholds[k].location,
      };
    });
    const failed = results.filter((r) => r.status === 'failed');
    if (results.length > 0) {
      ctx.emit({ type: 'tests.reported', runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, passed: results.length - failed.length, failed: failed.length, skipped: 0, results });
    }
    if (failed.length > 0) return step.end({ status: 'failed', message: failed.map((r) => r.message).join('; ') });
    return step.end({ status: 'succeeded', message: null });
  }
}

/** The figures of a result that a `load.reported` event records. */
export function loadSummary(r: LoadResult): LoadSummary {
  return {
    requests: r.requests,
    errors: r.errors,
    errorRate: r.errorRate,
    statusCounts: { ...r.statusCounts },
    errorKinds: { ...r.errorKinds },
    throughput: r.throughput,
    bytes: r.bytes,
    latencyMs: { ...r.latencyMs },
    durationMs: r.durationMs,
    dropped: r.dropped,
    generator: { ...r.generator },
  };
}

/** A result as the rows of a two-column table. */
export function resultTable(r: LoadResult): string[] {
  const l = r.latencyMs;
  const rows: [string, string][] = [
    ['requests', `${r.requests} (${r.errors} errors, ${formatMetric('errorRate', r.errorRate)})`],
    ['throughput', formatMetric('throughput', r.throughput)],
    ['latency', `min ${ms(l.min)}  mean ${ms(l.mean)}  p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p95 ${ms(l.p95)}  p99 ${ms(l.p99)}  max ${ms(l.max)}`],
    ['statuses', Object.entries(r.statusCounts).map(([s, n]) => `${s} ×${n}`).join(', ') || 'none'],
    ['errors', Object.entries(r.errorKinds).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'],
    ['received', `${(r.bytes / 1024).toFixed(1)} KiB`],
    ['duration', formatDuration(r.durationMs)],
    ['dropped', `${r.dropped}${r.dropped > 0 ? ' (every connection was busy: add connections or lower the rate)' : ''}`],
    [
      'generator',
      `${Math.round(r.generator.cpuShare * 100)}% of a core (user ${formatDuration(r.generator.cpuUserMs)}, system ${formatDuration(r.generator.cpuSystemMs)})${r.generator.saturated ? ': saturated, so the figures may show the generator\'s limit rather than the service\'s' : ''}`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
}

/** A metric's value in its unit: "12.3 ms", "0.50%", "812.4/s". */
function formatMetric(metric: Threshold['metric'], value: number): string {
  if (Number.isNaN(value)) return 'not measured (no answer)';
  if (metric === 'errorRate') return `${(value * 100).toFixed(2)}%`;
  if (metric === 'throughput') return `${value.toFixed(1)}/s`;
  return ms(value);
}

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

/** Whether the URL's host accepts a TCP connection. */
function canConnect(url: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ ok: false, reason: 'not a URL' });
      return;
    }
    const socket = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) });
    const done = (r: { ok: true } | { ok: false; reason: string }) => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => done({ ok: false, reason: `no connection within ${formatDuration(CONNECT_TIMEOUT_MS)}` }));
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (e) => done({ ok: false, reason: connectionError(e) }));
  });
}
