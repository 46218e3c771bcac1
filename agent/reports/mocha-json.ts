/**
 * mocha's JSON reporter (`mocha --reporter json`, best with `--reporter-option output=FILE`).
 *
 * The report has `stats`, `tests`, `passes`, `failures` and `pending`; a test object has
 * `title`, `fullTitle`, `file`, `duration` and `err` (`message`, `stack`, `expected`, `actual`).
 * `tests` lists every test in order; a test is failed when it is in `failures`, skipped when it
 * is in `pending`, passed otherwise. Failures that are not tests (a failing hook,
 * `"before each" hook for "x"`) appear in `failures` only and are reported as failed results.
 * The suite is `fullTitle` without the trailing `title`.
 *
 * When the reporter wrote to stdout and the tests printed before it, the JSON starts after
 * their output: the parser skips to the line that opens the report (`{` then `"stats"`).
 */
import type { TestResult, TestStatus } from '../protocol';
import type { ReportContext, ReportParseResult } from './index';
import { Locator } from './locate';

interface MochaTest {
  title?: unknown;
  fullTitle?: unknown;
  file?: unknown;
  duration?: unknown;
  err?: unknown;
}

export function parseMochaJson(text: string, ctx: ReportContext): ReportParseResult {
  let json = text;
  let offset = 0;
  if (!/^\s*\{/.test(text)) {
    const start = /^\{\s*"stats"\s*:/m.exec(text);
    if (!start) {
      const first = text.trimStart().slice(0, 12).split(/\r?\n/)[0];
      return { ok: false, reason: `not a mocha JSON report: expected a JSON object, but the text starts with '${first}'` };
    }
    offset = start.index;
    json = text.slice(offset);
  }

  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    return { ok: false, reason: jsonError(err, text, offset) };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    return { ok: false, reason: 'not a mocha JSON report: the JSON is not an object' };
  }
  const report = doc as Record<string, unknown>;
  if (!Array.isArray(report.tests)) {
    const keys = Object.keys(report).slice(0, 5).join(', ');
    return { ok: false, reason: `not a mocha JSON report: no "tests" array (keys: ${keys || 'none'})` };
  }

  const failures = countByKey(report.failures);
  const pending = countByKey(report.pending);
  const failureErrs = errByKey(report.failures);
  const locator = new Locator(ctx);
  const results: TestResult[] = [];

  for (const raw of report.tests) {
    if (!raw || typeof raw !== 'object') continue;
    const test = raw as MochaTest;
    const k = key(test);
    let status: TestStatus = 'passed';
    if (take(failures, k)) status = 'failed';
    else if (take(pending, k)) status = 'skipped';
    const err = status === 'failed' ? nonEmptyErr(test.err) ?? failureErrs.get(k)?.shift() ?? null : null;
    results.push(toResult(test, status, err, locator));
  }
  // Failures that are not in `tests`: hooks.
  if (Array.isArray(report.failures)) {
    for (const raw of report.failures) {
      if (!raw || typeof raw !== 'object') continue;
      const test = raw as MochaTest;
      const k = key(test);
      if (take(failures, k)) results.push(toResult(test, 'failed', nonEmptyErr(test.err), locator));
    }
  }
  return { ok: true, results };
}

function jsonError(err: unknown, text: string, offset: number): string {
  const msg = err instanceof Error ? err.message : String(err);
  const detail = msg.replace(/ in JSON at position \d+.*$/s, '').replace(/ at position \d+.*$/s, '').replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '');
  const scan = scanJson(text, offset);
  if (!scan) return `malformed JSON: ${detail}`;
  if (scan.eof) {
    const end = text.replace(/\s+$/, '').length;
    return `truncated JSON at byte ${Buffer.byteLength(text.slice(0, end))}: the mocha JSON report ends before it is complete`;
  }
  return `malformed JSON at byte ${Buffer.byteLength(text.slice(0, scan.offset))}: ${detail}`;
}

const NUMBER_OR_LITERAL = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

/**
 * Finds where JSON goes wrong (JSON.parse does not always say): the offset of the first error
 * and whether it is the end of the text (a truncated report). Null when no error is found.
 */
