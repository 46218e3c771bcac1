/**
 * Stack frames and source maps. The compiled TypeScript in test/fixtures/reports/project/ts/compiled
 * (tsc output with .js.map files, see capture.sh) is the real input; inline and broken maps are
 * built in a temporary folder from it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Locator, parseStackFrames } from '../../../agent/reports/locate';

const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures/reports');
const PROJECT = path.join(FIXTURES, 'project');
const COMPILED_TEST = path.join(PROJECT, 'ts/compiled/test/shapes.test.js');
const TS_TEST = path.join(PROJECT, 'ts/test/shapes.test.ts');

describe('reports/locate', () => {
  describe('parseStackFrames', () => {
    it('reads V8 frames with and without a function name, and file:// URLs', () => {
      const frames = parseStackFrames(
        [
          'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:',
          '',
          '    at Context.<anonymous> (js/test/math.test.js:13:12)',
          '    at /abs/path/file.js:4:2',
          '    at run (/abs/My Project (copy)/x.js:7:1)',
          '    at async Promise.all (index 0)',
          '    at new Promise (<anonymous>)',
          '    at file:///abs/esm.test.mjs:9:12',
          '    at eval (eval at <anonymous> (/abs/x.js:1:1), <anonymous>:1:1)',
          '    at process.processImmediate (node:internal/timers:483:21)',
        ].join('\n'),
      );
      assert.deepEqual(
        frames.map((f) => [f.fn, f.file, f.line, f.column]),
        [
          ['Context.<anonymous>', 'js/test/math.test.js', 13, 12],
          [null, '/abs/path/file.js', 4, 2],
          ['run', '/abs/My Project (copy)/x.js', 7, 1],
          [null, 'file:///abs/esm.test.mjs', 9, 12],
          ['process.processImmediate', 'node:internal/timers', 483, 21],
        ],
      );
    });

    it('reads frames without the leading "at" only when asked (node\'s TAP stack field)', () => {
      const stack = 'TestContext.<anonymous> (/abs/math.test.js:13:12)\nnode:internal/test_runner/test:1133:71';
      assert.deepEqual(parseStackFrames(stack), []);
      assert.deepEqual(
        parseStackFrames(stack, { bare: true }).map((f) => [f.file, f.line, f.column]),
        [
          ['/abs/math.test.js', 13, 12],
          ['node:internal/test_runner/test', 1133, 71],
        ],
      );
    });

    it('reads Python tracebacks innermost first', () => {
      const native = 'Traceback (most recent call last):\n  File "/ws/test_a.py", line 4, in test_a\n    f()\n  File "/ws/lib.py", line 9, in f\n    raise ValueError\nValueError';
      assert.deepEqual(
        parseStackFrames(native).map((f) => [f.file, f.line, f.column]),
        [
          ['/ws/lib.py', 9, null],
          ['/ws/test_a.py', 4, null],
        ],
      );
      const pytest = 'def test_x():\n>       f()\n\ntest_a.py:5: \n_ _ _\n\n    def f():\n>       raise ValueError\nE       ValueError\n\nlib.py:3: ValueError';
      assert.deepEqual(
        parseStackFrames(pytest).map((f) => [f.file, f.line]),
        [
          ['lib.py', 3],
          ['test_a.py', 5],
        ],
      );
    });

    it('reads JVM frames with their package', () => {
      const [frame, jdk] = parseStackFrames(
        '\tat com.example.MathOpsTest$Division.rejects(MathOpsTest.java:35)\n\tat java.base/java.lang.reflect.Method.invoke(Method.java:569)',
      );
      assert.deepEqual([frame.file, frame.line, frame.jvmPackage], ['MathOpsTest.java', 35, 'com.example']);
      assert.deepEqual([jdk.file, jdk.jvmPackage], ['Method.java', 'java.lang.reflect']);
    });
  });

  describe('Locator', () => {
    const locator = new Locator({ workspaceRoot: PROJECT, cwd: PROJECT });

    it('skips node_modules, node: internals and files outside the workspace', () => {
      const stack = [
        'Error: x',
        `    at dep (${path.join(PROJECT, 'node_modules/dep/index.js')}:1:1)`,
        '    at internal (node:internal/modules/cjs/loader:1:1)',
        '    at outside (/somewhere/else.js:2:2)',
        '    at Context.<anonymous> (js/test/math.test.js:13:12)',
      ].join('\n');
      assert.deepEqual(locator.fromStack(stack), { file: path.join(PROJECT, 'js/test/math.test.js'), line: 13, column: 12 });
    });

    it('answers null when no frame is in the workspace and there is no own location', () => {
      assert.equal(locator.locate('Error: x\n    at f (/elsewhere/a.js:1:1)', null), null);
      assert.equal(locator.locate(null, null), null);
    });

    it('falls back to the own location when no frame qualifies', () => {
      assert.deepEqual(locator.locate('Error: x\n    at f (node:internal/x:1:1)', { file: 'js/test/math.test.js', line: 7, column: 3 }), {
        file: path.join(PROJECT, 'js/test/math.test.js'),
        line: 7,
        column: 3,
      });
    });

    it('maps a compiled position through a .map file, and a file:// frame too', () => {
      assert.deepEqual(locator.mapPosition(COMPILED_TEST, 20, 35), { file: TS_TEST, line: 21, column: 14 });
      assert.deepEqual(locator.fromStack(`Error\n    at ${pathToFileURL(COMPILED_TEST).href}:20:35`), { file: TS_TEST, line: 21, column: 14 });
    });

    describe('with maps built in a temporary folder', () => {
      let dir: string;
      const mapJson = fs.readFileSync(`${COMPILED_TEST}.map`, 'utf8');
      const compiled = fs.readFileSync(COMPILED_TEST, 'utf8').replace(/\/\/# sourceMappingURL=.*$/m, '');

      beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-locate-'));
        fs.mkdirSync(path.join(dir, 'compiled/test'), { recursive: true });
        fs.mkdirSync(path.join(dir, 'test'), { recursive: true });
        fs.copyFileSync(TS_TEST, path.join(dir, 'test/shapes.test.ts'));
      });
      afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

      const write = (text: string) => {
        const file = path.join(dir, 'compiled/test/shapes.test.js');
        fs.writeFileSync(file, text);
        return file;
      };
      const original = () => path.join(dir, 'test/shapes.test.ts');

      it('reads an inline base64 data: URL', () => {
        const file = write(`${compiled}//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(mapJson).toString('base64')}\n`);
        const loc = new Locator({ workspaceRoot: dir, cwd: dir });
        assert.deepEqual(loc.mapPosition(file, 20, 35), { file: original(), line: 21, column: 14 });
      });

      it('reads an inline URL-encoded data: URL', () => {
        const file = write(`${compiled}//# sourceMappingURL=data:application/json,${encodeURIComponent(mapJson)}\n`);
        const loc = new Locator({ workspaceRoot: dir, cwd: dir });
        assert.deepEqual(loc.mapPosition(file, 20, 35), { file: original(), line: 21, column: 14 });
      });

      it('keeps the compiled position when the map is missing, broken, or names a source that is not there', () => {
        const file = write(`${compiled}//# sourceMappingURL=shapes.test.js.map\n`);
        const compiledPos = { file, line: 20, column: 35 };
        assert.deepEqual(new Locator({ workspaceRoot: dir, cwd: dir }).mapPosition(file, 20, 35), compiledPos, 'missing map');
        fs.writeFileSync(`${file}.map`, '{"version": 3, "sources": [');
        assert.deepEqual(new Locator({ workspaceRoot: dir, cwd: dir }).mapPosition(file, 20, 35), compiledPos, 'broken map');
        fs.writeFileSync(`${file}.map`, mapJson);
        fs.rmSync(original());
        assert.deepEqual(new Locator({ workspaceRoot: dir, cwd: dir }).mapPosition(file, 20, 35), compiledPos, 'missing source');
        write(compiled);
        assert.deepEqual(new Locator({ workspaceRoot: dir, cwd: dir }).mapPosition(file, 20, 35), compiledPos, 'no comment');
      });

      it('reads each source map once per Locator', () => {
        const file = write(`${compiled}//# sourceMappingURL=shapes.test.js.map\n`);
        fs.writeFileSync(`${file}.map`, mapJson);
        const loc = new Locator({ workspaceRoot: dir, cwd: dir });
        assert.deepEqual(loc.mapPosition(file, 20, 35), { file: original(), line: 21, column: 14 });
        fs.rmSync(`${file}.map`);
        assert.deepEqual(loc.mapPosition(file, 28, 70), { file: original(), line: 31, column: 35 }, 'the cached map still answers');
        assert.deepEqual(new Locator({ workspaceRoot: dir, cwd: dir }).mapPosition(file, 20, 35), { file, line: 20, column: 35 });
      });
    });
  });
});
