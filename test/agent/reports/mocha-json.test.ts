/**
 * mocha's JSON reporter, captured by test/fixtures/reports/capture.sh.
 *
 * The captured report names files under /tmp/report-samples; it is loaded with that prefix
 * rewritten to test/fixtures/reports/project, which is also the workspace root. mocha prints
 * stack paths relative to the folder it ran in, so `cwd` is that folder too.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseReport, type ReportContext } from '../../../agent/reports/index';
import type { TestResult } from '../../../agent/protocol';

const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures/reports');
const PROJECT = path.join(FIXTURES, 'project');
const CAPTURED_AT = '/tmp/report-samples';
const CTX: ReportContext = { workspaceRoot: PROJECT, cwd: PROJECT };

function load(rel: string): string {
  const text = fs.readFileSync(path.join(FIXTURES, rel), 'utf8');
  return text.split(`file://${CAPTURED_AT}`).join(pathToFileURL(PROJECT).href).split(CAPTURED_AT).join(PROJECT);
}

function parseText(text: string): TestResult[] {
  const r = parseReport('mocha-json', text, CTX);
  if (!r.ok) assert.fail(r.reason);
  return r.results;
}

function counts(results: TestResult[]): { passed: number; failed: number; skipped: number } {
  const c = { passed: 0, failed: 0, skipped: 0 };
  for (const r of results) c[r.status]++;
  return c;
}

function find(results: TestResult[], suite: string, name: string): TestResult {
  const found = results.filter((r) => r.suite === suite && r.name === name);
  assert.equal(found.length, 1, `one result ${JSON.stringify(suite)} / ${JSON.stringify(name)}`);
  return found[0];
}

function at(rel: string, line: number, column: number) {
  return { file: path.join(PROJECT, rel), line, column };
}

describe('reports/mocha-json', () => {
  const text = load('mocha-json/mocha.json');
  const raw = JSON.parse(text) as { tests: { fullTitle: string; duration?: number }[] };
  const results = parseText(text);

  it('counts passes, failures and pending tests', () => {
    assert.deepEqual(counts(results), { passed: 5, failed: 8, skipped: 2 });
    assert.equal(results.length, raw.tests.length);
  });

  it('takes the suite from fullTitle minus title, with duration, message and values', () => {
    const t = find(results, 'math division', 'rounds down');
    assert.equal(t.status, 'failed');
    assert.equal(t.durationMs, raw.tests.find((x) => x.fullTitle === 'math division rounds down')?.duration);
    assert.equal(t.message, 'Expected values to be strictly equal:\n\n3.5 !== 3');
    assert.equal(t.expected, '3');
    assert.equal(t.actual, '3.5');
    assert.match(t.stack ?? '', /^AssertionError \[ERR_ASSERTION\]/);
    assert.deepEqual(t.location, at('js/test/math.test.js', 26, 14));
  });

  it('keeps mocha\'s string form of object values', () => {
    const t = find(results, 'math', 'builds a point');
    assert.equal(t.expected, '{\n  "x": 1\n  "y": 3\n}');
    assert.equal(t.actual, '{\n  "x": 1\n  "y": 2\n}');
  });

  it('maps compiled TypeScript frames back to the .ts source', () => {
    assert.deepEqual(find(results, 'shapes area', 'of a wide rectangle').location, at('ts/test/shapes.test.ts', 21, 14));
    assert.deepEqual(find(results, 'shapes perimeter', 'rejects a negative side').location, at('ts/src/shapes.ts', 12, 11));
  });

  it('reads file:// frames of an ES module', () => {
    assert.deepEqual(find(results, 'esm', 'compares strings').location, at('js/test/esm.test.mjs', 9, 12));
  });

  it('reports pending tests as skipped, placed in their file', () => {
    const t = find(results, 'shapes perimeter', 'of a circle');
    assert.equal(t.status, 'skipped');
    assert.equal(t.durationMs, null);
    assert.equal(t.message, null);
    assert.deepEqual(t.location, at('ts/test/shapes.test.ts', 1, 1));
  });

  it('reports a failing hook, which only the failures list holds', () => {
    const report = {
      stats: { tests: 1, passes: 1, failures: 1, pending: 0 },
      tests: [{ title: 'a', fullTitle: 'db a', file: path.join(PROJECT, 'js/test/math.test.js'), duration: 2, err: {} }],
      passes: [{ title: 'a', fullTitle: 'db a', file: path.join(PROJECT, 'js/test/math.test.js'), duration: 2, err: {} }],
      pending: [],
      failures: [
        {
          title: '"after all" hook for "a"',
          fullTitle: 'db "after all" hook for "a"',
          file: path.join(PROJECT, 'js/test/math.test.js'),
          err: { message: 'connection reset', stack: 'Error: connection reset\n    at Context.<anonymous> (js/test/math.test.js:8:5)' },
        },
      ],
    };
    const r = parseText(JSON.stringify(report));
    assert.deepEqual(
      r.map((t) => [t.suite, t.name, t.status, t.message]),
      [
        ['db', 'a', 'passed', null],
        ['db', '"after all" hook for "a"', 'failed', 'connection reset'],
      ],
    );
    assert.deepEqual(r[1].location, at('js/test/math.test.js', 8, 5));
  });

  it('skips output printed before the report on stdout', () => {
    const r = parseText(`some console.log output\n${text}`);
    assert.equal(r.length, results.length);
  });

  it('refuses a truncated report with the byte where it ends', () => {
    const cut = text.slice(0, 1234);
    const r = parseReport('mocha-json', cut, CTX);
    // The byte where the content ends: a cut that falls in indentation ends at the last non-blank byte.
    assert.deepEqual(r, { ok: false, reason: `truncated JSON at byte ${Buffer.byteLength(cut.trimEnd())}: the mocha JSON report ends before it is complete` });
  });

  it('refuses malformed JSON with the byte of the error', () => {
    const r = parseReport('mocha-json', '{"stats": {}, "tests": [}', CTX);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /^malformed JSON at byte 24: /);
  });

  it('refuses JSON that is not a mocha report', () => {
    const r = parseReport('mocha-json', '{"numTotalTests": 3, "testResults": []}', CTX);
    assert.deepEqual(r, { ok: false, reason: 'not a mocha JSON report: no "tests" array (keys: numTotalTests, testResults)' });
  });
});
