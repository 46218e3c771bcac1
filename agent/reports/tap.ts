/**
 * TAP 13 and 14: node's `tap` test reporter, the `tap` package, hand-written TAP.
 *
 * - A test point is `ok`/`not ok`, an optional number, an optional `- description` and an
 *   optional directive: `# SKIP reason` and `# TODO reason` both read as skipped (a TODO test
 *   is not expected to pass). Another `# ...` comment is dropped from the name, except that
 *   `# time=12.3ms` (the `tap` package) gives the duration.
 * - Subtests are indented by four spaces and come before the test point that closes them
 *   (TAP 14, node). Buffered subtests (`ok 1 - name {` ... `}`) are read too. A test point
 *   with subtests is a suite: its children are the results, and the suite of a result is the
 *   path of its parents' descriptions joined with spaces. A parent is itself reported only
 *   when it failed while none of its subtests did (a failing hook, a crash after them).
 *   Node's `type: 'suite'` points without subtests (empty describe blocks) are dropped.
 * - A YAML block (`---` ... `...`, indented under its test point) gives the details: node's
 *   `duration_ms`, `location`, `error`, `expected`, `actual`, `stack`; the `tap` package's
 *   `at`, `stack`, `diff`.
 * - `Bail out!` stops the run: the results so far are returned, plus a failed result named
 *   `Bail out!` that carries the reason.
 * - The top-level plan (`1..N`) is required and must match the number of test points, as must
 *   the plan of every subtest: a report that ends early is refused with the details.
 */
import { parse as parseYaml } from 'yaml';
import type { TestResult, TestStatus } from '../protocol';
import type { ReportContext, ReportParseResult } from './index';
import { Locator, type OwnPosition } from './locate';

interface Point {
  ok: boolean;
  number: number | null;
  description: string;
  directive: { kind: 'skip' | 'todo'; reason: string } | null;
  timeMs: number | null;
  yaml: Record<string, unknown> | null;
  line: number;
  children: Point[];
  /** Buffered subtest: its children follow, closed by `}`. */
  buffered: boolean;
}

interface Group {
  points: Point[];
  plan: { count: number; line: number } | null;
  /** The name announced by `# Subtest: name`, until the closing test point arrives. */
  announced: { name: string; line: number } | null;
}

