/**
 * Diagnostics as text: one line as a compiler prints it, or a few lines for a terminal with
 * the source line and a squiggle under the range.
 */

import type { Diagnostic, Range } from '../protocol';

/** `${file}:${line}:${column}: ${severity}: ${message}`, then ` (fix: ${fix})` when there is one. */
export function formatDiagnosticLine(d: Diagnostic): string {
  const head = `${d.file}:${d.range.start.line}:${d.range.start.column}: ${d.severity}: ${d.message}`;
  return d.fix ? `${head} (fix: ${d.fix})` : head;
}

const ANSI = {
  reset: '\u001b[0m',
  bold: '\u001b[1m',
  dim: '\u001b[2m',
  red: '\u001b[31m',
  green: '\u001b[32m',
  yellow: '\u001b[33m',
  cyan: '\u001b[36m',
};

type Paint = (style: keyof typeof ANSI, s: string) => string;

/**
 * For a terminal: the line of `formatDiagnosticLine`, then the source line and a `^~~~` squiggle
 * under the range, then each related location the same way. Colour only when `opts.color`.
 */
export function formatDiagnosticPretty(d: Diagnostic, text: string, opts: { color?: boolean } = {}): string {
  const paint: Paint = opts.color ? (style, s) => `${ANSI[style]}${s}${ANSI.reset}` : (_style, s) => s;
  const lines = typeof text === 'string' && text.length > 0 ? text.split('\n').map((l) => l.replace(/\r$/, '')) : [];
  const width = Math.max(
    String(d.range.start.line).length,
    ...(d.related ?? []).map((r) => String(r.range.start.line).length),
  );
  const out: string[] = [];
  const sev = d.severity === 'error' ? paint('red', paint('bold', 'error')) : paint('yellow', paint('bold', 'warning'));
  const fix = d.fix ? ` ${paint('dim', '(fix:')} ${d.fix}${paint('dim', ')')}` : '';
  out.push(`${paint('bold', `${d.file}:${d.range.start.line}:${d.range.start.column}:`)} ${sev}: ${paint('bold', d.message)}${fix}`);
  out.push(...excerpt(lines, d.range, width, paint));
  for (const r of d.related ?? []) {
    out.push(`${paint('bold', `${r.file}:${r.range.start.line}:${r.range.start.column}:`)} ${paint('cyan', 'note')}: ${r.message}`);
    if (r.file === d.file) out.push(...excerpt(lines, r.range, width, paint));
  }
  return out.join('\n');
}

/** The source line of a range and a squiggle under its columns (to the line's end if it spans lines). */
function excerpt(lines: readonly string[], range: Range, width: number, paint: Paint): string[] {
  const n = range.start.line;
  if (n < 1 || n > lines.length) return [];
  const line = lines[n - 1];
  const startCol = Math.min(Math.max(1, range.start.column), line.length + 1);
  const endCol =
    range.end.line === n ? Math.min(Math.max(range.end.column, startCol), line.length + 1) : line.length + 1;
  const len = Math.max(1, endCol - startCol);
  // Keep tabs in the padding so the squiggle lines up however the terminal shows them.
  const pad = line.slice(0, startCol - 1).replace(/[^\t]/g, ' ');
  const gutter = paint('dim', `${String(n).padStart(width)} |`);
  const blank = paint('dim', `${' '.repeat(width)} |`);
  return [`${gutter} ${line}`, `${blank} ${pad}${paint('green', '^' + '~'.repeat(len - 1))}`];
}
