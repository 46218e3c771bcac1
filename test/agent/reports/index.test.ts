/**
 * The public entry points: bad input of every kind, every fixture cut at 200 places, readReport's
 * file errors. Captured fixtures are loaded with /tmp/report-samples (where capture.sh ran the
 * runners) rewritten to test/fixtures/reports/project, the workspace root of these tests.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseReport, parseReportOffThread, readReport, type ReportContext, type ReportParseResult } from '../../../agent/reports/index';
import type { ReportFormat, TestResult } from '../../../agent/protocol';

const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures/reports');
const PROJECT = path.join(FIXTURES, 'project');
const CAPTURED_AT = '/tmp/report-samples';
const CTX: ReportContext = { workspaceRoot: PROJECT, cwd: PROJECT };
const FORMATS: ReportFormat[] = ['junit', 'tap', 'mocha-json'];

function load(rel: string): string {
  const text = fs.readFileSync(path.join(FIXTURES, rel), 'utf8');
  return text.split(`file://${CAPTURED_AT}`).join(pathToFileURL(PROJECT).href).split(CAPTURED_AT).join(PROJECT);
}

/** Every report fixture with its format (by extension). */
function fixtures(): { rel: string; format: ReportFormat }[] {
  const out: { rel: string; format: ReportFormat }[] = [];
  for (const dir of fs.readdirSync(FIXTURES, { withFileTypes: true })) {
    if (!dir.isDirectory() || dir.name === 'project') continue;
    for (const f of fs.readdirSync(path.join(FIXTURES, dir.name))) {
      const format: ReportFormat | null = f.endsWith('.xml') ? 'junit' : f.endsWith('.tap') ? 'tap' : f.endsWith('.json') ? 'mocha-json' : null;
      if (format) out.push({ rel: `${dir.name}/${f}`, format });
    }
  }
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}

const STATUSES = new Set(['passed', 'failed', 'skipped']);

function assertWellFormed(r: ReportParseResult, what: string): void {
  assert.equal(typeof r, 'object', what);
  if (!r.ok) {
    assert.equal(typeof r.reason, 'string', what);
    assert.ok(r.reason.trim().length > 0, `${what}: empty reason`);
    return;
  }
  assert.ok(Array.isArray(r.results), what);
  for (const t of r.results) assertResult(t, what);
}

function assertResult(t: TestResult, what: string): void {
  assert.equal(typeof t.suite, 'string', what);
  assert.equal(typeof t.name, 'string', what);
  assert.ok(STATUSES.has(t.status), `${what}: status ${t.status}`);
  assert.ok(t.durationMs === null || (typeof t.durationMs === 'number' && Number.isFinite(t.durationMs)), what);
  for (const k of ['message', 'expected', 'actual', 'stack'] as const) assert.ok(t[k] === null || typeof t[k] === 'string', `${what}: ${k}`);
  if (t.location !== null) {
    assert.ok(path.isAbsolute(t.location.file), `${what}: absolute location`);
    assert.ok(Number.isInteger(t.location.line) && t.location.line >= 1, `${what}: line`);
    assert.ok(Number.isInteger(t.location.column) && t.location.column >= 1, `${what}: column`);
  }
}

/** Where the last line that a complete TAP report needs (a top-level test point, plan or bail out) starts. */
function lastEssentialTapLine(text: string): number {
  let offset = 0;
  let last = 0;
  for (const line of text.split('\n')) {
    if (/^(ok|not ok)\b|^1\.\.\d+|^Bail out!/.test(line)) last = offset;
    offset += line.length + 1;
  }
  return last;
}

