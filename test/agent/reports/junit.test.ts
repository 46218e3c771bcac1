/**
 * JUnit XML reports captured from real runners (test/fixtures/reports/capture.sh).
 *
 * The captured reports name files under /tmp/report-samples, where they were produced; each
 * fixture is loaded with that prefix rewritten to test/fixtures/reports/project, which holds
 * the same sources (and the compiled TypeScript with its source maps), and the workspace root
 * is that folder.
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

function load(rel: string): string {
  const text = fs.readFileSync(path.join(FIXTURES, rel), 'utf8');
  return text.split(`file://${CAPTURED_AT}`).join(pathToFileURL(PROJECT).href).split(CAPTURED_AT).join(PROJECT);
}

function ctx(sub = ''): ReportContext {
  return { workspaceRoot: PROJECT, cwd: path.join(PROJECT, sub) };
}

function parse(rel: string, sub = ''): TestResult[] {
  const r = parseReport('junit', load(rel), ctx(sub));
  if (!r.ok) assert.fail(`${rel}: ${r.reason}`);
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

/** The `time` attribute (seconds) of the test case named `name` in the raw report, in ms. */
function rawTimeMs(rel: string, name: string): number {
  const text = fs.readFileSync(path.join(FIXTURES, rel), 'utf8');
  const tag = new RegExp(`<testcase[^>]*\\bname="${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"[^>]*>`).exec(text);
  assert.ok(tag, `testcase ${name} in ${rel}`);
  const time = /\btime="([^"]+)"/.exec(tag[0]);
  assert.ok(time);
  return Number(time[1]) * 1000;
}

function at(rel: string, line: number, column: number) {
  return { file: path.join(PROJECT, rel), line, column };
}

