import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { watch } from 'chokidar';
import { FileWatcher, WorkspaceIgnore } from '../agent/watch/files';
import type { BenchResult } from './util';

/** Files in the generated tree, all told. */
const TOTAL_FILES = 100_000;
/** Longest a child may take before it is killed. */
const CHILD_TIMEOUT_MS = 180_000;
const READY_TARGET_S = 10;
const RSS_TARGET_MB = 300;

/** What a child process reports. */
interface ChildReport {
  mode: Mode;
  readyMs: number;
  /** Peak resident set of the child, in MB (`process.resourceUsage().maxRSS`). */
  peakRssMb: number;
  /** For the FileWatcher: the change set seen after writing one file in src/ and one in node_modules/. */
  sanity?: { changed: string[]; deleted: string[] };
}

type Mode = 'conveyor' | 'chokidar' | 'chokidar-rules' | 'baseline';

/**
 * The file watcher on a large tree: 100,000 files in nested folders, of which 20,000 in
 * node_modules/ and 10,000 in a folder the .gitignore names. Time until `ready` and the peak
 * resident memory, each measured in a fresh child process so the figure is the watcher's own:
 *
 * - Conveyor's FileWatcher (git rules, node_modules, .git and .conveyor pruned before they are read);
 * - the peer: chokidar alone, watching the whole tree with no ignore rules;
 * - for reference, chokidar given the same git rules as an `ignored` function (so it prunes the
 *   same folders) but watching file by file, as it does by default;
 * - a baseline: a child that loads the same modules and watches nothing.
 */