describe('reports/index', () => {
  describe('parseReport on bad input', () => {
    it('an empty or blank report', () => {
      for (const format of FORMATS) {
        for (const text of ['', '   \n\t\n', '\ufeff']) {
          const r = parseReport(format, text, CTX);
          assert.equal(r.ok, false);
          assert.match(r.ok ? '' : r.reason, /is empty$/, format);
        }
      }
    });

    it('garbage', () => {
      const garbage = 'hello world\nthis is not a report at all\n';
      assert.deepEqual(parseReport('junit', garbage, CTX), {
        ok: false,
        reason: "not JUnit XML: no <testsuite> or <testsuites> element (the text does not look like XML: it starts with 'hello world...')",
      });
      assert.deepEqual(parseReport('tap', garbage, CTX), { ok: false, reason: 'not TAP: no test points and no plan (1..N)' });
      assert.deepEqual(parseReport('mocha-json', garbage, CTX), {
        ok: false,
        reason: "not a mocha JSON report: expected a JSON object, but the text starts with 'hello world'",
      });
    });

    it('a report of another format', () => {
      const json = load('mocha-json/mocha.json');
      const junit = parseReport('junit', json, CTX);
      assert.equal(junit.ok, false);
      assert.ok((junit.ok ? '' : junit.reason).startsWith('not JUnit XML: no <testsuite> or <testsuites> element'));
      const xmlAsTap = parseReport('tap', '<?xml version="1.0"?>\n<html><body/></html>', CTX);
      assert.deepEqual(xmlAsTap, { ok: false, reason: 'not TAP: no test points and no plan (1..N)' });
      assert.deepEqual(parseReport('junit', '<?xml version="1.0"?>\n<html><body/></html>', CTX), {
        ok: false,
        reason: 'not JUnit XML: no <testsuite> or <testsuites> element (the root element is <html>)',
      });
      const tapAsJson = parseReport('mocha-json', load('node-tap/node.tap'), CTX);
      assert.equal(tapAsJson.ok, false);
      assert.match(tapAsJson.ok ? '' : tapAsJson.reason, /^not a mocha JSON report/);
    });

    it('malformed and truncated JUnit XML', () => {
      const bad = parseReport('junit', '<testsuites>\n<testsuite name="a">\n<testcase name="b">\n</testsuite>\n</testsuites>', CTX);
      assert.equal(bad.ok, false);
      assert.match(bad.ok ? '' : bad.reason, /^malformed JUnit XML at line 4, column \d+: Expected closing tag 'testcase'/);

      const xml = load('node-junit/node.xml');
      const cut = xml.slice(0, xml.indexOf('<testcase name="rounds down"'));
      const r = parseReport('junit', cut, CTX);
      assert.deepEqual(r, {
        ok: false,
        reason: `truncated JUnit XML: the report ends at byte ${Buffer.byteLength(cut)} before </testsuites> (6 complete test cases before the cut; the rest is missing)`,
      });
    });

    it('an unknown format', () => {
      const r = parseReport('xunit' as ReportFormat, '<testsuite/>', CTX);
      assert.deepEqual(r, { ok: false, reason: "unknown report format 'xunit': expected junit, tap or mocha-json" });
    });

    it('never throws on odd text', () => {
      let seed = 7;
      const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
      const samples = ['<', '<testsuite', '<testsuites><testsuite', '{', '{"tests": [null, 1, "x", {"err": 5}]}', 'ok', '1..', 'not ok 1 - x\n  ---\n  ...', '\u0000\u0001', ']]>', '<testsuite><testcase><failure message="&#xFFFFFF;"/></testcase></testsuite>'];
      for (let n = 0; n < 30; n++) {
        let s = '';
        for (let i = 0; i < 200; i++) s += String.fromCharCode(Math.floor(rand() * 256));
        samples.push(s);
      }
      for (const format of FORMATS) {
        for (const text of samples) {
          let r: ReportParseResult | undefined;
          assert.doesNotThrow(() => {
            r = parseReport(format, text, CTX);
          }, `${format}: ${JSON.stringify(text.slice(0, 40))}`);
          assertWellFormed(r!, format);
        }
      }
    });
  });

  describe('every fixture, whole and cut at 200 places', () => {
    for (const { rel, format } of fixtures()) {
      it(`${rel} (${format})`, () => {
        const text = load(rel);
        const whole = parseReport(format, text, CTX);
        assert.ok(whole.ok, whole.ok ? '' : whole.reason);
        assertWellFormed(whole, rel);
        const end = text.replace(/\s+$/, '').length;
        const essential = format === 'tap' ? lastEssentialTapLine(text) : end;
        for (let k = 0; k < 200; k++) {
          const at = Math.floor((k * text.length) / 200);
          const cut = text.slice(0, at);
          let r: ReportParseResult | undefined;
          assert.doesNotThrow(() => {
            r = parseReport(format, cut, CTX);
          }, `${rel} cut at ${at}`);
          assertWellFormed(r!, `${rel} cut at ${at}`);
          if (at < essential) assert.equal(r!.ok, false, `${rel} cut at ${at} should be refused`);
          if (r!.ok) assert.ok(r!.results.length <= (whole.ok ? whole.results.length : 0));
        }
      });
    }
  });

  describe('readReport', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-reports-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    const ctx = () => ({ workspaceRoot: dir, cwd: dir });

    it('a missing file', async () => {
      const r = await readReport('junit', 'reports/junit.xml', ctx());
      assert.deepEqual(r, {
        ok: false,
        reason: `the report file reports/junit.xml (${path.join(dir, 'reports/junit.xml')}) does not exist: did the test command write it there?`,
      });
    });

    it('a directory', async () => {
      fs.mkdirSync(path.join(dir, 'reports'));
      const r = await readReport('tap', path.join(dir, 'reports'), ctx());
      assert.deepEqual(r, { ok: false, reason: `the report path ${path.join(dir, 'reports')} is a directory, not a file` });
    });

    it('an empty file', async () => {
      fs.writeFileSync(path.join(dir, 'empty.json'), '');
      const r = await readReport('mocha-json', 'empty.json', ctx());
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.reason, /^the report file empty\.json \(.*\) is empty: did the test command write it\?$/);
    });

    it('a file over maxBytes', async () => {
      fs.writeFileSync(path.join(dir, 'big.tap'), 'TAP version 13\n1..1\nok 1 - a\n');
      const r = await readReport('tap', 'big.tap', ctx(), { maxBytes: 10 });
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.reason, /^the report file big\.tap \(.*big\.tap\) is too large: 29 bytes, the limit is 10 bytes; split the tests across stages/);
      const fits = await readReport('tap', 'big.tap', ctx(), { maxBytes: 29 });
      assert.ok(fits.ok);
    });

    it('a path relative to the runner\'s folder, and the file named in a parse error', async () => {
      fs.mkdirSync(path.join(dir, 'pkg/out'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'pkg/out/r.tap'), 'TAP version 13\n1..2\nok 1 - a\nnot ok 2 - b\n');
      const r = await readReport('tap', 'out/r.tap', { workspaceRoot: dir, cwd: path.join(dir, 'pkg') });
      assert.ok(r.ok);
      assert.deepEqual(
        r.results.map((t) => [t.name, t.status]),
        [
          ['a', 'passed'],
          ['b', 'failed'],
        ],
      );
      fs.writeFileSync(path.join(dir, 'pkg/out/r.tap'), 'TAP version 13\n1..3\nok 1 - a\n');
      const bad = await readReport('tap', 'out/r.tap', { workspaceRoot: dir, cwd: 'pkg' });
      assert.deepEqual(bad, { ok: false, reason: `TAP plan 1..3 but 1 test point (in out/r.tap (${path.join(dir, 'pkg/out/r.tap')}))` });
    });

    it('parses a big report in a worker thread: the event loop turns while it is parsed, and the results are the same', async () => {
      const cases: string[] = [];
      for (let i = 0; i < 3000; i++) {
        cases.push(`<testcase classname="big" name="case ${i}" time="0.001">${i % 3 ? '' : `<failure message="boom ${i}">${'y'.repeat(600)}</failure>`}</testcase>`);
      }
      const text = `<?xml version="1.0"?>\n<testsuites><testsuite name="big">\n${cases.join('\n')}\n</testsuite></testsuites>\n`;
      let turned = false;
      setImmediate(() => (turned = true));
      const off = await parseReportOffThread('junit', Buffer.from(text), ctx());
      assert.ok(turned, 'a callback of the event loop ran before the parse answered');
      assert.deepEqual(off, parseReport('junit', text, ctx()));
      assert.equal(off?.ok && off.results.length, 3000);
      fs.writeFileSync(path.join(dir, 'big.xml'), text);
      const read = await readReport('junit', 'big.xml', ctx(), { workerAbove: 1024 });
      assert.deepEqual(read, off);
    });

    it('answers a parse error from the worker thread as from this one', async () => {
      const text = 'TAP version 13\n1..3\nok 1 - a\n';
      assert.deepEqual(await parseReportOffThread('tap', Buffer.from(text), ctx()), parseReport('tap', text, ctx()));
      fs.writeFileSync(path.join(dir, 'r.tap'), text);
      assert.deepEqual(await readReport('tap', 'r.tap', ctx(), { workerAbove: 0 }), await readReport('tap', 'r.tap', ctx()));
    });

    it('shortens the messages past a budget, failures first, and says how many', async () => {
      const lines = ['TAP version 13'];
      // Skipped tests with long reasons come first: the failures after them still keep theirs.
      for (let i = 1; i <= 4; i++) lines.push(`ok ${i} - skipped ${i} # SKIP ${'s'.repeat(300)}`);
      for (let i = 5; i <= 8; i++) lines.push(`not ok ${i} - failed ${i}`, '  ---', `  message: '${'m'.repeat(300)}'`, '  ...');
      lines.push('1..8', '');
      fs.writeFileSync(path.join(dir, 'r.tap'), lines.join('\n'));
      const r = await readReport('tap', 'r.tap', ctx(), { messages: { chars: 1000, short: 20, field: 16384 } });
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assert.equal(r.results.length, 8);
      assert.deepEqual(
        r.results.map((t) => [t.status, t.message?.length]),
        [
          ['skipped', 21],
          ['skipped', 21],
          ['skipped', 21],
          ['skipped', 21],
          ['failed', 300],
          ['failed', 300],
          ['failed', 300],
          ['failed', 21],
        ],
      );
      assert.equal(r.results[7].message, `${'m'.repeat(20)}…`);
      assert.equal(r.shortened, 5);
      const whole = await readReport('tap', 'r.tap', ctx(), { messages: { chars: 10_000, short: 20, field: 16384 } });
      assert.ok(whole.ok && whole.shortened === 0 && whole.results.every((t) => t.message?.length === 300));
    });

    it('reads a captured fixture from disk', async () => {
      const r = await readReport('junit', path.join(FIXTURES, 'pytest/xunit2.xml'), { workspaceRoot: PROJECT, cwd: path.join(PROJECT, 'py') });
      assert.ok(r.ok);
      assert.equal(r.results.length, 7);
    });
  });
});
