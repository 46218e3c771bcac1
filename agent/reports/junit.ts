/**
 * JUnit XML, as written by mocha-junit-reporter, node's `junit` test reporter, jest-junit,
 * pytest (`--junitxml`) and Maven Surefire.
 *
 * The root is `<testsuites>` or a bare `<testsuite>`; suites may nest. A `<testcase>` with a
 * `<failure>` or `<error>` child failed, one with `<skipped>` was skipped, any other passed.
 * `time` is in seconds.
 *
 * The suite of a test case, from its `classname` and `name` and the enclosing suites' names:
 * - `name` ends with ` <classname>` (mocha-junit-reporter: name is the full title, classname the
 *   test's own title): the suite is the rest of `name`, the name is `classname`;
 * - `name` equals `classname` (jest-junit's default templates: both are the full title): the
 *   suite is the enclosing suites' path, stripped from the front of the name;
 * - another non-empty `classname` (pytest, Surefire, jest-junit with `{classname}`): the suite
 *   is the classname. Node's reporter writes the placeholder `test` everywhere, which counts as
 *   no classname;
 * - no classname: the path of enclosing `<testsuite>` names.
 *
 * Expected and actual values are taken where the runner writes them: node's `util.inspect` dump
 * of the error (`actual: ...`, `expected: ...`), mocha's `+ expected - actual` diff, the
 * `expected: <x> but was: <y>` message of JUnit 4/5, and jest's `Expected:`/`Received:` lines.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { TestResult, TestStatus } from '../protocol';
import type { ReportContext, ReportParseResult } from './index';
import { Locator, type OwnPosition } from './locate';

type XNode = Record<string, unknown>;
type Attrs = Record<string, string>;

const NOT_JUNIT = 'not JUnit XML: no <testsuite> or <testsuites> element';

export function parseJUnit(text: string, ctx: ReportContext): ReportParseResult {
  const rootMatch = /<(testsuites|testsuite)(?=[\s/>])/.exec(text);
  if (!rootMatch) {
    const start = text.trimStart();
    if (!start.startsWith('<')) {
      return { ok: false, reason: `${NOT_JUNIT} (the text does not look like XML: it starts with ${quoteStart(start)})` };
    }
    const other = /<([A-Za-z_][\w.:-]*)/.exec(start.replace(/^<\?[\s\S]*?\?>/, '').replace(/<!--[\s\S]*?-->/g, ''));
    return { ok: false, reason: other ? `${NOT_JUNIT} (the root element is <${other[1]}>)` : NOT_JUNIT };
  }

  const valid = XMLValidator.validate(text, { allowBooleanAttributes: true });
  if (valid !== true) {
    const root = rootMatch[1];
    const trimmed = text.trimEnd();
    if (!trimmed.endsWith(`</${root}>`) && !/<testsuites?\b[^>]*\/>\s*$/.test(trimmed)) {
      const complete = countCompleteTestCases(text);
      return {
        ok: false,
        reason:
          `truncated JUnit XML: the report ends at byte ${Buffer.byteLength(text)} before </${root}> ` +
          `(${complete} complete test case${complete === 1 ? '' : 's'} before the cut; the rest is missing)`,
      };
    }
    const err = valid.err;
    let msg = err.msg;
    const unclosed = /^Invalid '\[([\s\S]*)\]' found\.$/.exec(msg);
    if (unclosed) msg = `unclosed elements: ${unclosed[1].replace(/[\s"]+/g, ' ').trim()}`;
    return { ok: false, reason: `malformed JUnit XML at line ${err.line}, column ${err.col}: ${msg}` };
  }

  const parser = new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: '',
    allowBooleanAttributes: true,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: false,
    processEntities: false,
    cdataPropName: '#cdata',
    maxNestedTags: 1000,
  });
  const doc = parser.parse(text) as XNode[];
  const root = findRoot(doc);
  if (!root) return { ok: false, reason: NOT_JUNIT };

  const results: TestResult[] = [];
  const locator = new Locator(ctx);
  walk(root, [], null, results, locator);
  return { ok: true, results };
}

function quoteStart(text: string): string {
  const first = text.slice(0, 12).split(/\r?\n/)[0];
  return `'${first}${text.length > first.length ? '...' : ''}'`;
}

function countCompleteTestCases(text: string): number {
  let n = 0;
  const re = /<testcase\b[^>]*\/>|<\/testcase\s*>/g;
  while (re.exec(text)) n++;
  return n;
}

function tagOf(node: XNode): string | null {
  for (const key of Object.keys(node)) if (key !== ':@') return key;
  return null;
}

function childrenOf(node: XNode): XNode[] {
  const tag = tagOf(node);
  const kids = tag ? node[tag] : undefined;
  return Array.isArray(kids) ? (kids as XNode[]) : [];
}

function attrsOf(node: XNode): Attrs {
  const raw = node[':@'];
  const out: Attrs = {};
  if (raw && typeof raw === 'object') {
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof v === 'string') out[k] = decodeEntities(v);
      else if (v === true) out[k] = 'true';
    }
  }
  return out;
}

/** The text of an element: character data with entities decoded, CDATA as it is. */
function textOf(node: XNode): string {
  let out = '';
  for (const child of childrenOf(node)) {
    const tag = tagOf(child);
    if (tag === '#text') out += decodeEntities(String(child['#text']));
    else if (tag === '#cdata') {
      for (const c of childrenOf(child)) if (tagOf(c) === '#text') out += String(c['#text']);
    }
  }
  return out;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, ent: string) => {
    if (ent[0] === '#') {
      const code = ent[1] === 'x' || ent[1] === 'X' ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
      return Number.isFinite(code) && code >= 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[ent] ?? whole;
  });
}

