import type { RunStatus, RunSummary, StageInfo, StageStatus } from '../protocol';

/** Colours only on a terminal, and never with NO_COLOR. */
export interface Style {
  color: boolean;
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1 } as const;
export type Color = keyof typeof CODES;

export function paint(style: Style, color: Color, text: string): string {
  return style.color ? `\x1b[${CODES[color]}m${text}\x1b[0m` : text;
}

const STATUS: Record<StageStatus | RunStatus, { mark: string; color: Color; word: string }> = {
  queued: { mark: '…', color: 'gray', word: 'queued' },
  pending: { mark: '…', color: 'gray', word: 'pending' },
  waiting: { mark: '⏸', color: 'yellow', word: 'waiting for approval' },
  running: { mark: '●', color: 'yellow', word: 'running' },
  succeeded: { mark: '✓', color: 'green', word: 'succeeded' },
  failed: { mark: '✗', color: 'red', word: 'failed' },
  timed_out: { mark: '⏱', color: 'red', word: 'timed out' },
  cancelled: { mark: '⊘', color: 'magenta', word: 'cancelled' },
  skipped: { mark: '↷', color: 'gray', word: 'skipped' },
  interrupted: { mark: '!', color: 'magenta', word: 'interrupted' },
};

export function statusMark(style: Style, status: StageStatus | RunStatus): string {
  const s = STATUS[status];
  return paint(style, s.color, s.mark);
}

export function statusWord(style: Style, status: StageStatus | RunStatus): string {
  const s = STATUS[status];
  return paint(style, s.color, s.word);
}

/** "3 min ago", as the UI shows times. */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 45) return `${s}s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 36) return `${h} h ago`;
  return `${Math.round(h / 24)} d ago`;
}

export function duration(from: string | null, to: string | null, now = Date.now()): string {
  if (!from) return '';
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${Math.round((ms % 60_000) / 1000)}s`;
}

export function shortSha(sha: string | null): string {
  return sha ? sha.slice(0, 7) : 'working tree';
}

export function runLine(style: Style, r: RunSummary): string {
  const where = r.commit ? `${shortSha(r.commit)}${r.branch ? ` (${r.branch})` : ''}` : 'working tree';
  const title = r.title && r.commit ? ` ${truncate(r.title, 50)}` : '';
  return `${statusMark(style, r.status)} #${r.id} ${statusWord(style, r.status)} · ${r.trigger} · ${where}${title} · ${ago(r.queuedAt)}${
    r.startedAt ? ` · ${duration(r.startedAt, r.finishedAt)}` : ''
  }`;
}

export function stageLine(style: Style, s: StageInfo): string {
  const attempt = s.attempt > 1 ? ` (attempt ${s.attempt})` : '';
  const time = s.startedAt && s.finishedAt ? ` ${paint(style, 'gray', duration(s.startedAt, s.finishedAt))}` : '';
  const msg = s.message ? `: ${s.message}` : '';
  return `${statusMark(style, s.status)} ${s.name}${attempt}${time}${msg}`;
}

export function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** A fixed-width table for `history`. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell))));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i] - visibleLength(cell)))).join('  ')).join('\n');
}

function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}
