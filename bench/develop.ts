import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestImpact } from '../agent/protocol';
import { DevelopLoop } from '../agent/watch/develop';
import { median, type BenchResult } from './util';

const MOCHA = path.resolve(__dirname, '..', '..', 'node_modules', 'mocha', 'bin', 'mocha.js');
const TEST_FILES = 200;
/** Source modules per layer; a module requires two of the layer below. */
const LAYERS = [30, 30, 25, 15];
const CASES_PER_FILE = 10;
/** CPU time of one test case: a test file takes about CASES_PER_FILE times this. */
const CASE_MS = 5;
/** Saves measured with the develop loop and by hand (cheap), and with the peer (a whole-suite run each). */
const LOOP_ROUNDS = 11;
const PEER_ROUNDS = 5;
/** The whole benchmark gives up after this long. */
const DEADLINE_MS = 6 * 60_000;
const RATIO_TARGET = 5;
const OVERHEAD_TARGET = 0.1;

/**
 * Save-to-result on a generated CommonJS project of 200 mocha test files over 100 source
 * modules in layers. One source module (one that about a tenth of the tests reach) is saved,
 * and the time runs until the tests' results are in:
 *
 * - Conveyor: the develop loop notices the save, updates the import graph, picks the affected
 *   test files, and runs mocha on them (a process per run, as the engine would, with the JSON
 *   reporter writing its file);
 * - the peer: `mocha --watch` over the whole suite, started and warmed up beforehand, until it
 *   says it waits for changes again;
 * - direct: mocha on the same affected files, started by hand the instant the file is saved:
 *   what Conveyor adds on top of it is the loop's own cost.
 *
 * Conveyor and direct alternate save by save; the peer runs alone afterwards (one watcher at a
 * time). Figures are medians; the first save of each phase warms the caches and is not counted.
 */
