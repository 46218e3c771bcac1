/**
 * Times and durations for people: relative ("3 min ago") with the absolute time for a tooltip,
 * and short durations ("2m 10s"). Pure: no DOM.
 */

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago"; a future time reads "in 3 min". */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const diff = now - t;
  const abs = Math.abs(diff);
  let text: string;
  if (abs < 5_000) return 'just now';
  if (abs < 60_000) text = `${Math.round(abs / 1000)} s`;
  else if (abs < 3_600_000) text = `${Math.round(abs / 60_000)} min`;
  else if (abs < 86_400_000) text = `${Math.round(abs / 3_600_000)} h`;
  else {
    const days = Math.round(abs / 86_400_000);
    text = `${days} day${days === 1 ? '' : 's'}`;
  }
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** The absolute local time, for a tooltip. */
export function absoluteTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

/** "850 ms", "3.2 s", "2m 10s", "1h 5m", "2d 3h". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  const m = Math.round(s / 60);
  if (m < 24 * 60) return `${Math.floor(m / 60)}h ${m % 60}m`;
  const h = Math.round(m / 60);
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** The time between two instants, or from one to now. */
export function durationBetween(from: string | null | undefined, to: string | null | undefined, now = Date.now()): string {
  if (!from) return '';
  const end = to ? Date.parse(to) : now;
  return formatDuration(end - Date.parse(from));
}

/** The local calendar day of a time, YYYY-MM-DD (the timeline groups by it). */
export function localDay(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** "Today", "Yesterday", or the day written out. */
export function dayLabel(day: string, now = new Date()): string {
  const today = localDay(now.toISOString());
  const yesterday = localDay(new Date(now.getTime() - 86_400_000).toISOString());
  if (day === today) return 'Today';
  if (day === yesterday) return 'Yesterday';
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d).toLocaleDateString(undefined, { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric' });
}