const INDENT = 4;
const TEST_POINT = /^(not ok|ok)\b(?:\s+(\d+))?(?:\s*-)?(?:\s+(.*?))?\s*$/;
const PLAN = /^1\.\.(\d+)\s*(?:#.*)?$/;
const SUBTEST = /^#\s*Subtest:\s*(.*)$/i;
const BAIL_OUT = /^Bail out!\s*(.*)$/i;

export function parseTap(text: string, ctx: ReportContext): ReportParseResult {
  const lines = text.split(/\r?\n/);
  const groups: Group[] = [newGroup()];
  let lastPoint: { point: Point; indent: number } | null = null;
  let bail: { reason: string; line: number } | null = null;
  let sawVersion = false;

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\s+$/, '');
    if (raw === '') continue;
    const indent = raw.length - raw.trimStart().length;
    const body = raw.trimStart();

    // A YAML diagnostic block right under a test point.
    if (body === '---' && lastPoint && indent > lastPoint.indent) {
      const block: string[] = [];
      let closed = false;
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j].replace(/\s+$/, '');
        if (l.trim() === '...' && l.length - l.trimStart().length === indent) {
          closed = true;
          break;
        }
        block.push(lines[j].slice(0, indent).trim() === '' ? lines[j].slice(indent) : lines[j].trimStart());
      }
      if (!closed) {
        const complete = countPoints(groups) - 1;
        return {
          ok: false,
          reason:
            `truncated TAP: the YAML block of test point '${lastPoint.point.description}' (line ${lastPoint.point.line}) is not closed ` +
            `with '...' before the end of the report (${complete} complete test point${complete === 1 ? '' : 's'} before it)`,
        };
      }
      lastPoint.point.yaml = readYaml(block.join('\n'));
      lastPoint = null;
      i = j;
      continue;
    }
    lastPoint = null;

    const level = Math.floor(indent / INDENT);
    if (/^TAP version \d+$/i.test(body)) {
      sawVersion = true;
      continue;
    }
    const bailMatch = BAIL_OUT.exec(body);
    if (bailMatch) {
      bail = { reason: bailMatch[1].trim(), line: i + 1 };
      break;
    }
    const subtest = SUBTEST.exec(body);
    if (subtest) {
      groupAt(groups, level).announced = { name: subtest[1].trim(), line: i + 1 };
      continue;
    }
    if (body.startsWith('#') || body.startsWith('pragma ')) continue;
    const plan = PLAN.exec(body);
    if (plan) {
      const group = groupAt(groups, level);
      if (!group.plan) group.plan = { count: Number(plan[1]), line: i + 1 };
      continue;
    }
    if (body === '}') {
      // Closes a buffered subtest: its children are the points one level deeper.
      const parent = groupAt(groups, level).points.at(-1);
      if (parent?.buffered) {
        const err = closeChildren(groups, level, parent);
        if (err) return { ok: false, reason: err };
        parent.buffered = false;
      }
      continue;
    }
    const tp = TEST_POINT.exec(body);
    if (tp) {
      const point = readPoint(tp[1] === 'ok', tp[2] ? Number(tp[2]) : null, tp[3] ?? '', i + 1);
      if (!point.buffered) {
        const err = closeChildren(groups, level, point);
        if (err) return { ok: false, reason: err };
      }
      const group = groupAt(groups, level);
      group.points.push(point);
      group.announced = null;
      lastPoint = { point, indent };
    }
    // Anything else is not TAP and is ignored, as the protocol says.
  }

  const top = groups[0];
  if (!bail) {
    for (let level = groups.length - 1; level >= 1; level--) {
      const g = groups[level];
      if (g.points.length > 0 || g.announced) {
        const name = groups[level - 1].announced?.name ?? g.announced?.name;
        const n = g.points.length;
        return {
          ok: false,
          reason:
            `truncated TAP: ${name ? `subtest '${name}'` : 'a subtest'} has ${n} test point${n === 1 ? '' : 's'} ` +
            `but no closing test point: the report ends before it is complete`,
        };
      }
    }
    const buffered = top.points.find((p) => p.buffered);
    if (buffered) return { ok: false, reason: `truncated TAP: subtest '${buffered.description}' is never closed with '}'` };
    if (!top.plan) {
      const n = top.points.length;
      if (n === 0) {
        return {
          ok: false,
          reason: sawVersion ? 'TAP output has no test points and no plan (1..N)' : 'not TAP: no test points and no plan (1..N)',
        };
      }
      return {
        ok: false,
        reason: `truncated TAP: no plan (1..N) after ${n} test point${n === 1 ? '' : 's'}: the report may have been cut short`,
      };
    }
    if (top.plan.count !== top.points.length) {
      return { ok: false, reason: `TAP plan 1..${top.plan.count} but ${top.points.length} test point${top.points.length === 1 ? '' : 's'}` };
    }
  }

  const locator = new Locator(ctx);
  const results: TestResult[] = [];
  const leftovers = bail ? groups.slice(1).reverse().flatMap((g) => g.points) : [];
  for (const point of top.points) emit(point, [], results, locator);
  for (const point of leftovers) emit(point, [], results, locator);
  if (bail) {
    results.push({
      suite: '',
      name: 'Bail out!',
      status: 'failed',
      durationMs: null,
      message: bail.reason ? `Bail out! ${bail.reason}` : 'Bail out!',
      expected: null,
      actual: null,
      stack: null,
      location: null,
    });
  }
  return { ok: true, results };
}

function newGroup(): Group {
  return { points: [], plan: null, announced: null };
}

function groupAt(groups: Group[], level: number): Group {
  while (groups.length <= level) groups.push(newGroup());
  return groups[level];
}

function countPoints(groups: Group[]): number {
  let n = 0;
  const count = (points: Point[]): void => {
    for (const p of points) {
      n++;
      count(p.children);
    }
  };
  for (const g of groups) count(g.points);
  return n;
}

/** Gives `parent` (a point at `level`) the points one level deeper, after checking their plan. */
function closeChildren(groups: Group[], level: number, parent: Point): string | null {
  const inner = groups[level + 1];
  if (inner) {
    if (inner.plan && inner.plan.count !== inner.points.length) {
      return `TAP plan 1..${inner.plan.count} but ${inner.points.length} test point${inner.points.length === 1 ? '' : 's'} in subtest '${parent.description}'`;
    }
    parent.children = inner.points;
  }
  groups.length = Math.min(groups.length, level + 1);
  return null;
}