describe('reports/junit', () => {
  describe('node --test --test-reporter=junit', () => {
    const rel = 'node-junit/node.xml';
    const results = parse(rel);

    it('counts passed, failed and skipped tests (suites are not tests)', () => {
      assert.deepEqual(counts(results), { passed: 5, failed: 8, skipped: 2 });
    });

    it('names a test in a nested describe by the path of its suites', () => {
      const t = find(results, 'math division', 'rounds down');
      assert.equal(t.status, 'failed');
      assert.ok(Math.abs((t.durationMs ?? -1) - rawTimeMs(rel, 'rounds down')) < 1e-6);
      assert.equal(t.message, 'Expected values to be strictly equal:\n\n3.5 !== 3');
      assert.equal(t.expected, '3');
      assert.equal(t.actual, '3.5');
      assert.match(t.stack ?? '', /ERR_ASSERTION/);
      assert.deepEqual(t.location, at('js/test/math.test.js', 26, 14));
    });

    it('reads string and object values from the inspected error', () => {
      const greet = find(results, 'math', 'greets by name');
      assert.equal(greet.expected, 'hello there');
      assert.equal(greet.actual, 'hello world');
      const point = find(results, 'math', 'builds a point');
      assert.equal(point.expected, '{ x: 1, y: 3 }');
      assert.equal(point.actual, '{ x: 1, y: 2 }');
    });

    it('maps a frame of compiled TypeScript back to the .ts line through its source map', () => {
      const t = find(results, 'shapes area', 'of a wide rectangle');
      assert.deepEqual(t.location, at('ts/test/shapes.test.ts', 21, 14));
      assert.equal(t.expected, '6');
      assert.equal(t.actual, '8');
    });

    it('places an error thrown in the code under test at the first workspace frame', () => {
      assert.deepEqual(find(results, 'math division', 'rejects division by zero').location, at('js/src/math.js', 9, 11));
      assert.deepEqual(find(results, 'shapes perimeter', 'rejects a negative side').location, at('ts/src/shapes.ts', 12, 11));
    });

    it('reads file:// URLs in the frames of an ES module', () => {
      assert.deepEqual(find(results, 'esm', 'compares strings').location, at('js/test/esm.test.mjs', 9, 12));
    });

    it('reports skipped tests without the placeholder message', () => {
      const t = find(results, 'shapes perimeter', 'of a circle');
      assert.equal(t.status, 'skipped');
      assert.equal(t.message, null);
    });
  });

  describe('mocha-junit-reporter', () => {
    const rel = 'mocha-junit-reporter/mocha-junit.xml';
    const results = parse(rel);

    it('counts the tests it lists (it leaves pending tests out by default)', () => {
      assert.deepEqual(counts(results), { passed: 5, failed: 8, skipped: 0 });
    });

    it('splits the full title into suite and name', () => {
      const t = find(results, 'math division', 'rounds down');
      assert.equal(t.status, 'failed');
      assert.ok(Math.abs((t.durationMs ?? -1) - rawTimeMs(rel, 'math division rounds down')) < 1e-6);
      assert.equal(t.message, 'Expected values to be strictly equal:\n\n3.5 !== 3');
      assert.equal(t.expected, '3');
      assert.equal(t.actual, '3.5');
      assert.deepEqual(t.location, at('js/test/math.test.js', 26, 14));
    });

    it('rebuilds multi-line values from mocha\'s diff', () => {
      const t = find(results, 'math', 'builds a point');
      assert.equal(t.expected, '{\n  "x": 1\n  "y": 3\n}');
      assert.equal(t.actual, '{\n  "x": 1\n  "y": 2\n}');
    });

    it('resolves relative stack paths against the runner\'s folder and maps TypeScript', () => {
      assert.deepEqual(find(results, 'shapes area', 'of a wide rectangle').location, at('ts/test/shapes.test.ts', 21, 14));
    });

    it('places a passing test in its file (the suite\'s file attribute, through the source map)', () => {
      assert.deepEqual(find(results, 'shapes area', 'of a square').location, at('ts/test/shapes.test.ts', 1, 1));
      assert.deepEqual(find(results, 'math', 'adds two numbers').location, at('js/test/math.test.js', 1, 1));
    });
  });

  describe('jest-junit', () => {
    it('default templates: the suite is the file\'s top describe, the rest of the title is the name', () => {
      const results = parse('jest-junit/default.xml');
      assert.deepEqual(counts(results), { passed: 2, failed: 5, skipped: 1 });
      const t = find(results, 'math', 'division rounds down');
      assert.equal(t.status, 'failed');
      assert.ok(Math.abs((t.durationMs ?? -1) - rawTimeMs('jest-junit/default.xml', 'math division rounds down')) < 1e-6);
      assert.match(t.message ?? '', /^assert\.strictEqual\(received, expected\)/);
      assert.equal(t.expected, '3');
      assert.equal(t.actual, '3.5');
      // jest's own frames (under node_modules) are skipped.
      assert.deepEqual(t.location, at('js/test/math.test.js', 26, 14));
    });

    it('{classname} and {title} templates: suite and name as written', () => {
      const results = parse('jest-junit/templates.xml');
      assert.deepEqual(counts(results), { passed: 2, failed: 5, skipped: 1 });
      const t = find(results, 'math division', 'rounds down');
      assert.equal(t.expected, '3');
      assert.equal(t.actual, '3.5');
      assert.deepEqual(t.location, at('js/test/math.test.js', 26, 14));
      const greet = find(results, 'math', 'greets by name');
      assert.equal(greet.expected, 'hello there');
      assert.equal(greet.actual, 'hello world');
      // The relative file attribute places a passing test.
      assert.deepEqual(find(results, 'math', 'adds two numbers').location, at('js/test/math.test.js', 1, 1));
    });
  });

  describe('pytest --junitxml', () => {
    it('xunit2: classname is the suite; the traceback gives the failing line', () => {
      const results = parse('pytest/xunit2.xml', 'py');
      assert.deepEqual(counts(results), { passed: 2, failed: 3, skipped: 2 });
      const t = find(results, 'test_sample.TestDivision', 'test_rounds_down');
      assert.equal(t.status, 'failed');
      assert.equal(t.message, 'assert (7 / 2) == 3');
      assert.deepEqual(t.location, at('py/test_sample.py', 27, 1));
      const skipped = find(results, 'test_sample', 'test_multiplies');
      assert.equal(skipped.status, 'skipped');
      assert.equal(skipped.message, 'not written yet');
      assert.equal(find(results, 'test_sample', 'test_known_bug').status, 'skipped');
      assert.equal(find(results, 'test_sample', 'test_adds_two_numbers').location, null);
    });

    it('xunit1: file and (0-based) line attributes place every test', () => {
      const results = parse('pytest/xunit1.xml', 'py');
      assert.deepEqual(counts(results), { passed: 2, failed: 3, skipped: 2 });
      assert.deepEqual(find(results, 'test_sample', 'test_adds_two_numbers').location, at('py/test_sample.py', 9, 1));
      assert.deepEqual(find(results, 'test_sample.TestDivision', 'test_divides_evenly').location, at('py/test_sample.py', 23, 1));
      // A failure still goes to the assertion's line.
      assert.deepEqual(find(results, 'test_sample', 'test_adds_a_negative_number').location, at('py/test_sample.py', 14, 1));
    });
  });

  describe('Maven Surefire (bare <testsuite>)', () => {
    it('reads failures, errors and skipped tests of a nested class', () => {
      const results = parse('surefire/TEST-com.example.MathOpsTest$Division.xml', 'java');
      assert.deepEqual(counts(results), { passed: 2, failed: 2, skipped: 1 });
      const t = find(results, 'com.example.MathOpsTest', 'addsANegativeNumber');
      assert.equal(t.message, 'expected: <1> but was: <-1>');
      assert.equal(t.expected, '1');
      assert.equal(t.actual, '-1');
      assert.deepEqual(t.location, at('java/src/test/java/com/example/MathOpsTest.java', 18, 1));
      const err = find(results, 'com.example.MathOpsTest$Division', 'rejectsDivisionByZero');
      assert.equal(err.status, 'failed');
      assert.equal(err.message, '/ by zero');
      assert.deepEqual(err.location, at('java/src/main/java/com/example/MathOps.java', 11, 1));
      assert.equal(find(results, 'com.example.MathOpsTest', 'multiplies').message, 'not written yet');
    });

    it('reads a suite without test cases as no results', () => {
      assert.deepEqual(parse('surefire/TEST-com.example.MathOpsTest.xml', 'java'), []);
    });
  });

  describe('hand-written XML', () => {
    const c = ctx();
    it('reads nested suites, entities, CDATA, <error> and the file/line attributes', () => {
      const xml = `<?xml version="1.0"?>
<testsuites name="all">
  <testsuite name="outer" time="1.5">
    <testsuite name="inner">
      <testcase name="a &amp; b" time="0.25" file="js/test/math.test.js" line="12"/>
      <testcase name="fails" classname="" time="0.001">
        <error message="boom &lt;1&gt;&#10;second line" type="Error"><![CDATA[Error: boom <1>
    at run (js/test/math.test.js:30:26)]]></error>
      </testcase>
    </testsuite>
    <testcase name="skips"><skipped/></testcase>
  </testsuite>
</testsuites>`;
      const r = parseReport('junit', xml, c);
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assert.deepEqual(
        r.results.map((t) => [t.suite, t.name, t.status, t.durationMs]),
        [
          ['outer inner', 'a & b', 'passed', 250],
          ['outer inner', 'fails', 'failed', 1],
          ['outer', 'skips', 'skipped', null],
        ],
      );
      assert.deepEqual(r.results[0].location, at('js/test/math.test.js', 12, 1));
      assert.equal(r.results[1].message, 'boom <1>\nsecond line');
      assert.equal(r.results[1].stack, 'Error: boom <1>\n    at run (js/test/math.test.js:30:26)');
      assert.deepEqual(r.results[1].location, at('js/test/math.test.js', 30, 26));
    });

    it('takes the message from the body when there is no message attribute', () => {
      const xml = '<testsuite name="s"><testcase name="t"><failure>Something broke\n    at x (/nowhere/a.js:1:1)</failure></testcase></testsuite>';
      const r = parseReport('junit', xml, c);
      assert.ok(r.ok);
      assert.equal(r.results[0].message, 'Something broke');
      assert.equal(r.results[0].location, null, 'a frame outside the workspace is not a location');
    });
  });
});
