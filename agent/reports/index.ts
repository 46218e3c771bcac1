/**
 * Test reports: turns a runner's report (JUnit XML, TAP 13/14, mocha's JSON reporter) into
 * `TestResult`s, each failure placed at the failing assertion's line when the stack allows it.
 *
 * Every entry point answers `{ ok: false, reason }` instead of throwing: the reason is written
 * for the user ("truncated JSON at byte 1234", "TAP plan 1..5 but 3 test points"). A report that
 * ends mid-way is refused even when it holds complete test cases, since the missing part may
 * hold failures.
 *
 * Conventions shared by the parsers:
 * - `suite` is the path of enclosing describe blocks / suites / parent tests joined with single
 *   spaces, as mocha's `fullTitle` does (`math division`); '' for a test at the top level.
 * - `durationMs` is in milliseconds, null when the report has none.
 * - `expected` and `actual` are strings: strings as they are, other values as JSON.
 * - `location` points inside the workspace (see `locate.ts`), else null.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ReportFormat, TestResult } from '../protocol';
import { shortenMessages, type MessageBudget } from './budget';
import { parseJUnit } from './junit';
import { parseMochaJson } from './mocha-json';
import { parseTap } from './tap';

/** `shortened`: how many results had their texts cut by a `MessageBudget` (readReport only). */
export type ReportParseResult = { ok: true; results: TestResult[]; shortened?: number } | { ok: false; reason: string };

export interface ReportContext {
  /** Absolute path of the workspace folder: only locations inside it are reported. */
  workspaceRoot: string;
  /** Where the runner ran: relative paths in reports resolve against it. */
  cwd: string;
}

export interface ReadReportOptions {
  /** Larger files are refused. Default 256 MiB. */
  maxBytes?: number;
  /** Bounds the text the results keep (see `budget.ts`); the answer's `shortened` counts the results cut. */
  messages?: MessageBudget;
  /**
   * Larger files are parsed in a worker thread, so that a big report does not hold up the
   * event loop (the agent's API, the other stages) for seconds. Default 1 MiB.
   */
  workerAbove?: number;
}

export const DEFAULT_MAX_REPORT_BYTES = 256 * 1024 * 1024;
export const DEFAULT_WORKER_ABOVE_BYTES = 1024 * 1024;

/**
 * The worker's entry: beside this module once compiled (out/agent/reports/), and beside the
 * bundle (dist/reportWorker.js, built by scripts/bundle.js), since bundled code's __dirname is dist/.
 */
const WORKER_FILE = path.join(__dirname, 'reportWorker.js');

const FORMAT_NAMES: Record<ReportFormat, string> = {
  junit: 'JUnit XML',
  tap: 'TAP',
  'mocha-json': 'mocha JSON',
};

/**
 * Pure: never throws, whatever the text, and writes nothing. (To place failures it reads the
 * source maps of compiled files that stack frames name.)
 */
export function parseReport(format: ReportFormat, text: string, ctx: ReportContext): ReportParseResult {
  try {
    if (!Object.prototype.hasOwnProperty.call(FORMAT_NAMES, format)) {
      return { ok: false, reason: `unknown report format '${String(format)}': expected junit, tap or mocha-json` };
    }
    if (typeof text !== 'string') return { ok: false, reason: `the ${FORMAT_NAMES[format]} report is not text` };
    const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    if (body.trim() === '') return { ok: false, reason: `the ${FORMAT_NAMES[format]} report is empty` };
    switch (format) {
      case 'junit':
        return parseJUnit(body, ctx);
      case 'tap':
        return parseTap(body, ctx);
      case 'mocha-json':
        return parseMochaJson(body, ctx);
    }
  } catch (err) {
    const name = Object.prototype.hasOwnProperty.call(FORMAT_NAMES, format) ? FORMAT_NAMES[format] : String(format);
    return { ok: false, reason: `could not read the ${name} report: ${describeError(err)}` };
  }
}

/** Decodes, parses and bounds a report's bytes: what the worker does, and readReport for small files. */
export function parseReportBytes(format: ReportFormat, bytes: Uint8Array, ctx: ReportContext, messages?: MessageBudget): ReportParseResult {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const parsed = parseReport(format, text, ctx);
  if (!parsed.ok || !messages) return parsed;
  try {
    return { ok: true, results: parsed.results, shortened: shortenMessages(parsed.results, messages) };
  } catch (err) {
    return { ok: false, reason: `could not read the ${FORMAT_NAMES[format]} report: ${describeError(err)}` };
  }
}