function readPoint(ok: boolean, number: number | null, rest: string, line: number): Point {
  // Split the description from its directive at the first unescaped '#'.
  let description = rest;
  let comment: string | null = null;
  for (let k = 0; k < rest.length; k++) {
    if (rest[k] === '\\') {
      k++;
      continue;
    }
    if (rest[k] === '#') {
      description = rest.slice(0, k);
      comment = rest.slice(k + 1).trim();
      break;
    }
  }
  description = description.trim();
  let buffered = false;
  if (/(^|\s)\{$/.test(description)) {
    buffered = true;
    description = description.replace(/\s*\{$/, '');
  }
  description = description.replace(/\\([\\#])/g, '$1');

  let directive: Point['directive'] = null;
  let timeMs: number | null = null;
  if (comment !== null) {
    const d = /^(skip\w*|todo)\b:?\s*(.*)$/i.exec(comment);
    if (d) {
      const reasonAndTime = d[2];
      const time = /\s*#?\s*time=([\d.]+)(ms|s)?\s*$/.exec(reasonAndTime);
      directive = { kind: d[1].toLowerCase().startsWith('skip') ? 'skip' : 'todo', reason: time ? reasonAndTime.slice(0, time.index).trim() : reasonAndTime.trim() };
      if (time) timeMs = toMs(time[1], time[2]);
    } else {
      const time = /time=([\d.]+)(ms|s)?/.exec(comment);
      if (time) timeMs = toMs(time[1], time[2]);
    }
  }
  return { ok, number, description, directive, timeMs, yaml: null, line, children: [], buffered };
}

function toMs(value: string, unit: string | undefined): number | null {
  const n = Number(value);
  if (!Number.isFinite(n)) return null;
  return unit === 's' ? n * 1000 : n;
}

const SIMPLE_YAML_LINE = /^([A-Za-z_][\w-]*): (-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|'[^'\n]*'|[A-Za-z_][\w.-]*)$/;

function readYaml(block: string): Record<string, unknown> | null {
  // Fast path for the common small blocks (`duration_ms: 0.63`, `type: 'suite'`).
  const lines = block.split('\n');
  if (lines.length <= 8) {
    const out: Record<string, unknown> = {};
    let simple = true;
    for (const line of lines) {
      const m = SIMPLE_YAML_LINE.exec(line);
      if (!m || Object.prototype.hasOwnProperty.call(out, m[1])) {
        simple = false;
        break;
      }
      const v = m[2];
      if (v.startsWith("'")) out[m[1]] = v.slice(1, -1);
      else if (/^-?\d/.test(v)) out[m[1]] = Number(v);
      else if (v === 'true' || v === 'false' || v === 'null' || v === '~' || /^(?:yes|no|on|off|y|n|nan|inf)$/i.test(v)) {
        simple = false;
        break;
      } else out[m[1]] = v;
    }
    if (simple) return out;
  }
  try {
    const doc: unknown = parseYaml(block, { prettyErrors: false, maxAliasCount: 100 });
    return doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : null;
  } catch {
    // A broken diagnostic block loses its details, not the test point.
    return null;
  }
}

function failed(point: Point): boolean {
  return !point.ok && point.directive === null;
}

function anyFailed(points: Point[]): boolean {
  return points.some((p) => failed(p) || anyFailed(p.children));
}

function emit(point: Point, path: string[], out: TestResult[], locator: Locator): void {
  if (point.children.length > 0) {
    const inner = [...path, point.description];
    for (const child of point.children) emit(child, inner, out, locator);
    const own = failed(point) && !anyFailed(point.children) && point.yaml?.failureType !== 'subtestsFailed';
    if (!own) return;
  } else if (point.yaml?.type === 'suite' && !failed(point)) {
    return;
  }
  out.push(result(point, path, locator));
}

function result(point: Point, path: string[], locator: Locator): TestResult {
  const y = point.yaml ?? {};
  const status: TestStatus = point.directive ? 'skipped' : point.ok ? 'passed' : 'failed';
  const duration = typeof y.duration_ms === 'number' && Number.isFinite(y.duration_ms) ? y.duration_ms : point.timeMs;

  let message: string | null = null;
  if (status === 'skipped') {
    const reason = point.directive?.reason ?? '';
    message = reason ? reason : point.directive?.kind === 'todo' ? 'TODO' : null;
  } else if (status === 'failed') {
    message = textOf(y.error) ?? textOf(y.message) ?? textOf(y.diff);
  }

  let expected: string | null = null;
  let actual: string | null = null;
  if (status === 'failed') {
    // node: expected/actual; TAP 13 YAMLish: wanted/found, or got/expect under `data`.
    const data = y.data && typeof y.data === 'object' && !Array.isArray(y.data) ? (y.data as Record<string, unknown>) : {};
    const e = firstKey([y, data], ['expected', 'wanted', 'expect']);
    const a = firstKey([y, data], ['actual', 'found', 'got']);
    if (e || a) {
      expected = e ? valueText(e.value) : null;
      actual = a ? valueText(a.value) : null;
    } else if (typeof y.diff === 'string') {
      const d = fromUnifiedDiff(y.diff);
      if (d) ({ expected, actual } = d);
    }
  }

  const stack = textOf(y.stack);
  const own = ownPosition(y);
  const location = status === 'failed' ? locator.locate(stack, own, { bare: true }) : own ? locator.fromOwn(own) : null;

  return {
    suite: path.join(' '),
    name: point.description || (point.number !== null ? `test ${point.number}` : 'test'),
    status,
    durationMs: duration ?? null,
    message,
    expected,
    actual,
    stack,
    location,
  };
}

function firstKey(objs: Record<string, unknown>[], keys: string[]): { value: unknown } | null {
  for (const obj of objs) {
    for (const key of keys) {
      if (Object.prototype.hasOwnProperty.call(obj, key)) return { value: obj[key] };
    }
  }
  return null;
}

function textOf(v: unknown): string | null {
  if (typeof v === 'string') {
    const t = v.replace(/\s+$/, '');
    return t === '' ? null : t;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v, null, 2) ?? String(v);
  } catch {
    return String(v);
  }
}

/** node: `location: '/path/file.js:12:3'`; the `tap` package: `at: { fileName, lineNumber, columnNumber }`. */
function ownPosition(y: Record<string, unknown>): OwnPosition | null {
  if (typeof y.location === 'string') {
    const m = /^(.*?):(\d+)(?::(\d+))?$/.exec(y.location.trim());
    if (m) return { file: m[1], line: Number(m[2]), column: m[3] ? Number(m[3]) : null };
    return { file: y.location.trim() };
  }
  const at = y.at;
  if (at && typeof at === 'object') {
    const a = at as Record<string, unknown>;
    const file = typeof a.fileName === 'string' ? a.fileName : typeof a.file === 'string' ? a.file : null;
    if (file) {
      const line = typeof a.lineNumber === 'number' ? a.lineNumber : typeof a.line === 'number' ? a.line : null;
      const column = typeof a.columnNumber === 'number' ? a.columnNumber : typeof a.column === 'number' ? a.column : null;
      return { file, line, column };
    }
  }
  return null;
}

/** The `tap` package's `diff` (`--- expected` / `+++ actual`, one hunk) as the two values. */
function fromUnifiedDiff(diff: string): { expected: string; actual: string } | null {
  const lines = diff.replace(/\n$/, '').split('\n');
  if (!/^--- expected/.test(lines[0] ?? '') || !/^\+\+\+ actual/.test(lines[1] ?? '')) return null;
  const hunks = lines.filter((l) => l.startsWith('@@'));
  if (hunks.length !== 1 || !lines[2]?.startsWith('@@')) return null;
  const expected: string[] = [];
  const actual: string[] = [];
  for (const line of lines.slice(3)) {
    const mark = line[0];
    const rest = line.slice(1);
    if (mark === '-') expected.push(rest);
    else if (mark === '+') actual.push(rest);
    else if (mark === ' ' || line === '') {
      expected.push(rest);
      actual.push(rest);
    } else if (mark !== '\\') return null;
  }
  return { expected: expected.join('\n'), actual: actual.join('\n') };
}
