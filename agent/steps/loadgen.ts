import * as hdr from 'hdr-histogram-js';
import type { LoadSummary } from '../protocol';
import { reportUnexpected } from '../util/lifecycle';
import { Connection, type ConnectionListener } from './loadgen/connection';
import { prepareRequest } from './loadgen/request';

export { checkThresholds, parseThreshold } from './loadgen/thresholds';

/** One load test: who sends what, how hard, for how long. */
export interface LoadOptions {
  /** Absolute http:// URL. */
  url: string;
  /** Default GET. */
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Concurrent connections: the virtual users, or the pool the arrival rate draws on. */
  connections: number;
  /**
   * A fixed arrival rate in requests/s (open model). Absent: the closed model, where each
   * virtual user sends its next request when the last answer arrives.
   */
  rate?: number;
  durationMs: number;
  /** Per request, from the moment it is sent (a connect included); default 10000. */
  timeoutMs?: number;
  /** Abort stops early and returns what was measured. */
  signal?: AbortSignal;
  /** About once a second, and once more at the end with the final counts. */
  onProgress?(p: LoadProgress): void;
}

export interface LoadProgress {
  elapsedMs: number;
  requests: number;
  errors: number;
  /** Requests ended in the last interval, per second. */
  rps: number;
}

/** A load test's result: what a `load.reported` event records, and what only the stage's log shows. */
export interface LoadResult extends LoadSummary {
  /** Requests that got a whole HTTP response, whatever its status. */
  responses: number;
  /** The first message seen for each error kind. */
  errorDetails: Record<string, string>;
}

export type ThresholdMetric = 'p50' | 'p90' | 'p95' | 'p99' | 'max' | 'mean' | 'errorRate' | 'throughput';