function findRoot(nodes: XNode[]): XNode | null {
  for (const node of nodes) {
    const tag = tagOf(node);
    if (tag === 'testsuites' || tag === 'testsuite') return node;
  }
  for (const node of nodes) {
    const tag = tagOf(node);
    if (tag && !tag.startsWith('#') && !tag.startsWith('?')) {
      const inner = findRoot(childrenOf(node));
      if (inner) return inner;
    }
  }
  return null;
}

interface SuiteInfo {
  file: string | null;
  /** pytest writes 0-based `line` attributes. */
  zeroBasedLines: boolean;
}

function walk(node: XNode, path: string[], suite: SuiteInfo | null, out: TestResult[], locator: Locator): void {
  const tag = tagOf(node);
  if (tag === 'testsuites') {
    for (const child of childrenOf(node)) {
      const t = tagOf(child);
      if (t === 'testsuite' || t === 'testsuites' || t === 'testcase') walk(child, path, suite, out, locator);
    }
    return;
  }
  if (tag === 'testsuite') {
    const a = attrsOf(node);
    const name = (a.name ?? '').trim();
    const inner: SuiteInfo = {
      file: a.file ?? a.filepath ?? suite?.file ?? null,
      zeroBasedLines: suite?.zeroBasedLines ?? (name === 'pytest' && path.length === 0),
    };
    const innerPath = name ? [...path, name] : path;
    for (const child of childrenOf(node)) {
      const t = tagOf(child);
      if (t === 'testsuite' || t === 'testcase') walk(child, innerPath, inner, out, locator);
    }
    return;
  }
  if (tag === 'testcase') out.push(testCase(node, path, suite, locator));
}

function testCase(node: XNode, path: string[], suite: SuiteInfo | null, locator: Locator): TestResult {
  const a = attrsOf(node);
  const rawName = (a.name ?? '').trim();
  const classname = (a.classname ?? a.class ?? '').trim();
  const { suite: suiteName, name } = suiteAndName(rawName, classname, path);

  let status: TestStatus = 'passed';
  let message: string | null = null;
  let stack: string | null = null;
  let expected: string | null = null;
  let actual: string | null = null;
  for (const child of childrenOf(node)) {
    const t = tagOf(child);
    if ((t === 'failure' || t === 'error') && status !== 'failed') {
      status = 'failed';
      const ca = attrsOf(child);
      const body = textOf(child).replace(/\s+$/, '').replace(/^\s*\n/, '');
      const attrMessage = restoreNewlines((ca.message ?? '').trim(), body);
      message = attrMessage || messageFromBody(body) || (ca.type ?? '').trim() || null;
      stack = body.trim() ? body : null;
      const values = expectedActual(attrMessage, body);
      if (values) ({ expected, actual } = values);
    } else if (t === 'skipped' && status === 'passed') {
      status = 'skipped';
      const ca = attrsOf(child);
      const reason = (ca.message ?? '').trim() || textOf(child).trim();
      message = reason && reason !== 'true' ? reason : null;
    }
  }

  const file = a.file ?? a.filepath ?? suite?.file ?? null;
  let own: OwnPosition | null = null;
  if (file) {
    const lineNum = a.line !== undefined ? Number(a.line) : NaN;
    const line = Number.isFinite(lineNum) ? lineNum + (suite?.zeroBasedLines ? 1 : 0) : null;
    own = { file, line, column: null };
  }
  const location = status === 'failed' ? locator.locate(stack, own) : own ? locator.fromOwn(own) : null;

  return {
    suite: suiteName,
    name,
    status,
    durationMs: seconds(a.time),
    message,
    expected,
    actual,
    stack,
    location,
  };
}

function suiteAndName(name: string, classname: string, path: string[]): { suite: string; name: string } {
  const joined = path.join(' ');
  const meaningful = classname !== '' && classname !== 'test';
  if (meaningful && name.length > classname.length + 1 && name.endsWith(` ${classname}`)) {
    return { suite: name.slice(0, name.length - classname.length - 1).trim(), name: classname };
  }
  if (meaningful && name === classname) {
    const prefix = joined ? `${joined} ` : '';
    if (prefix && name.startsWith(prefix) && name.length > prefix.length) return { suite: joined, name: name.slice(prefix.length) };
    return { suite: joined, name };
  }
  if (meaningful) return { suite: classname, name: name || classname };
  return { suite: joined, name };
}

