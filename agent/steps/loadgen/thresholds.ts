import { err, ok, type Result } from '../../util/lifecycle';
import type { LoadResult, Threshold, ThresholdMetric } from '../loadgen';

const LATENCY = ['p50', 'p90', 'p95', 'p99', 'max', 'mean'] as const;
const METRICS: readonly ThresholdMetric[] = [...LATENCY, 'errorRate', 'throughput'];
const EXPR = /^(<=|>=|<|>)\s*(\d+(?:\.\d+)?|\.\d+)\s*(\S*)$/;
const RATE_UNITS = ['/s', 'req/s', 'requests/s'];

/**
 * A threshold from its metric and expression: ('p95', '< 200ms'), ('errorRate', '< 1%'),
 * ('throughput', '>= 500/s'). Latencies take ms or s, errorRate a percentage or a fraction up to
 * 1, throughput a rate per second; the value is kept in ms, as a fraction, or in requests/s.
 */
export function parseThreshold(metric: string, expr: string): Result<Threshold, string> {
  if (!(METRICS as readonly string[]).includes(metric)) {
    return err(`"${metric}" is not a load test metric; use one of ${METRICS.join(', ')}`);
  }
  const m = metric as ThresholdMetric;
  const text = expr.trim();
  const match = EXPR.exec(text);
  if (!match) return err(`${m} takes a comparison (<, <=, > or >=) and ${takes(m)}; "${text}" is not one`);
  const op = match[1] as Threshold['op'];
  const number = Number(match[2]);
  const unit = match[3].toLowerCase();
  const value = convert(m, number, unit);
  if (typeof value === 'string') return err(`${m} takes ${takes(m)}; "${text}" ${value}`);
  return ok({ metric: m, op, value, source: `${m} ${op} ${match[2]}${match[3]}` });
}

/** Each threshold against a result. A latency threshold fails when no response came back to measure. */
export function checkThresholds(result: LoadResult, thresholds: Threshold[]): { threshold: Threshold; actual: number; ok: boolean }[] {
  return thresholds.map((threshold) => {
    const actual = actualValue(result, threshold.metric);
    return { threshold, actual, ok: !Number.isNaN(actual) && compare(actual, threshold.op, threshold.value) };
  });
}

function takes(metric: ThresholdMetric): string {
  if (metric === 'errorRate') return 'a percentage such as "< 1%" or a fraction up to 1 such as "< 0.01"';
  if (metric === 'throughput') return 'a rate such as ">= 500/s"';
  return 'a duration such as "< 200ms"';
}

/** The value in the threshold's unit, or what is wrong with the unit. */
function convert(metric: ThresholdMetric, n: number, unit: string): number | string {
  const has = unit ? `has the unit "${unit}"` : 'has no unit';
  if (metric === 'errorRate') {
    if (unit === '%') return n <= 100 ? n / 100 : 'is above 100%';
    if (unit === '') return n <= 1 ? n : `${has} and is above 1 (use %)`;
    return `${has} (use % or a fraction)`;
  }
  if (metric === 'throughput') {
    return RATE_UNITS.includes(unit) ? n : `${has} (use /s or req/s)`;
  }
  if (unit === 'ms') return n;
  if (unit === 's') return n * 1000;
  return `${has} (use ms or s)`;
}

function actualValue(result: LoadResult, metric: ThresholdMetric): number {
  switch (metric) {
    case 'errorRate':
      return result.errorRate;
    case 'throughput':
      return result.throughput;
    default:
      return result.responses > 0 ? result.latencyMs[metric] : NaN;
  }
}

function compare(actual: number, op: Threshold['op'], value: number): boolean {
  switch (op) {
    case '<':
      return actual < value;
    case '<=':
      return actual <= value;
    case '>':
      return actual > value;
    case '>=':
      return actual >= value;
  }
}