/**
 * `parseReportBytes` in a worker thread: the event loop stays free while it runs. The bytes'
 * memory moves to the worker when they fill their buffer (they are copied otherwise). Answers
 * null when the worker's entry file is not there (then parse on this thread). Never throws.
 */
export function parseReportOffThread(format: ReportFormat, bytes: Uint8Array, ctx: ReportContext, messages?: MessageBudget): Promise<ReportParseResult | null> {
  if (!fs.existsSync(WORKER_FILE)) return Promise.resolve(null);
  return new Promise((resolve) => {
    const name = Object.prototype.hasOwnProperty.call(FORMAT_NAMES, format) ? FORMAT_NAMES[format] : String(format);
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
    let answered = false;
    const answer = (r: ReportParseResult) => {
      if (answered) return;
      answered = true;
      resolve(r);
      void worker.terminate();
    };
    let worker: Worker;
    try {
      worker = new Worker(WORKER_FILE, {
        workerData: { format, bytes, ctx: { workspaceRoot: ctx.workspaceRoot, cwd: ctx.cwd }, messages },
        transferList: whole ? [bytes.buffer as ArrayBuffer] : [],
      });
    } catch (err) {
      resolve({ ok: false, reason: `could not read the ${name} report: ${describeError(err)}` });
      return;
    }
    worker.once('message', (r: ReportParseResult) => answer(r));
    worker.once('error', (err) => answer({ ok: false, reason: `could not read the ${name} report: ${describeError(err)}` }));
    worker.once('exit', (code) => answer({ ok: false, reason: `could not read the ${name} report: its reader stopped (exit code ${code})` }));
  });
}

/**
 * Reads and parses a report file (a relative path resolves against `ctx.cwd`). A missing file,
 * an empty file, a directory or a file over `maxBytes` answers ok:false with a reason a user
 * understands. Never throws.
 */
export async function readReport(
  format: ReportFormat,
  file: string,
  ctx: ReportContext,
  opts: ReadReportOptions = {},
): Promise<ReportParseResult> {
  try {
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_REPORT_BYTES;
    const full = path.resolve(path.resolve(ctx.workspaceRoot, ctx.cwd), file);
    const shown = full === file ? file : `${file} (${full})`;
    let stat;
    try {
      stat = await fsp.stat(full);
    } catch (err) {
      return { ok: false, reason: fileError(err, shown) };
    }
    if (stat.isDirectory()) return { ok: false, reason: `the report path ${shown} is a directory, not a file` };
    if (!stat.isFile()) return { ok: false, reason: `the report path ${shown} is not a regular file` };
    if (stat.size === 0) return { ok: false, reason: `the report file ${shown} is empty: did the test command write it?` };
    if (stat.size > maxBytes) {
      return {
        ok: false,
        reason: tooLarge(shown, stat.size, maxBytes),
      };
    }
    let buf: Buffer;
    try {
      buf = await fsp.readFile(full);
      if (buf.length > maxBytes) return { ok: false, reason: tooLarge(shown, buf.length, maxBytes) };
    } catch (err) {
      return { ok: false, reason: fileError(err, shown) };
    }
    const parsed =
      (buf.length > (opts.workerAbove ?? DEFAULT_WORKER_ABOVE_BYTES) ? await parseReportOffThread(format, buf, ctx, opts.messages) : null) ??
      parseReportBytes(format, buf, ctx, opts.messages);
    return parsed.ok ? parsed : { ok: false, reason: `${parsed.reason} (in ${shown})` };
  } catch (err) {
    return { ok: false, reason: `could not read the report file ${file}: ${describeError(err)}` };
  }
}

function tooLarge(shown: string, size: number, maxBytes: number): string {
  return (
    `the report file ${shown} is too large: ${formatBytes(size)}, the limit is ${formatBytes(maxBytes)}; ` +
    'split the tests across stages with a report each, or have the runner leave the output of passing tests out of it'
  );
}

function fileError(err: unknown, shown: string): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return `the report file ${shown} does not exist: did the test command write it there?`;
    case 'ENOTDIR':
      return `the report path ${shown} does not exist: a part of it is a file, not a folder`;
    case 'EACCES':
    case 'EPERM':
      return `the report file ${shown} cannot be read: permission denied`;
    case 'EISDIR':
      return `the report path ${shown} is a directory, not a file`;
    default:
      return `the report file ${shown} cannot be read: ${describeError(err)}`;
  }
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1).replace(/\.0$/, '')} KiB`;
  return `${n} bytes`;
}

function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
