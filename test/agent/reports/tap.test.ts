/**
 * TAP reports: captured from node's tap reporter and the `tap` package
 * (test/fixtures/reports/capture.sh), and hand-written TAP 13/14 (test/fixtures/reports/handwritten).
 *
 * Captured reports name files under /tmp/report-samples; fixtures are loaded with that prefix
 * rewritten to test/fixtures/reports/project, which is also the workspace root.
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
  const r = parseReport('tap', text, CTX);
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
  assert.equal(found.length, 1, `one result ${JSON.stringify(suite)} / ${JSON.stringify(name)} in ${JSON.stringify(results.map((r) => [r.suite, r.name]))}`);
  return found[0];
}

function at(rel: string, line: number, column: number) {
  return { file: path.join(PROJECT, rel), line, column };
}

function reason(text: string): string {
  const r = parseReport('tap', text, CTX);
  assert.equal(r.ok, false, 'expected ok:false');
  return r.ok ? '' : r.reason;
}

describe('reports/tap', () => {
  describe('node --test --test-reporter=tap (TAP 13, subtests)', () => {
    const rel = 'node-tap/node.tap';
    const text = load(rel);
    const results = parseText(text);

    it('counts the leaf tests; describe blocks are suites', () => {
      assert.deepEqual(counts(results), { passed: 5, failed: 8, skipped: 2 });
      assert.equal(results.length, 15);
    });

    it('names a nested test by its parents\' path and reads its YAML block', () => {
      const t = find(results, 'math division', 'rounds down');
      assert.equal(t.status, 'failed');
      const raw = /not ok 2 - rounds down\n\s+---\n\s+duration_ms: ([\d.]+)/.exec(text);
      assert.ok(raw);
      assert.equal(t.durationMs, Number(raw[1]));
      assert.equal(t.message, 'Expected values to be strictly equal:\n\n3.5 !== 3');
      assert.equal(t.expected, '3');
      assert.equal(t.actual, '3.5');
      assert.match(t.stack ?? '', /^TestContext\.<anonymous> \(/);
      assert.deepEqual(t.location, at('js/test/math.test.js', 26, 14));
    });

    it('turns object values into JSON and keeps strings as they are', () => {
      const point = find(results, 'math', 'builds a point');
      assert.equal(point.expected, '{\n  "x": 1,\n  "y": 3\n}');
      assert.equal(point.actual, '{\n  "x": 1,\n  "y": 2\n}');
      const greet = find(results, 'math', 'greets by name');
      assert.equal(greet.expected, 'hello there');
      assert.equal(greet.actual, 'hello world');
    });

    it('maps a stack frame of compiled TypeScript to the .ts source', () => {
      const t = find(results, 'shapes area', 'of a wide rectangle');
      assert.deepEqual(t.location, at('ts/test/shapes.test.ts', 21, 14));
      assert.deepEqual(find(results, 'shapes perimeter', 'rejects a negative side').location, at('ts/src/shapes.ts', 12, 11));
    });

    it('reads frames given as file:// URLs', () => {
      assert.deepEqual(find(results, 'esm', 'compares strings').location, at('js/test/esm.test.mjs', 9, 12));
    });

    it('reads # SKIP', () => {
      const t = find(results, 'math', 'multiplies (not written yet)');
      assert.equal(t.status, 'skipped');
      assert.equal(t.message, null);
    });

    it('falls back to the test\'s own location:, through the source map, when no frame is in the workspace', () => {
      const compiled = path.join(PROJECT, 'ts/compiled/test/shapes.test.js');
      const tap = [
        'TAP version 13',
        '# Subtest: only internals',
        'not ok 1 - only internals',
        '  ---',
        '  duration_ms: 1.5',
        `  location: '${compiled}:18:9'`,
        "  failureType: 'testCodeFailure'",
        "  error: 'timed out'",
        '  stack: |-',
        '    Test.run (node:internal/test_runner/test:796:25)',
        '    async Promise.all (index 0)',
        '  ...',
        '1..1',
      ].join('\n');
      const [t] = parseText(tap);
      assert.equal(t.message, 'timed out');
      assert.deepEqual(t.location, at('ts/test/shapes.test.ts', 19, 5));
    });
  });

  describe('the tap package (TAP 14, nested subtests)', () => {
    const results = parseText(load('tap/tap.tap'));

    it('counts the assertions; # TODO counts as skipped', () => {
      assert.deepEqual(counts(results), { passed: 2, failed: 4, skipped: 2 });
      const todo = find(results, 'tap/math.tap.mjs math', 'takes a square root');
      assert.equal(todo.status, 'skipped');
      assert.equal(todo.message, 'TODO');
    });

    it('names a nested assertion by the subtest path, with values from the diff and the location from the stack', () => {
      const t = find(results, 'tap/math.tap.mjs math division', 'rounds down');
      assert.equal(t.status, 'failed');
      assert.equal(t.durationMs, null);
      assert.equal(t.expected, '3');
      assert.equal(t.actual, '3.5');
      assert.match(t.message ?? '', /^--- expected\n\+\+\+ actual/);
      assert.deepEqual(t.location, at('tap/math.tap.mjs', 13, 7));
    });
  });

  describe('hand-written TAP', () => {
    it('TAP 13: SKIP and TODO directives, YAMLish wanted/found and at:, an escaped #, # time=', () => {
      const results = parseText(load('handwritten/tap13.tap'));
      assert.deepEqual(counts(results), { passed: 3, failed: 2, skipped: 2 });
      const failed = find(results, '', 'resolves the address');
      assert.equal(failed.message, 'hostname peebles.example.com not found');
      assert.equal(failed.expected, '85.193.201.85');
      assert.equal(failed.actual, 'null');
      assert.deepEqual(failed.location, at('js/test/math.test.js', 13, 1));
      assert.equal(find(results, '', 'uploads the artifact').message, 'no network in CI');
      const todo = find(results, '', 'signs the release');
      assert.equal(todo.status, 'skipped');
      assert.equal(todo.message, 'key rotation not done');
      assert.equal(find(results, '', 'handles a # in the name').status, 'passed');
      assert.equal(find(results, '', 'counts the lines').durationMs, 12.5);
      assert.equal(find(results, '', 'test 7').status, 'failed');
    });

    it('Bail out! keeps the results so far and adds a failed result with the reason', () => {
      const results = parseText(load('handwritten/bail-out.tap'));
      assert.deepEqual(
        results.map((r) => [r.name, r.status]),
        [
          ['connects', 'passed'],
          ['migrates the schema', 'failed'],
          ['Bail out!', 'failed'],
        ],
      );
      assert.equal(results[2].message, 'Bail out! Database unreachable');
    });

    it('TAP 14 buffered subtests', () => {
      const results = parseText(load('handwritten/tap14-buffered.tap'));
      assert.deepEqual(
        results.map((r) => [r.suite, r.name, r.status]),
        [
          ['outer', 'inner one', 'passed'],
          ['outer', 'inner two', 'failed'],
          ['', 'last', 'passed'],
        ],
      );
      assert.equal(results[1].expected, '3');
      assert.equal(results[1].actual, '2');
    });

    it('reports a parent whose own body failed after its subtests passed', () => {
      const results = parseText(
        ['TAP version 14', '# Subtest: parent', '    ok 1 - child', '    1..1', 'not ok 1 - parent', '  ---', "  error: 'after hook failed'", '  ...', '1..1'].join('\n'),
      );
      assert.deepEqual(
        results.map((r) => [r.suite, r.name, r.status, r.message]),
        [
          ['parent', 'child', 'passed', null],
          ['', 'parent', 'failed', 'after hook failed'],
        ],
      );
    });

    it('keeps the test point when its YAML block is broken', () => {
      const [t] = parseText(['TAP version 13', 'not ok 1 - broken yaml', '  ---', '  error: [unclosed', '  ...', '1..1'].join('\n'));
      assert.equal(t.status, 'failed');
      assert.equal(t.message, null);
    });
  });

  describe('incomplete or wrong TAP', () => {
    it('plan and test points disagree', () => {
      assert.equal(reason('TAP version 13\n1..5\nok 1 - a\nok 2 - b\nnot ok 3 - c\n'), 'TAP plan 1..5 but 3 test points');
    });

    it('a subtest\'s plan disagrees', () => {
      assert.match(reason('TAP version 14\n1..1\n    1..3\n    ok 1 - a\nok 1 - parent\n'), /TAP plan 1\.\.3 but 1 test point in subtest 'parent'/);
    });

    it('no plan: the report was cut short', () => {
      assert.match(reason('TAP version 13\nok 1 - a\nok 2 - b\n'), /^truncated TAP: no plan \(1\.\.N\) after 2 test points/);
    });

    it('a YAML block that is never closed', () => {
      assert.match(reason('TAP version 13\nnot ok 1 - a\n  ---\n  error: boom\n'), /^truncated TAP: the YAML block of test point 'a'/);
    });

    it('a subtest without its closing test point', () => {
      assert.match(reason('TAP version 14\n1..1\n# Subtest: file.js\n    ok 1 - a\n    ok 2 - b\n'), /^truncated TAP: subtest 'file\.js' has 2 test points but no closing test point/);
    });

    it('text that is not TAP', () => {
      assert.equal(reason('hello\nworld\n'), 'not TAP: no test points and no plan (1..N)');
      assert.equal(reason('{"stats": {}, "tests": []}'), 'not TAP: no test points and no plan (1..N)');
    });
  });
});