export interface Threshold {
  metric: ThresholdMetric;
  op: '<' | '<=' | '>' | '>=';
  /** ms, a fraction 0..1, or requests/s. */
  value: number;
  /** As written, normalised: "p95 < 200ms". */
  source: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 10_000;
const MAX_DURATION_MS = 24 * 3_600_000;
const PROGRESS_MS = 1000;
const SATURATED_SHARE = 0.9;

/**
 * Sends HTTP/1.1 requests to one URL for a duration over keep-alive connections, each a raw
 * socket with the request serialised once, and measures the answers: counts by status and by
 * error kind, latency percentiles from an HDR histogram (microsecond resolution), throughput and
 * the generator's own CPU use. When the duration is up no new request starts, and the ones in
 * flight are waited for (at most their time-out). Bad options reject with a message that says
 * what to change.
 */
export function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const problem = checkOptions(opts);
  if (problem) return Promise.reject(new Error(problem));
  const prepared = prepareRequest(opts.url, opts.method, opts.headers, opts.body);
  if (!prepared.ok) return Promise.reject(new Error(prepared.error));
  const request = prepared.value;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  return new Promise<LoadResult>((resolve) => {
    const histogram = hdr.build({
      bitBucketSize: 32,
      autoResize: true,
      lowestDiscernibleValue: 1,
      highestTrackableValue: (timeoutMs + 1000) * 1000,
      numberOfSignificantValueDigits: 3,
    });
    const statuses: number[] = [];
    const errorKinds = new Map<string, number>();
    const errorDetails = new Map<string, string>();
    let requests = 0;
    let responses = 0;
    let errors = 0;
    let dropped = 0;
    let running = true;
    let finished = false;

    const countError = (kind: string, detail: string) => {
      errors++;
      errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
      if (!errorDetails.has(kind)) errorDetails.set(kind, detail);
    };

    const idle: Connection[] = [];
    const afterRequest = (conn: Connection) => {
      if (!running) {
        if (!conns.some((c) => c.busy)) finish();
      } else if (opts.rate === undefined) {
        conn.send();
      } else {
        idle.push(conn);
      }
    };
    const listener: ConnectionListener = {
      response(conn, status, latencyMs) {
        requests++;
        responses++;
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 400) countError(`HTTP ${status}`, `the server answered ${status}`);
        histogram.recordValue(Math.max(1, Math.round(latencyMs * 1000)));
        afterRequest(conn);
      },
      failure(conn, kind, detail) {
        requests++;
        countError(kind, detail);
        afterRequest(conn);
      },
    };
    const conns = Array.from({ length: opts.connections }, () => new Connection(request, listener));

    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let lastProgress = { at: t0, requests: 0 };
    const progress = (now: number) => {
      if (!opts.onProgress) return;
      const p = { elapsedMs: Math.round(now - t0), requests, errors, rps: ((requests - lastProgress.requests) * 1000) / Math.max(1, now - lastProgress.at) };
      lastProgress = { at: now, requests };
      try {
        opts.onProgress(p);
      } catch (e) {
        reportUnexpected(e);
      }
    };

    const sweepMs = Math.min(250, Math.max(10, timeoutMs / 10));
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const c of conns) c.expire(now, timeoutMs);
      if (running && now - lastProgress.at >= PROGRESS_MS) progress(now);
    }, sweepMs);

    // The open model: request k is due at t0 + k/rate; a due request with no idle connection is dropped.
    let issued = 0;
    let arrivals: NodeJS.Timeout | undefined;
    const arrive = () => {
      if (!running || opts.rate === undefined) return;
      const now = performance.now();
      const due = Math.floor(((now - t0) * opts.rate) / 1000) + 1;
      for (; issued < due && idle.length > 0; issued++) idle.pop()?.send();
      dropped += due - issued;
      issued = due;
      arrivals = setTimeout(arrive, Math.max(0, t0 + (issued * 1000) / opts.rate - performance.now()));
    };

    const stop = () => {
      if (!running) return;
      running = false;
      clearTimeout(arrivals);
      clearTimeout(deadline);
      if (!conns.some((c) => c.busy)) finish();
    };
    const deadline = setTimeout(stop, opts.durationMs);
    const onAbort = () => {
      stop();
      finish();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    function finish(): void {
      if (finished) return;
      finished = true;
      running = false;
      clearInterval(sweep);
      clearTimeout(arrivals);
      clearTimeout(deadline);
      opts.signal?.removeEventListener('abort', onAbort);
      for (const c of conns) c.close();
      const durationMs = performance.now() - t0;
      progress(t0 + durationMs);
      const cpu = process.cpuUsage(cpu0);
      const cpuShare = (cpu.user + cpu.system) / 1000 / durationMs;
      const statusCounts: Record<string, number> = {};
      statuses.forEach((n, status) => (statusCounts[String(status)] = n));
      const us = (v: number) => (responses ? Math.round(v) / 1000 : 0);
      resolve({
        requests,
        responses,
        errors,
        errorRate: requests ? errors / requests : 0,
        statusCounts,
        errorKinds: Object.fromEntries(errorKinds),
        errorDetails: Object.fromEntries(errorDetails),
        throughput: durationMs > 0 ? (responses * 1000) / durationMs : 0,
        bytes: conns.reduce((sum, c) => sum + c.bytes, 0),
        latencyMs: {
          min: us(histogram.minNonZeroValue),
          mean: us(histogram.mean),
          p50: us(histogram.getValueAtPercentile(50)),
          p90: us(histogram.getValueAtPercentile(90)),
          p95: us(histogram.getValueAtPercentile(95)),
          p99: us(histogram.getValueAtPercentile(99)),
          max: us(histogram.maxValue),
        },
        durationMs,
        dropped,
        generator: { cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, cpuShare, saturated: cpuShare > SATURATED_SHARE },
      });
    }

    if (opts.signal?.aborted) {
      finish();
    } else if (opts.rate === undefined) {
      for (const c of conns) c.send();
    } else {
      idle.push(...conns);
      arrive();
    }
  });
}

/** What is wrong with the numbers of a load test, or null. */
function checkOptions(o: LoadOptions): string | null {
  if (!Number.isInteger(o.connections) || o.connections < 1 || o.connections > MAX_CONNECTIONS) {
    return `connections must be a whole number from 1 to ${MAX_CONNECTIONS}, such as 10; it is ${o.connections}`;
  }
  if (!Number.isFinite(o.durationMs) || o.durationMs <= 0 || o.durationMs > MAX_DURATION_MS) {
    return `the duration must be above 0 and at most 24 hours, such as 30000 ms; it is ${o.durationMs}`;
  }
  if (o.rate !== undefined && (!Number.isFinite(o.rate) || o.rate <= 0)) return `the arrival rate must be above 0 requests/s, such as 100; it is ${o.rate}`;
  if (o.timeoutMs !== undefined && (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0)) {
    return `the request time-out must be above 0, such as 10000 ms; it is ${o.timeoutMs}`;
  }
  return null;
}
