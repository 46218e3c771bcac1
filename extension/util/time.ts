/** Human times for tree labels and tooltips: "3 min ago", "1.2 s". */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "just now", "42 s ago", "3 min ago", "2 h ago", "yesterday", "5 days ago", then the date. */
export function relativeTime(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const ago = Math.max(0, now - t);
  if (ago < 5_000) return 'just now';
  if (ago < MINUTE) return `${Math.floor(ago / 1000)} s ago`;
  if (ago < HOUR) return `${Math.floor(ago / MINUTE)} min ago`;
  if (ago < DAY) return `${Math.floor(ago / HOUR)} h ago`;
  if (ago < 2 * DAY) return 'yesterday';
  if (ago < 7 * DAY) return `${Math.floor(ago / DAY)} days ago`;
  return new Date(t).toISOString().slice(0, 10);
}

/** The absolute local time, for tooltips. */
export function absoluteTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** "850 ms", "3.2 s", "2 min 5 s", "1 h 3 min". */
export function formatDuration(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < MINUTE) return `${(Math.round(ms / 100) / 10).toFixed(1)} s`;
  if (ms < HOUR) {
    const m = Math.floor(ms / MINUTE);
    const s = Math.round((ms - m * MINUTE) / 1000);
    return s ? `${m} min ${s} s` : `${m} min`;
  }
  const h = Math.floor(ms / HOUR);
  const m = Math.round((ms - h * HOUR) / MINUTE);
  return m ? `${h} h ${m} min` : `${h} h`;
}

/** Duration between two ISO times; a missing end means "until now" (still running). */
export function durationBetween(start: string | null, end: string | null, now = Date.now()): string | undefined {
  if (!start) return undefined;
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : now;
  if (Number.isNaN(a) || Number.isNaN(b)) return undefined;
  return formatDuration(b - a);
}

export function shortSha(sha: string | null): string | undefined {
  return sha ? sha.slice(0, 7) : undefined;
}