export async function benchDevelop(): Promise<BenchResult> {
  const deadline = Date.now() + DEADLINE_MS;
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-develop-')));
  const children = new Set<ChildProcess>();
  try {
    const project = generateProject(dir);
    const target = project.changed;
    let version = 0;
    const save = () => fs.writeFileSync(path.join(dir, target), project.source(target, ++version));

    // (a) Conveyor: the develop loop, with mocha on the affected files; (c) direct: mocha on the
    // same files, started by hand. Interleaved, round by round, so that both see the same machine.
    const conveyor: number[] = [];
    const noticed: number[] = [];
    const analysis: number[] = [];
    const direct: number[] = [];
    let impact: TestImpact | undefined;
    {
      let round: { t0: number; done: (ms: number) => void; started?: number } | undefined;
      let analysingSince = 0;
      const loop = new DevelopLoop({
        root: dir,
        watch: { include: ['**/*'], exclude: [], stages: [], tests: ['test/**/*.test.js'] },
        start: async (i) => {
          const r = round;
          if (r) r.started = performance.now();
          impact = i;
          await runMocha(dir, i.tests, children);
          if (r) r.done(performance.now() - r.t0);
        },
      });
      loop.onDidChangeState((s) => {
        if (s === 'analysing') analysingSince = performance.now();
      });
      loop.onDidAnalyse(() => analysis.push(performance.now() - analysingSince));
      try {
        await loop.ready;
        for (let i = 0; i < LOOP_ROUNDS + 1 && Date.now() < deadline; i++) {
          const t0 = performance.now();
          const ms = await new Promise<number>((done) => {
            round = { t0, done };
            save();
          });
          const started = (round?.started ?? t0) - t0;
          round = undefined;
          await settle();
          if (!impact) throw new Error('the develop loop started no run');
          const t1 = performance.now();
          await runMocha(dir, impact.tests, children);
          const byHand = performance.now() - t1;
          await settle();
          if (i > 0) {
            // The first round warms the caches; it is not counted.
            conveyor.push(ms);
            noticed.push(started);
            direct.push(byHand);
          }
        }
      } finally {
        await loop.close();
      }
    }
    if (!impact) throw new Error('the develop loop started no run');
    const affected = impact.tests;

    // (b) The peer: mocha --watch over the whole suite.
    const peer: number[] = [];
    let suiteTests = 0;
    {
      const watcher = spawn(process.execPath, [MOCHA, '--no-config', '--watch', '--reporter', 'json', 'test/**/*.test.js'], {
        cwd: dir,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.add(watcher);
      let out = '';
      let err = '';
      watcher.stdout.on('data', (b: Buffer) => (out += b.toString()));
      watcher.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const runEnd = async (from: number): Promise<void> => {
        const deadlineRun = Date.now() + 120_000;
        while (!err.slice(from).includes('waiting for changes')) {
          if (watcher.exitCode !== null || Date.now() > deadlineRun) throw new Error(`mocha --watch stopped or hung: ${err.slice(-2000)}`);
          await sleep(5);
        }
      };
      try {
        await runEnd(0); // the first run
        suiteTests = countTests(out);
        for (let i = 0; i < PEER_ROUNDS + 1 && Date.now() < deadline; i++) {
          const from = err.length;
          const t0 = performance.now();
          save();
          await runEnd(from);
          if (i > 0) peer.push(performance.now() - t0);
          await settle();
        }
      } finally {
        watcher.kill('SIGKILL');
        children.delete(watcher);
      }
    }

    const a = median(conveyor);
    const b = median(peer);
    const c = median(direct);
    const ratio = b / a;
    const overhead = a / c - 1;
    const own = median(noticed) / c;
    const lines = [
      `project: ${TEST_FILES} test files (${CASES_PER_FILE} cases of ~${CASE_MS} ms CPU each, ${suiteTests || '?'} tests), ` +
        `${LAYERS.reduce((x, y) => x + y, 0)} source modules in ${LAYERS.length} layers, CommonJS`,
      `saved: ${target}, which ${affected.length} of ${TEST_FILES} test files reach (${impact.mode}); ` +
        `medians of ${conveyor.length} saves (Conveyor, direct) and ${peer.length} (peer)`,
      `                                      save to result`,
      `Conveyor (develop loop + mocha)       ${ms(a)}   (save to mocha start ${ms(median(noticed))}, of which impact ${median(analysis).toFixed(1)} ms)`,
      `mocha --watch, whole suite (peer)     ${ms(b)}`,
      `mocha on the affected files (direct)  ${ms(c)}`,
      `ratio peer/Conveyor: ${ratio.toFixed(1)}x (target >= ${RATIO_TARGET}x: ${ratio >= RATIO_TARGET ? 'met' : 'MISSED'})`,
      `Conveyor's own time, save to mocha start (nearly all of it the 100 ms quiet period that groups a burst ` +
        `of saves), is ${(own * 100).toFixed(1)}% of direct (target < ${OVERHEAD_TARGET * 100}%: ${own < OVERHEAD_TARGET ? 'met' : 'MISSED'})`,
      `end to end, Conveyor's median is ${(overhead * 100).toFixed(1)}% above direct's ` +
        `(direct runs of the same files took ${ms(Math.min(...direct)).trim()} to ${ms(Math.max(...direct)).trim()} in this run)`,
    ];
    return {
      name: 'develop',
      lines,
      figures: {
        testFiles: TEST_FILES,
        affectedTestFiles: affected.length,
        conveyorMs: Math.round(a),
        conveyorNoticeMs: Math.round(median(noticed)),
        conveyorImpactMs: Math.round(median(analysis) * 100) / 100,
        peerMs: Math.round(b),
        directMs: Math.round(c),
        ratio: Math.round(ratio * 100) / 100,
        overheadPct: Math.round(overhead * 1000) / 10,
        loopOwnPct: Math.round(own * 1000) / 10,
      },
    };
  } finally {
    for (const child of children) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function ms(x: number): string {
  return `${Math.round(x).toString().padStart(6)} ms`;
}

function sleep(msec: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msec));
}

/** Lets the previous round's file events drain before the next save. */
function settle(): Promise<void> {
  return sleep(300);
}

/** The number of tests in the last JSON report mocha printed. */
function countTests(out: string): number {
  const m = /"tests":\s*(\d+)/.exec(out);
  return m ? Number(m[1]) : 0;
}

/** Runs mocha on these files with the JSON reporter writing a file; resolves once it is written. */
async function runMocha(cwd: string, files: readonly string[], children: Set<ChildProcess>): Promise<void> {
  const output = path.join(cwd, '.conveyor', `mocha-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  fs.mkdirSync(path.dirname(output), { recursive: true });
  const child = spawn(process.execPath, [MOCHA, '--no-config', '--reporter', 'json', '--reporter-option', `output=${output}`, ...files], {
    cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  children.delete(child);
  const report = JSON.parse(fs.readFileSync(output, 'utf8')) as { stats: { tests: number; failures: number } };
  fs.rmSync(output, { force: true });
  if (code !== 0 || report.stats.failures > 0 || report.stats.tests === 0) {
    throw new Error(`mocha failed (exit ${code}, ${report.stats.failures} failures): ${err.slice(-2000)}`);
  }
}

/** A small seeded generator, so every run builds the same project. */
function random(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

/**
 * Writes the project: src/l<layer>/m<i>.js, test/t<i>.test.js and test/work.js (the CPU loop the
 * cases run, calibrated here to about CASE_MS). Returns the module to save and its source.
 */
function generateProject(dir: string): { changed: string; source(rel: string, version: number): string } {
  const rand = random(7);
  const modules: string[][] = LAYERS.map((n, layer) => Array.from({ length: n }, (_, i) => `src/l${layer}/m${i}.js`));
  const deps = new Map<string, string[]>();
  for (let layer = 0; layer < LAYERS.length; layer++) {
    for (const m of modules[layer]) {
      const below = layer === 0 ? [] : modules[layer - 1];
      const picked = new Set<string>();
      while (picked.size < Math.min(2, below.length)) picked.add(below[rand(below.length)]);
      deps.set(m, [...picked]);
    }
  }
  const all = modules.flat();
  const source = (rel: string, version: number): string => {
    const requires = (deps.get(rel) ?? []).map((d, i) => `const d${i} = require('${relativeSpecifier(rel, d)}');`);
    const sum = (deps.get(rel) ?? []).map((_, i) => ` + d${i}.value(n)`).join('');
    return `'use strict';\n${requires.join('\n')}\n// version ${version}\nexports.value = (n) => (n % 7)${sum};\n`;
  };
  for (const m of all) write(dir, m, source(m, 0));

  const iterations = calibrate();
  write(
    dir,
    'test/work.js',
    `'use strict';\nmodule.exports = function work(seed) {\n  let x = seed;\n  for (let i = 0; i < ${iterations}; i++) x = (x * 1103515245 + 12345) % 2147483647;\n  return x;\n};\n`,
  );

  const testDeps = new Map<string, string[]>();
  for (let t = 0; t < TEST_FILES; t++) {
    const rel = `test/t${t}.test.js`;
    const picked = new Set<string>();
    while (picked.size < 3) picked.add(all[rand(all.length)]);
    testDeps.set(rel, [...picked]);
    const lines = [
      `'use strict';`,
      `const assert = require('node:assert');`,
      `const work = require('./work');`,
      ...[...picked].map((m, i) => `const m${i} = require('${relativeSpecifier(rel, m)}');`),
      `describe('t${t}', () => {`,
      `  for (let c = 0; c < ${CASES_PER_FILE}; c++) {`,
      `    it('case ' + c, () => {`,
      `      assert.ok(Number.isFinite(${[...picked].map((_, i) => `m${i}.value(c)`).join(' + ')} + work(c)));`,
      `    });`,
      `  }`,
      `});`,
    ];
    write(dir, rel, lines.join('\n') + '\n');
  }

  // The module to save: the one whose dependents are closest to a tenth of the test files.
  const dependents = (m: string): number => {
    const reach = new Set<string>([m]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [file, ds] of deps) {
        if (!reach.has(file) && ds.some((d) => reach.has(d))) {
          reach.add(file);
          grew = true;
        }
      }
    }
    let n = 0;
    for (const ds of testDeps.values()) if (ds.some((d) => reach.has(d))) n++;
    return n;
  };
  let changed = all[0];
  let best = Infinity;
  for (const m of all) {
    const d = Math.abs(dependents(m) - TEST_FILES / 10);
    if (d < best) {
      best = d;
      changed = m;
    }
  }
  return { changed, source };
}

function relativeSpecifier(from: string, to: string): string {
  const rel = path.posix.relative(path.posix.dirname(from), to);
  return rel.startsWith('.') ? rel : `./${rel}`;
}

function write(dir: string, rel: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  fs.writeFileSync(path.join(dir, rel), text);
}

/**
 * Iterations of the test's CPU loop that take about CASE_MS here. The fastest of several trials
 * counts, so that a busy moment during the calibration does not shrink the workload.
 */
function calibrate(): number {
  const loop = (iterations: number): number => {
    const t0 = performance.now();
    let x = 1;
    for (let i = 0; i < iterations; i++) x = (x * 1103515245 + 12345) % 2147483647;
    if (x === -1) throw new Error('unreachable');
    return performance.now() - t0;
  };
  let iterations = 100_000;
  while (loop(iterations) < 20) iterations *= 2;
  const fastest = Math.min(...Array.from({ length: 7 }, () => loop(iterations)));
  return Math.round((iterations * CASE_MS) / fastest);
}
