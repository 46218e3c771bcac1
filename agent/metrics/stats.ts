/**
 * Small numeric and time helpers shared by the monitoring queries, and the checks of their inputs.
 */
import type { ApiError, TimeWindow } from '../protocol';

/** Milliseconds in an hour, a day and a week. */
export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const WEEK_MS = 7 * DAY_MS;

/** A query's input that is wrong, with what to write instead: the API answers it with a 400. */
export class InputError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }

  /** The answer of the API: the message and the fix. */
  toApiError(): ApiError {
    return { error: this.message, fix: this.fix };
  }
}

/**
 * The nearest-rank percentile of numbers sorted ascending: the smallest sample with at least
 * `p` percent of the samples at or below it. Always an observed value; null without samples.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p * sorted.length) / 100));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** Sorts a copy ascending. */
export function ascending(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** An ISO-8601 time given by a caller, in milliseconds; `fallback` when absent. */
export function timeParam(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new InputError(`"${name}" is not a time: ${JSON.stringify(value)}`, 'give an ISO-8601 time such as 2026-05-01T00:00:00Z');
  return ms;
}

/** A whole number given by a caller, within [min, max]; `fallback` when absent. */
export function intParam(value: number | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InputError(`"${name}" must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`, `e.g. ${name}=${fallback}`);
  }
  return value;
}

/** A percentage given by a caller, above 0 and at most 1000; `fallback` when absent. */
export function pctParam(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 1000) {
    throw new InputError(`"${name}" must be a percentage above 0 and at most 1000, not ${JSON.stringify(value)}`, `e.g. ${name}=${fallback} for ${fallback}% slower`);
  }
  return value;
}

/** A non-empty name given by a caller (an environment, a stage). */
export function nameParam(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '' || value.length > 200) {
    throw new InputError(`"${name}" must be a name of 1 to 200 characters`, `e.g. ${name}=production`);
  }
  return value;
}

/** The start of the UTC day that holds `ms`. */
export function utcDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** A time in milliseconds as ISO-8601 UTC. */
export const iso = (ms: number): string => new Date(ms).toISOString();

/** The window [from, to) as ISO-8601 times. */
export function timeWindow(from: number, to: number): TimeWindow {
  return { from: iso(from), to: iso(to) };
}

/** "850 ms", "3.3s", "42s", "3m 10s", "2h 5m", "4d 3h": for one-line messages. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(ms)} ms`;
  const sign = ms < 0 ? '-' : '';
  if (abs < 10_000) return `${sign}${(abs / 1000).toFixed(1)}s`;
  const s = Math.round(abs / 1000);
  if (s < 60) return `${sign}${s}s`;
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${sign}${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${sign}${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}