function scanJson(s: string, from: number): { offset: number; eof: boolean } | null {
  const n = s.length;
  const stack: string[] = [];
  let i = from;
  let mode: 'value' | 'key' | 'after' = 'value';
  const fail = (at: number): { offset: number; eof: boolean } => {
    if (at >= n) return { offset: n, eof: true };
    // A number or literal cut in the middle (`tr`, `1.`, `-`) is also the end of the text.
    const rest = s.slice(at);
    if (rest.length < 32 && !/[\s{}[\],:"]/.test(rest) && (mode === 'value' || /[\w.+-]/.test(s[at - 1] ?? ''))) {
      return { offset: n, eof: true };
    }
    return { offset: at, eof: false };
  };
  const skipString = (): boolean => {
    i++;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 34) {
        i++;
        return true;
      }
      if (c === 92) i += 2;
      else if (c < 0x20) return false;
      else i++;
    }
    i = n;
    return false;
  };
  for (;;) {
    while (i < n && (s[i] === ' ' || s[i] === '\n' || s[i] === '\r' || s[i] === '\t')) i++;
    if (i >= n) return mode === 'after' && stack.length === 0 ? null : { offset: n, eof: true };
    const c = s[i];
    if (mode === 'value') {
      if (c === '{' || c === '[') {
        stack.push(c);
        i++;
        while (i < n && /\s/.test(s[i])) i++;
        if (i < n && s[i] === (c === '{' ? '}' : ']')) {
          stack.pop();
          i++;
          mode = 'after';
        } else mode = c === '{' ? 'key' : 'value';
        continue;
      }
      if (c === '"') {
        if (!skipString()) return fail(i);
        mode = 'after';
        continue;
      }
      NUMBER_OR_LITERAL.lastIndex = i;
      const m = NUMBER_OR_LITERAL.exec(s);
      if (!m) return fail(i);
      i += m[0].length;
      mode = 'after';
      continue;
    }
    if (mode === 'key') {
      if (c !== '"') return fail(i);
      if (!skipString()) return fail(i);
      while (i < n && /\s/.test(s[i])) i++;
      if (i >= n) return { offset: n, eof: true };
      if (s[i] !== ':') return fail(i);
      i++;
      mode = 'value';
      continue;
    }
    const top = stack[stack.length - 1];
    if (top === undefined) return fail(i);
    if (c === ',') {
      i++;
      mode = top === '{' ? 'key' : 'value';
    } else if ((c === '}' && top === '{') || (c === ']' && top === '[')) {
      stack.pop();
      i++;
    } else return fail(i);
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
}

function key(test: MochaTest): string {
  return `${str(test.file)}\u0000${str(test.fullTitle)}`;
}

function countByKey(list: unknown): Map<string, number> {
  const counts = new Map<string, number>();
  if (Array.isArray(list)) {
    for (const t of list) {
      if (t && typeof t === 'object') {
        const k = key(t as MochaTest);
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
    }
  }
  return counts;
}

function errByKey(list: unknown): Map<string, Record<string, unknown>[]> {
  const errs = new Map<string, Record<string, unknown>[]>();
  if (Array.isArray(list)) {
    for (const t of list) {
      if (!t || typeof t !== 'object') continue;
      const err = nonEmptyErr((t as MochaTest).err);
      if (!err) continue;
      const k = key(t as MochaTest);
      const arr = errs.get(k) ?? [];
      arr.push(err);
      errs.set(k, arr);
    }
  }
  return errs;
}

function take(counts: Map<string, number>, k: string): boolean {
  const n = counts.get(k) ?? 0;
  if (n <= 0) return false;
  counts.set(k, n - 1);
  return true;
}

function nonEmptyErr(err: unknown): Record<string, unknown> | null {
  if (!err || typeof err !== 'object' || Array.isArray(err)) return null;
  return Object.keys(err).length > 0 ? (err as Record<string, unknown>) : null;
}

function toResult(test: MochaTest, status: TestStatus, err: Record<string, unknown> | null, locator: Locator): TestResult {
  const title = str(test.title);
  const fullTitle = str(test.fullTitle) || title;
  const suite = title && fullTitle.endsWith(title) ? fullTitle.slice(0, fullTitle.length - title.length).trim() : '';
  const duration = typeof test.duration === 'number' && Number.isFinite(test.duration) ? test.duration : null;
  const file = typeof test.file === 'string' && test.file ? test.file : null;

  let message: string | null = null;
  let stack: string | null = null;
  let expected: string | null = null;
  let actual: string | null = null;
  if (err) {
    message = typeof err.message === 'string' ? err.message.replace(/\s+$/, '') || null : null;
    stack = typeof err.stack === 'string' && err.stack.trim() ? err.stack : null;
    if (message === null && stack) message = stack.split('\n')[0];
    if (Object.prototype.hasOwnProperty.call(err, 'expected') || Object.prototype.hasOwnProperty.call(err, 'actual')) {
      expected = valueText(err.expected);
      actual = valueText(err.actual);
    }
  }

  const own = file ? { file } : null;
  const location = status === 'failed' ? locator.locate(stack, own) : own ? locator.fromOwn(own) : null;
  return {
    suite,
    name: title || fullTitle,
    status,
    durationMs: duration,
    message,
    expected,
    actual,
    stack,
    location,
  };
}

function valueText(v: unknown): string | null {
  if (v === undefined) return null;
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v, null, 2) ?? String(v);
  } catch {
    return String(v);
  }
}
