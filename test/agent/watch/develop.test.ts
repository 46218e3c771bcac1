import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import type { TestImpact, WatchConfig } from '../../../agent/protocol';
import { DevelopLoop, mergeImpacts, watchTests, type DevelopIteration, type DevelopLoopOptions, type DevelopState } from '../../../agent/watch/develop';
import { scratch, until } from '../../support/fixtures';

const FIXTURE = path.resolve(__dirname, '../../../../test/fixtures/impact');

/** A run the test ends when it likes: `start()` settles when the run ends. */
interface FakeRun {
  impact: TestImpact;
  end(): void;
}

/**
 * The develop loop on a copy of the impact fixture, with chokidar for real and a fake engine.
 * "Exactly one start" is shown with a barrier: a later save whose run arrives second.
 */
describe('DevelopLoop', function () {
  this.timeout(60_000);
  let dir: string;
  let loop: DevelopLoop | undefined;
  let runs: FakeRun[];
  let states: DevelopState[];
  let iterations: DevelopIteration[];
  /** End each run as soon as it starts (the default), or leave it in flight. */
  let endAtOnce: boolean;

  beforeEach(() => {
    dir = scratch();
    fs.cpSync(FIXTURE, dir, { recursive: true });
    runs = [];
    states = [];
    iterations = [];
    endAtOnce = true;
  });

  afterEach(async () => {
    for (const r of runs) r.end();
    await loop?.close();
    loop = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function startLoop(watch: Partial<WatchConfig> = {}, opts: Partial<DevelopLoopOptions> = {}): Promise<DevelopLoop> {
    const config: WatchConfig = { include: ['**/*'], exclude: [], stages: [], tests: ['test/**/*.test.{ts,tsx,js}'], ...watch };
    loop = new DevelopLoop({
      root: dir,
      watch: config,
      start: (impact) =>
        new Promise<void>((resolve) => {
          runs.push({ impact, end: resolve });
          if (endAtOnce) resolve();
        }),
      ...opts,
    });
    loop.onDidChangeState((s) => states.push(s));
    loop.onDidAnalyse((i) => iterations.push(i));
    await loop.ready;
    return loop;
  }

  function save(files: Record<string, string>): void {
    for (const [rel, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    }
  }

  /** Saves src/config.js and waits for its run: everything saved before it has been handled. */
  async function barrier(): Promise<FakeRun> {
    const before = runs.length;
    save({ 'src/config.js': `'use strict';\nmodule.exports = require('./data.json'); // ${Date.now()}\n` });
    return until(() => runs.slice(before).find((r) => r.impact.changed.includes('src/config.js')), 'the barrier run');
  }

  it('starts one run with the affected tests when a file is saved', async () => {
    await startLoop();
    assert.equal(loop!.state, 'idle');
    save({ 'src/lib/strings.ts': "export const up = (s: string): string => s.toUpperCase() + '';\n" });
    await until(() => runs.length > 0, 'the run');
    assert.deepEqual(runs[0].impact, { mode: 'affected', changed: ['src/lib/strings.ts'], tests: ['test/alias.test.ts', 'test/cycle.test.ts'], reason: null });
    await barrier();
    assert.equal(runs.length, 2, 'one run for the save, one for the barrier');
    assert.deepEqual(runs[1].impact.tests, ['test/config.test.js']);
    await until(() => loop!.state === 'idle', 'idle again');
    assert.deepEqual(states.slice(0, 5), ['idle', 'debouncing', 'analysing', 'running', 'idle']);
  });

  it('starts one run for a burst of saves, with the tests of all of them', async () => {
    await startLoop();
    save({
      'src/cycle/a.ts': "import { b } from './b';\nexport const a = (n: number): number => b(n);\n",
      'src/heavy.mjs': "import data from './data.json' with { type: 'json' };\nexport default data;\n",
      'src/view.tsx': "import { fmt } from './lib';\nexport default () => <p>{fmt(1)}</p>;\n",
      'test/helpers.ts': "import { helper } from '../src/util.js';\nexport const twice = helper;\n",
    });
    await until(() => runs.length > 0, 'the run');
    assert.deepEqual(runs[0].impact, {
      mode: 'affected',
      changed: ['src/cycle/a.ts', 'src/heavy.mjs', 'src/view.tsx', 'test/helpers.ts'],
      tests: ['test/cycle.test.ts', 'test/format.test.ts', 'test/lazy.test.js', 'test/view.test.tsx'],
      reason: null,
    });
    await barrier();
    assert.equal(runs.length, 2);
  });

  it('starts nothing for a file git ignores, node_modules or an excluded file', async () => {
    save({ '.gitignore': 'tmp/\n' });
    await startLoop({ exclude: ['docs/**'] });
    save({
      'tmp/scratch.js': "require('../src/util.js');\n",
      'node_modules/dep/index.js': 'module.exports = 1;\n',
      'docs/guide.md': '# guide\n',
    });
    const b = await barrier();
    assert.equal(runs.length, 1, `only the barrier ran: ${JSON.stringify(runs.map((r) => r.impact))}`);
    assert.deepEqual(b.impact.changed, ['src/config.js']);
  });

  it('starts runs for included files only, and still learns what the others import', async () => {
    await startLoop({ include: ['src/**'] });
    // A test file outside `include` starts importing src/orphan.ts: no run, but the graph knows.
    save({ 'test/math.test.ts': "import '../src/orphan';\nimport { add } from '../src/math';\n" });
    await until(() => states.includes('analysing') && loop!.state === 'idle', 'the graph update');
    assert.deepEqual(iterations, []);
    save({ 'src/orphan.ts': 'export const orphan = 1;\n' });
    await until(() => runs.length > 0, 'the run');
    assert.deepEqual(runs[0].impact, { mode: 'affected', changed: ['src/orphan.ts'], tests: ['test/math.test.ts'], reason: null });
    const b = await barrier();
    assert.equal(runs.length, 2);
    assert.deepEqual(b.impact.changed, ['src/config.js']);
  });

  it('runs every test when a config file is saved, with the reason', async () => {
    await startLoop();
    save({ 'package.json': '{ "name": "impact-fixture", "version": "2.0.0" }\n' });
    await until(() => runs.length > 0, 'the run');
    assert.equal(runs[0].impact.mode, 'all');
    assert.equal(runs[0].impact.tests.length, 7);
    assert.match(runs[0].impact.reason ?? '', /package\.json/);
  });

  it('starts nothing when a save affects no test, and says so', async () => {
    await startLoop();
    save({ 'src/orphan.ts': 'export const orphan = false;\n' });
    await until(() => iterations.length > 0, 'the analysis');
    assert.deepEqual(iterations[0], { impact: { mode: 'affected', changed: ['src/orphan.ts'], tests: [], reason: null }, started: false });
    await barrier();
    assert.equal(runs.length, 1);
  });

  it('starts a run for an unaffecting save when asked to', async () => {
    await startLoop({}, { startWhenNoTests: true });
    save({ 'src/orphan.ts': 'export const orphan = false;\n' });
    await until(() => runs.length > 0, 'the run');
    assert.deepEqual(runs[0].impact.tests, []);
  });

  it('supersedes a run in flight, carrying its tests into the new run', async () => {
    endAtOnce = false;
    await startLoop();
    save({ 'src/lib/strings.ts': "export const up = (s: string): string => s.toLowerCase();\n" });
    await until(() => runs.length === 1, 'the first run');
    assert.equal(loop!.state, 'running');
    save({ 'src/heavy.mjs': 'export default 1;\n' });
    await until(() => runs.length === 2, 'the second run');
    assert.deepEqual(runs[1].impact, {
      mode: 'affected',
      changed: ['src/heavy.mjs', 'src/lib/strings.ts'],
      tests: ['test/alias.test.ts', 'test/cycle.test.ts', 'test/lazy.test.js'],
      reason: null,
    });
    // The superseded run ending does not end the loop's run.
    runs[0].end();
    await new Promise((r) => setImmediate(r));
    assert.equal(loop!.state, 'running');
    runs[1].end();
    await until(() => loop!.state === 'idle', 'idle once the current run ended');
    // Once a run has ended, the next one carries nothing over.
    save({ 'src/config.js': "module.exports = 2;\n" });
    await until(() => runs.length === 3, 'the third run');
    assert.deepEqual(runs[2].impact.tests, ['test/config.test.js']);
  });

  it('reads watch.tests when the config has it, and none otherwise', () => {
    assert.deepEqual(watchTests({ include: [], exclude: [], stages: [] }), []);
    assert.deepEqual(watchTests({ include: [], exclude: [], stages: [], tests: ['t/**'] }), ['t/**']);
    assert.deepEqual(watchTests({ include: [], exclude: [], stages: [], tests: 'not a list' }), []);
  });

  it('merges impacts: whole-stage over all over affected', () => {
    const affected = (tests: string[], changed: string[]): TestImpact => ({ mode: 'affected', changed, tests, reason: null });
    assert.deepEqual(mergeImpacts(affected(['t/a'], ['a']), affected(['t/b'], ['b'])), affected(['t/a', 't/b'], ['a', 'b']));
    const all: TestImpact = { mode: 'all', changed: ['package.json'], tests: ['t/a', 't/b', 't/c'], reason: 'package.json changed' };
    assert.deepEqual(mergeImpacts(all, affected(['t/a'], ['a'])), { ...all, changed: ['a', 'package.json'] });
    const whole: TestImpact = { mode: 'whole-stage', changed: ['x'], tests: [], reason: 'no tests' };
    assert.deepEqual(mergeImpacts(affected(['t/a'], ['a']), whole), { ...whole, changed: ['a', 'x'] });
  });

  it('keeps nothing of past iterations alive', async function () {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const impacts: WeakRef<TestImpact>[] = [];
    await startLoop();
    loop!.onDidAnalyse((i) => impacts.push(new WeakRef(i.impact)));
    for (let i = 0; i < 10; i++) {
      save({ 'src/lib/strings.ts': `export const up = (s: string): string => s.toUpperCase(); // ${i}\n` });
      await until(() => runs.length === i + 1 && loop!.state === 'idle', `iteration ${i}`);
    }
    // The test's own record of the runs holds their impacts: let go of them.
    runs = [];
    iterations = [];
    await new Promise((r) => setImmediate(r));
    gc();
    const alive = impacts.filter((w) => w.deref() !== undefined).length;
    assert.equal(impacts.length, 10);
    assert.equal(alive, 0, `${alive} of 10 iterations are still reachable`);
  });
});
