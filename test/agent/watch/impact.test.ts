import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GlobSet, scanImports, TestImpactAnalyzer } from '../../../agent/watch/impact';
import { scratch } from '../../support/fixtures';

/** A JS + TS project whose import graph is drawn in its README. */
const FIXTURE = path.resolve(__dirname, '../../../../test/fixtures/impact');
const TESTS = ['test/**/*.test.{ts,tsx,js}'];

const ALL_TESTS = [
  'test/alias.test.ts',
  'test/config.test.js',
  'test/cycle.test.ts',
  'test/format.test.ts',
  'test/lazy.test.js',
  'test/math.test.ts',
  'test/view.test.tsx',
];

describe('test impact', function () {
  this.timeout(60_000);
  let dir: string;
  let analyzer: TestImpactAnalyzer;

  beforeEach(async () => {
    dir = scratch();
    fs.cpSync(FIXTURE, dir, { recursive: true });
    analyzer = await TestImpactAnalyzer.create({ root: dir, tests: TESTS });
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function write(files: Record<string, string>): void {
    for (const [rel, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    }
  }

  it('finds the test files', () => {
    assert.deepEqual(analyzer.testFiles, ALL_TESTS);
  });

  // What changing each module affects, read off the fixture's import graph.
  const expected: Record<string, string[]> = {
    'src/util.js': ['test/format.test.ts', 'test/math.test.ts', 'test/view.test.tsx'],
    'src/math.ts': ['test/format.test.ts', 'test/math.test.ts', 'test/view.test.tsx'],
    'src/lib/index.ts': ['test/format.test.ts', 'test/view.test.tsx'],
    'src/lib/format.ts': ['test/format.test.ts', 'test/view.test.tsx'],
    'src/lib/strings.ts': ['test/alias.test.ts', 'test/cycle.test.ts'],
    'src/cycle/a.ts': ['test/cycle.test.ts'],
    'src/cycle/b.ts': ['test/cycle.test.ts'],
    'src/lazy.js': ['test/lazy.test.js'],
    'src/heavy.mjs': ['test/lazy.test.js'],
    'src/data.json': ['test/config.test.js', 'test/lazy.test.js'],
    'src/config.js': ['test/config.test.js'],
    'src/view.tsx': ['test/view.test.tsx'],
    'test/helpers.ts': ['test/format.test.ts'],
    'test/math.test.ts': ['test/math.test.ts'],
    'src/orphan.ts': [],
    'src/broken.ts': [],
  };
  for (const [file, tests] of Object.entries(expected)) {
    it(`changing ${file} affects ${tests.length ? tests.join(', ') : 'no test'}`, async () => {
      const impact = await analyzer.analyze({ changed: [file], deleted: [] });
      assert.deepEqual(impact, { mode: 'affected', changed: [file], tests, reason: null });
    });
  }

  it('unions the tests of several changed files', () => {
    const impact = analyzer.affectedTests(['src/cycle/a.ts', 'src/heavy.mjs']);
    assert.deepEqual(impact.tests, ['test/cycle.test.ts', 'test/lazy.test.js']);
  });

  it('runs everything when package.json changes, and says why', async () => {
    const impact = await analyzer.analyze({ changed: ['package.json'], deleted: [] });
    assert.equal(impact.mode, 'all');
    assert.deepEqual(impact.tests, ALL_TESTS);
    assert.match(impact.reason ?? '', /^package\.json changed: a config file/);
  });

  for (const file of ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json', 'yarn.lock', 'pnpm-lock.yaml', '.mocharc.yml', 'conveyor.yml', 'babel.config.js', 'jest.config.ts', 'pkg/package.json']) {
    it(`treats ${file} as a config file`, () => {
      const impact = analyzer.affectedTests([file, 'src/math.ts']);
      assert.equal(impact.mode, 'all');
      assert.ok(impact.reason?.startsWith(`${file} changed`), impact.reason ?? '');
    });
  }

  it('runs everything when a file outside the import graph changes, naming it', async () => {
    const impact = await analyzer.analyze({ changed: ['README.md', 'src/math.ts'], deleted: [] });
    assert.equal(impact.mode, 'all');
    assert.deepEqual(impact.changed, ['README.md', 'src/math.ts']);
    assert.match(impact.reason ?? '', /^README\.md changed and is not in the import graph/);
  });

  it('follows an edit that adds an import', async () => {
    write({ 'src/orphan.ts': "import { up } from './lib/strings';\nexport const orphan = up('x');\n" });
    assert.deepEqual((await analyzer.analyze({ changed: ['src/orphan.ts'], deleted: [] })).tests, []);
    write({ 'test/orphan.test.ts': "import { orphan } from '../src/orphan';\n" });
    const added = await analyzer.analyze({ changed: ['test/orphan.test.ts'], deleted: [] });
    assert.deepEqual(added.tests, ['test/orphan.test.ts']);
    const strings = await analyzer.analyze({ changed: ['src/lib/strings.ts'], deleted: [] });
    assert.deepEqual(strings.tests, ['test/alias.test.ts', 'test/cycle.test.ts', 'test/orphan.test.ts']);
  });

  it('follows an edit that removes an import', async () => {
    write({ 'src/cycle/b.ts': "export const b = (n: number): number => n;\n" });
    await analyzer.analyze({ changed: ['src/cycle/b.ts'], deleted: [] });
    assert.deepEqual(analyzer.affectedTests(['src/lib/strings.ts']).tests, ['test/alias.test.ts']);
  });

  it('runs the tests of the importers of a deleted module', async () => {
    fs.rmSync(path.join(dir, 'src/lib/strings.ts'));
    const impact = await analyzer.analyze({ changed: [], deleted: ['src/lib/strings.ts'] });
    assert.deepEqual(impact, { mode: 'affected', changed: ['src/lib/strings.ts'], tests: ['test/alias.test.ts', 'test/cycle.test.ts'], reason: null });
    assert.deepEqual(analyzer.graph.importsOf('src/cycle/b.ts'), ['src/cycle/a.ts']);
  });

  it('does not run a deleted test file', async () => {
    fs.rmSync(path.join(dir, 'test/math.test.ts'));
    const impact = await analyzer.analyze({ changed: [], deleted: ['test/math.test.ts'] });
    assert.deepEqual(impact.tests, []);
    assert.ok(!analyzer.testFiles.includes('test/math.test.ts'));
  });

  it('moves an import to a new file that shadows the old target, and runs the tests of its importers', async () => {
    // `./lib` resolved to src/lib/index.ts; a new src/lib.ts now wins (a file before a folder).
    write({ 'src/lib.ts': "export const fmt = (x: unknown): string => String(x);\n" });
    const impact = await analyzer.analyze({ changed: ['src/lib.ts'], deleted: [] });
    assert.deepEqual(impact.tests, ['test/format.test.ts', 'test/view.test.tsx']);
    assert.deepEqual(analyzer.graph.importsOf('src/view.tsx'), ['src/lib.ts']);
  });

  it('resolves the tsconfig paths alias, index files, .js to .ts, JSON and dynamic imports', () => {
    const g = analyzer.graph;
    assert.deepEqual(g.importsOf('test/alias.test.ts'), ['src/lib/strings.ts']);
    assert.deepEqual(g.importsOf('test/format.test.ts'), ['src/lib/index.ts', 'test/helpers.ts']);
    assert.deepEqual(g.importsOf('src/math.ts'), ['src/util.js']);
    assert.deepEqual(g.importsOf('src/lazy.js'), ['src/heavy.mjs']);
    assert.deepEqual(g.importsOf('src/heavy.mjs'), ['src/data.json']);
    assert.deepEqual(g.importsOf('src/cycle/a.ts'), ['src/cycle/b.ts']);
    assert.deepEqual(g.importsOf('src/cycle/b.ts'), ['src/cycle/a.ts', 'src/lib/strings.ts']);
    assert.deepEqual(g.importersOf('src/util.js'), ['src/broken.ts', 'src/math.ts', 'test/helpers.ts']);
  });

  it('resolves `./x.js` to x.ts in a TS file', async () => {
    write({ 'src/next.ts': 'export const n = 1;\n', 'src/uses-next.ts': "export { n } from './next.js';\n", 'test/next.test.ts': "import '../src/uses-next.js';\n" });
    await analyzer.analyze({ changed: ['src/next.ts', 'src/uses-next.ts', 'test/next.test.ts'], deleted: [] });
    assert.deepEqual(analyzer.affectedTests(['src/next.ts']).tests, ['test/next.test.ts']);
  });

  it('keeps a source with syntax errors as a node, without crashing', () => {
    assert.ok(analyzer.graph.isSource('src/broken.ts'));
    assert.deepEqual(analyzer.graph.importsOf('src/broken.ts'), ['src/util.js']);
  });

  it('ignores what git ignores and node_modules', async () => {
    write({
      '.gitignore': 'build/\n',
      'build/gen.test.js': "require('../src/util.js');\n",
      'node_modules/dep/index.js': "require('../../src/util.js');\n",
      'node_modules/dep/test/x.test.js': '',
    });
    const fresh = await TestImpactAnalyzer.create({ root: dir, tests: ['**/*.test.{ts,tsx,js}'] });
    assert.deepEqual(fresh.testFiles, ALL_TESTS);
    assert.deepEqual(fresh.graph.importersOf('src/util.js'), ['src/broken.ts', 'src/math.ts', 'test/helpers.ts']);
  });

  it('runs the watch stages as written when no test files are declared', async () => {
    const none = await TestImpactAnalyzer.create({ root: dir, tests: [] });
    const impact = none.affectedTests(['src/math.ts']);
    assert.deepEqual({ ...impact, reason: null }, { mode: 'whole-stage', changed: ['src/math.ts'], tests: [], reason: null });
    assert.match(impact.reason ?? '', /watch\.tests/);
  });

  it('runs the watch stages as written in a project with no JS or TS', async () => {
    const py = scratch();
    try {
      fs.writeFileSync(path.join(py, 'app.py'), 'def f():\n    return 1\n');
      fs.writeFileSync(path.join(py, 'test_app.py'), 'from app import f\n');
      fs.writeFileSync(path.join(py, 'package.json'), '{}');
      const a = await TestImpactAnalyzer.create({ root: py, tests: ['**/test_*.py'] });
      const impact = await a.analyze({ changed: ['app.py'], deleted: [] });
      assert.equal(impact.mode, 'whole-stage');
      assert.deepEqual(impact.tests, []);
      assert.match(impact.reason ?? '', /no JS or TS/);
    } finally {
      fs.rmSync(py, { recursive: true, force: true });
    }
  });

  it('does not loop on a cycle of any length', async () => {
    const ring = Array.from({ length: 50 }, (_, i) => [`ring/m${i}.js`, `require('./m${(i + 1) % 50}.js');\n`]);
    write({ ...Object.fromEntries(ring), 'test/ring.test.js': "require('../ring/m25.js');\n" });
    await analyzer.analyze({ changed: [...ring.map(([f]) => f), 'test/ring.test.js'], deleted: [] });
    assert.deepEqual(analyzer.affectedTests(['ring/m7.js']).tests, ['test/ring.test.js']);
  });

  it('re-reads only the changed files', async () => {
    // A file edited on disk but not reported keeps its old imports in the graph.
    write({ 'src/config.js': "require('./util.js');\n", 'src/lazy.js': "require('./util.js');\n" });
    await analyzer.analyze({ changed: ['src/lazy.js'], deleted: [] });
    assert.deepEqual(analyzer.graph.importsOf('src/lazy.js'), ['src/util.js']);
    assert.deepEqual(analyzer.graph.importsOf('src/config.js'), ['src/data.json']);
  });
});

describe('import scanner', () => {
  const specs = (src: string): string[] => scanImports(src).map((r) => `${r.kind} ${r.specifier}`);

  it('finds every import shape and nothing in comments, strings or regexes', () => {
    const src = [
      "import x, { a, b as c } from './a';",
      'import type { T } from "./types";',
      "import * as ns from '../ns.js';",
      "import './side';",
      "export * from './reexp';",
      "export { from } from './from';",
      "export type * from './typeexp';",
      "const y = require('./req');",
      "const z = await import('./dyn');",
      "obj.require('./member'); a?.import('./optional');",
      "// require('./line-comment')",
      "/* import './block-comment' */",
      `const s = "require('./in-string')";`,
      "const t = `${require('./in-template')} ${`${import('./nested')}`} require('./template-text')`;",
      "const r = /require\\('.\\/in-regex'\\)/g; const d = a / b / require('./after-division');",
      "import q = require('./ts-import-equals');",
      "const tpl = require(`./template-literal`);",
      "function f<T>(x: T): T { return x } require('./after-generic');",
      "import { require as rq } from './named-require';",
      "import from from './named-from';",
      "export { a, b };",
      "require('./after-local-export');",
      "import json from './data.json' with { type: 'json' };",
      "const dynamicName = require(name); import(`./${x}`);",
    ].join('\n');
    assert.deepEqual(specs(src), [
      'import ./a',
      'import ./types',
      'import ../ns.js',
      'side-effect ./side',
      'export ./reexp',
      'export ./from',
      'export ./typeexp',
      'require ./req',
      'dynamic ./dyn',
      'require ./in-template',
      'dynamic ./nested',
      'require ./after-division',
      'require ./ts-import-equals',
      'require ./template-literal',
      'require ./after-generic',
      'import ./named-require',
      'import ./named-from',
      'require ./after-local-export',
      'import ./data.json',
    ]);
  });

  it('gets past JSX text with an apostrophe on the next line', () => {
    const src = "const v = <p>Don't</p>;\nimport x from './after-jsx';\nconst w = <a href='x'>y</a>; require('./same-line');";
    assert.deepEqual(specs(src), ['import ./after-jsx', 'require ./same-line']);
  });

  it('never throws and always ends, whatever the input', () => {
    const pieces = ['import', 'export', 'require', '(', ')', '{', '}', '`', '${', "'", '"', '/', '/*', '*/', '//', '\n', '\\', 'from', "'./x'", ' ', '<', '>', 'a', '1', '.', '?.', '[', ']', 'type', '*', ','];
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 2000; round++) {
      let src = '';
      const n = rand(60);
      for (let i = 0; i < n; i++) src += pieces[rand(pieces.length)];
      const refs = scanImports(src);
      assert.ok(Array.isArray(refs));
    }
    assert.deepEqual(scanImports('\u0000\uffff\ud800 import'), []);
    assert.deepEqual(specs(fs.readFileSync(path.join(FIXTURE, 'src/broken.ts'), 'utf8')), ['import ./util.js']);
  });

  it('agrees with es-module-lexer on ES modules and on TypeScript sources', async function () {
    this.timeout(60_000);
    const lexer = await import('es-module-lexer');
    await lexer.init();
    const repo = path.resolve(__dirname, '../../../..');
    const files = [
      ...listFiles(path.join(repo, 'node_modules'), (f) => f.endsWith('.mjs'), 300),
      ...listFiles(path.join(repo, 'agent'), (f) => f.endsWith('.ts'), 300),
      ...listFiles(path.join(repo, 'test'), (f) => /\.tsx?$/.test(f) && !f.includes('fixtures'), 300),
    ];
    let compared = 0;
    for (const file of files) {
      const src = fs.readFileSync(file, 'utf8');
      let imports: ReadonlyArray<{ type: string; specifier: string | null | undefined; glob?: boolean }>;
      try {
        imports = lexer.parse(src)[0];
      } catch {
        continue; // not a module the lexer accepts
      }
      // The lexer also reports `import.meta`, computed dynamic imports (no specifier) and
      // template globs (`import(\`./${x}.js\`)`), none of which name a file.
      const theirs = [...new Set(imports.filter((i) => typeof i.specifier === 'string' && !i.glob).map((i) => i.specifier as string))].sort();
      // Ours has the `require()` calls too; the lexer has `import x = require('y')` as an import.
      const refs = scanImports(src);
      const ours = new Set(refs.map((r) => r.specifier));
      const oursEsm = [...new Set(refs.filter((r) => r.kind !== 'require').map((r) => r.specifier))];
      assert.deepEqual(theirs.filter((s) => !ours.has(s)), [], `${file}: imports the scanner misses`);
      // In TS the scanner also counts `import('x')` in type positions, which the lexer may
      // not: an extra edge that can only run more tests. In plain ES modules both must agree.
      if (file.endsWith('.mjs')) assert.deepEqual(oursEsm.filter((s) => !theirs.includes(s)), [], `${file}: imports the scanner invents`);
      compared++;
    }
    assert.ok(compared > 100, `compared ${compared} files`);
  });
});

function listFiles(root: string, keep: (file: string) => boolean, max: number): string[] {
  const out: string[] = [];
  const visit = (d: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (out.length >= max || depth > 8) return;
      const p = path.join(d, e.name);
      if (e.isDirectory()) visit(p, depth + 1);
      else if (e.isFile() && keep(p)) out.push(p);
    }
  };
  visit(root, 0);
  return out;
}

describe('globs', () => {
  it('match paths the usual way', () => {
    const cases: [string, string, boolean][] = [
      ['test/**/*.test.js', 'test/a.test.js', true],
      ['test/**/*.test.js', 'test/x/y/a.test.js', true],
      ['test/**/*.test.js', 'a.test.js', false],
      ['dist/**', 'dist', true],
      ['dist/**', 'dist/a/b.js', true],
      ['dist/**', 'distx/a', false],
      ['*.md', 'README.md', true],
      ['*.md', 'docs/a.md', false],
      ['**/*.md', 'docs/a.md', true],
      ['**/*.md', 'a.md', true],
      ['src/{a,b}/*.ts', 'src/b/x.ts', true],
      ['src/{a,b}/*.ts', 'src/c/x.ts', false],
      ['test/**/*.test.{ts,tsx,js}', 'test/v.test.tsx', true],
      ['**', '.mocharc.json', true],
      ['a/**/b', 'a/b', true],
      ['a/**/b', 'a/x/y/b', true],
      ['[!a]x', 'bx', true],
      ['[!a]x', 'ax', false],
      ['file?.js', 'file1.js', true],
      ['file?.js', 'file/.js', false],
      ['./src/*.js', 'src/a.js', true],
      ['a.b', 'axb', false],
    ];
    for (const [glob, p, want] of cases) assert.equal(new GlobSet([glob]).matches(p), want, `${glob} ~ ${p}`);
  });
});