export async function benchWatch(): Promise<BenchResult> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-watch-')));
  try {
    const t0 = Date.now();
    const counts = generateTree(dir);
    const genS = (Date.now() - t0) / 1000;
    const baseline = await runChild('baseline', dir);
    const conveyor = await runChild('conveyor', dir);
    const peer = await runChild('chokidar', dir);
    const pruned = await runChild('chokidar-rules', dir);

    const lines = [
      `tree: ${counts.total.toLocaleString('en-US')} files in ${counts.dirs.toLocaleString('en-US')} leaf folders ` +
        `(${counts.nodeModules.toLocaleString('en-US')} in node_modules/, ${counts.ignored.toLocaleString('en-US')} in a git-ignored folder), made in ${genS.toFixed(1)} s`,
      `                             ready     peak RSS`,
      row('FileWatcher (Conveyor)', conveyor),
      row('chokidar, no ignore rules', peer),
      row('chokidar + the git rules', pruned),
      row('node, no watcher', baseline),
      `ratio chokidar/Conveyor: ${(peer.readyMs / conveyor.readyMs).toFixed(1)}x faster to ready, ` +
        `${(peer.peakRssMb / conveyor.peakRssMb).toFixed(1)}x less memory ` +
        `(${((peer.peakRssMb - baseline.peakRssMb) / Math.max(1, conveyor.peakRssMb - baseline.peakRssMb)).toFixed(1)}x above the baseline)`,
      `targets: ready < ${READY_TARGET_S} s ${conveyor.readyMs / 1000 < READY_TARGET_S ? 'met' : 'MISSED'}, ` +
        `peak RSS < ${RSS_TARGET_MB} MB ${conveyor.peakRssMb < RSS_TARGET_MB ? 'met' : 'MISSED'}`,
      `check: one save in src/ and one in node_modules/ reported as ${JSON.stringify(conveyor.sanity)}`,
    ];
    return {
      name: 'watch',
      lines,
      figures: {
        files: counts.total,
        conveyorReadyMs: round(conveyor.readyMs),
        conveyorPeakRssMb: round(conveyor.peakRssMb),
        chokidarReadyMs: round(peer.readyMs),
        chokidarPeakRssMb: round(peer.peakRssMb),
        chokidarRulesReadyMs: round(pruned.readyMs),
        chokidarRulesPeakRssMb: round(pruned.peakRssMb),
        baselinePeakRssMb: round(baseline.peakRssMb),
        readyRatio: round(peer.readyMs / conveyor.readyMs),
        rssRatio: round(peer.peakRssMb / conveyor.peakRssMb),
      },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function row(label: string, r: ChildReport): string {
  const ready = r.mode === 'baseline' ? '-' : `${(r.readyMs / 1000).toFixed(2)} s`;
  return `${label.padEnd(26)}${ready.padStart(8)}  ${r.peakRssMb.toFixed(0).padStart(7)} MB`;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * src/aNN/bNN/cNN/ holds 70 files each (1,000 folders), node_modules/ 200 packages of 100
 * files, build/ (git-ignored) 100 folders of 100 files.
 */
function generateTree(dir: string): { total: number; dirs: number; nodeModules: number; ignored: number } {
  let total = 0;
  let dirs = 0;
  const fill = (folder: string, n: number, ext: string) => {
    fs.mkdirSync(folder, { recursive: true });
    dirs++;
    for (let i = 0; i < n; i++) {
      fs.writeFileSync(path.join(folder, `f${i}${ext}`), `export const v${i} = ${i};\n`);
      total++;
    }
  };
  fs.writeFileSync(path.join(dir, '.gitignore'), 'build/\n*.log\n');
  total++;
  const ignored = 10_000;
  const nodeModules = 20_000;
  for (let p = 0; p < 200; p++) fill(path.join(dir, 'node_modules', `pkg${p}`, 'lib'), 100, '.js');
  for (let b = 0; b < 100; b++) fill(path.join(dir, 'build', `out${b}`), 100, '.js');
  const perLeaf = Math.floor((TOTAL_FILES - total) / 1000);
  for (let a = 0; a < 10; a++) {
    for (let b = 0; b < 10; b++) {
      for (let c = 0; c < 10; c++) fill(path.join(dir, 'src', `a${a}`, `b${b}`, `c${c}`), perLeaf, '.ts');
    }
  }
  // Round up to the exact total at the root of src/.
  fill(path.join(dir, 'src'), TOTAL_FILES - total, '.ts');
  return { total, dirs, nodeModules, ignored };
}

function runChild(mode: Mode, dir: string): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, '--child', mode, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`the ${mode} child exited with ${signal ?? code}`);
        resolve(JSON.parse(out.slice(out.lastIndexOf('\n{') + 1)) as ChildReport);
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** The child: loads what it needs, watches, reports, exits. */
async function child(mode: Mode, dir: string): Promise<void> {
  const t0 = performance.now();
  const report: ChildReport = { mode, readyMs: 0, peakRssMb: 0 };
  if (mode === 'conveyor') {
    const w = new FileWatcher({ root: dir });
    await w.ready;
    report.readyMs = performance.now() - t0;
    const set = new Promise<{ changed: string[]; deleted: string[] }>((resolve) => w.onDidChange(resolve));
    fs.writeFileSync(path.join(dir, 'node_modules', 'pkg0', 'lib', 'f0.js'), 'changed\n');
    fs.writeFileSync(path.join(dir, 'src', 'a0', 'b0', 'c0', 'f0.ts'), 'changed\n');
    report.sanity = await set;
    await w.close();
  } else if (mode === 'chokidar' || mode === 'chokidar-rules') {
    const rules = new WorkspaceIgnore(dir);
    const ignored = (p: string, stats?: fs.Stats): boolean => {
      const rel = path.relative(dir, p).split(path.sep).join('/');
      return rel !== '' && rules.ignores(rel, stats?.isDirectory() ?? false);
    };
    const w = watch(dir, mode === 'chokidar' ? { ignoreInitial: true } : { ignoreInitial: true, ignored });
    await new Promise<void>((resolve) => w.once('ready', () => resolve()));
    report.readyMs = performance.now() - t0;
    await w.close();
  }
  report.peakRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`\n${JSON.stringify(report)}\n`);
}

if (require.main === module && process.argv[2] === '--child') {
  child(process.argv[3] as Mode, process.argv[4]).then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