function seconds(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value.replace(/,/g, '').trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) return null;
  return Math.round(n * 1e6) / 1e3;
}

const FRAME_LINE = /^\s*at\s+\S/;

/**
 * node's reporter writes the message attribute with its line breaks removed; the body holds the
 * message with them. When the attribute is the body's text minus line breaks, take the body's.
 */
function restoreNewlines(message: string, body: string): string {
  if (message === '' || message.includes('\n') || !body.includes('\n')) return message;
  let stripped = '';
  const at: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '\n' || c === '\r') continue;
    stripped += c;
    at.push(i);
  }
  const start = stripped.indexOf(message);
  if (start < 0) return message;
  return body.slice(at[start], at[start + message.length - 1] + 1);
}

/** The part of a failure body before its stack frames, for reports without a message attribute. */
function messageFromBody(body: string): string | null {
  const lines = body.split(/\r?\n/);
  const head: string[] = [];
  for (const line of lines) {
    if (FRAME_LINE.test(line)) break;
    head.push(line);
  }
  const text = head.join('\n').trim();
  return text === '' ? null : text;
}

function expectedActual(message: string, body: string): { expected: string; actual: string } | null {
  return fromInspect(body) ?? fromMochaDiff(body) ?? fromButWas(message || body) ?? fromJest(body);
}

/** node's reporter dumps the error with util.inspect: `    actual: 3.5,` / `    expected: 3,`. */
function fromInspect(body: string): { expected: string; actual: string } | null {
  const lines = body.split(/\r?\n/);
  const actual = inspectValue(lines, 'actual');
  const expected = inspectValue(lines, 'expected');
  return actual !== null && expected !== null ? { expected, actual } : null;
}

function inspectValue(lines: string[], key: string): string | null {
  const re = new RegExp(`^(\\s+)${key}: (.*)$`);
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = re.exec(lines[i]);
    if (!m) continue;
    const indent = m[1];
    let value = m[2];
    const opens = /^[[{]/.test(value) && !/[\]}],?$/.test(value);
    if (opens) {
      const parts = [value];
      for (let j = i + 1; j < lines.length; j++) {
        parts.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart());
        if (lines[j].startsWith(indent) && /^[\]}]/.test(lines[j].slice(indent.length))) break;
      }
      value = parts.join('\n');
    }
    value = value.replace(/,$/, '');
    return unquoteInspect(value);
  }
  return null;
}

function unquoteInspect(value: string): string {
  const single = /^'((?:[^'\\]|\\.)*)'$/s.exec(value);
  if (single) {
    return single[1].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c));
  }
  const double = /^"(?:[^"\\]|\\.)*"$/s.test(value);
  if (double) {
    try {
      return String(JSON.parse(value));
    } catch {
      return value;
    }
  }
  return value;
}

/** mocha appends `+ expected - actual` and a line diff to the failure body. */
function fromMochaDiff(body: string): { expected: string; actual: string } | null {
  const lines = body.split(/\r?\n/);
  const header = lines.findIndex((l) => l.trim() === '+ expected - actual');
  if (header < 0) return null;
  const indent = /^\s*/.exec(lines[header])![0];
  let i = header + 1;
  while (i < lines.length && lines[i].trim() === '') i++;
  if (i >= lines.length) return null;
  const expected: string[] = [];
  const actual: string[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (!line.startsWith(indent) || line.length === indent.length) {
      if (line.trim() === '') break;
      return null;
    }
    const mark = line[indent.length];
    const rest = line.slice(indent.length + 1);
    if (mark === '+') expected.push(rest);
    else if (mark === '-') actual.push(rest);
    else if (mark === ' ') {
      expected.push(rest);
      actual.push(rest);
    } else return null;
  }
  if (expected.length === 0 && actual.length === 0) return null;
  return { expected: expected.join('\n'), actual: actual.join('\n') };
}

/** JUnit 4 `expected:<1> but was:<2>`, JUnit 5 `expected: <1> but was: <2>`. */
function fromButWas(text: string): { expected: string; actual: string } | null {
  const m = /expected:\s?<([\s\S]*)> but was:\s?<([\s\S]*)>/.exec(text);
  return m ? { expected: m[1], actual: m[2] } : null;
}

/** jest: `Expected: 1` / `Received: 2`, or its assert form with the values on indented lines. */
function fromJest(body: string): { expected: string; actual: string } | null {
  const inline = /^\s*Expected: (.*)\n\s*Received: (.*)$/m.exec(body);
  if (inline) return { expected: unquoteInspect(inline[1].trim()), actual: unquoteInspect(inline[2].trim()) };
  const block = /^Expected value to [^\n]*:\n((?: {2}(?!\s*at\s).*\n)+)Received:\n((?: {2}(?!\s*at\s).*(?:\n|$))+)/m.exec(body);
  if (!block) return null;
  const dedent = (s: string) =>
    s
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => l.slice(2))
      .join('\n');
  return { expected: unquoteInspect(dedent(block[1])), actual: unquoteInspect(dedent(block[2])) };
}
