import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AgentEvent, RunStatus, RunSummary, StageInfo, StepInfo } from '../agent/protocol';
import { MIGRATIONS } from '../agent/store/migrations';
import { openDatabase, type EngineName } from '../agent/store/sqlite';
import { Store } from '../agent/store/store';
import { median, type BenchResult } from './util';

const ENGINES: readonly EngineName[] = ['native', 'wasm'];
const APPEND_EVENTS = 200_000;
const PER_TICK = 2_000;
const TRICKLE_COMMITS = 2_000;
const RUNS = 20_000;
const STAGES = ['build', 'lint', 'test', 'deploy'] as const;
const LOGS_PER_RUN = 5;
/** 2 run events, 2 per stage, 2 per step (one step a stage), the logs, one test report, the end. */
const EVENTS_PER_RUN = 2 + STAGES.length * 4 + LOGS_PER_RUN + 1 + 1;
const HISTORY_DAYS = 35;
const DAY_MS = 86_400_000;
/** The history ends here, so that "the last 30 days" is the same window for both engines. */
const NOW = Date.parse('2026-06-01T00:00:00.000Z');
const COLD_OPENS = 5;

type PerEngine = Record<EngineName, number>;

/**
 * The store on each SQLite engine, measured in the same run on the same data: appends through
 * `Store.append` (batched and one event a tick), the dashboard queries on a generated history of
 * 20,000 runs and 500,000 events, the size of the file and the cold open in a fresh process.
 * Also the commit rate of the two journal modes both engines could share (WAL in exclusive
 * locking mode, as the store uses, against a rollback journal), which decides the file format.
 */
export async function benchStore(): Promise<BenchResult> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-store-')));
  try {
    const versions = {} as Record<EngineName, string>;
    const append = {} as PerEngine;
    const appendSize = {} as PerEngine;
    const trickle = {} as PerEngine;
    const generate = {} as PerEngine;
    const historySize = {} as PerEngine;
    const queries: Record<string, PerEngine> = {};
    const answers = {} as Record<EngineName, string>;
    const coldOpen = {} as PerEngine;
    const warmOpen = {} as PerEngine;
    const journal: Record<string, PerEngine> = { 'WAL, exclusive lock': {} as PerEngine, 'rollback journal (DELETE)': {} as PerEngine };

    // Warm up both engines (JIT, WASM compile) on a small workload before measuring either.
    for (const engine of ENGINES) {
      const file = path.join(dir, `warm-${engine}.db`);
      const s = Store.open(file, { engine });
      versions[engine] = s.engine.sqliteVersion;
      await produce(s, 20_000);
      s.dispose();
    }

    // (a) Appends: batched, as a busy run produces them, and one event a tick, as a quiet one does.
    for (const engine of ENGINES) {
      const file = path.join(dir, `append-${engine}.db`);
      const s = Store.open(file, { engine });
      const t0 = process.hrtime.bigint();
      await produce(s, APPEND_EVENTS);
      append[engine] = APPEND_EVENTS / seconds(t0);
      const t1 = process.hrtime.bigint();
      for (let i = 0; i < TRICKLE_COMMITS; i++) {
        s.append(logEvent(1, 'one line'));
        await tick();
      }
      trickle[engine] = TRICKLE_COMMITS / seconds(t1);
      s.dispose();
      appendSize[engine] = fs.statSync(file).size;
    }

    // The journal modes, on the bare driver: one small transaction after another.
    for (const engine of ENGINES) {
      journal['WAL, exclusive lock'][engine] = commitRate(path.join(dir, `wal-${engine}.db`), engine, 'WAL');
      journal['rollback journal (DELETE)'][engine] = commitRate(path.join(dir, `delete-${engine}.db`), engine, 'DELETE');
    }

    // (b) A history of 20,000 runs, then the dashboard's queries on it, from a fresh open.
    for (const engine of ENGINES) {
      const file = path.join(dir, `history-${engine}.db`);
      const s = Store.open(file, { engine });
      const t0 = process.hrtime.bigint();
      await writeHistory(s);
      generate[engine] = (RUNS * EVENTS_PER_RUN) / seconds(t0);
      s.dispose();
      historySize[engine] = fs.statSync(file).size;

      const r = Store.open(file, { engine });
      const q = dashboardQueries(r);
      for (const [name, fn] of Object.entries(q)) {
        (queries[name] ??= {} as PerEngine)[engine] = timeQuery(fn);
      }
      answers[engine] = JSON.stringify([q['runs per day, 30 days, success rate'](), q['stage duration p50/p95, 4 weeks'](), r.eventsAfter(250_000, 1000).map((e) => e.seq)]);
      r.dispose();
    }

    // (d) Opening the history in a fresh process: loading the engine, the schema check, the statements.
    const storeModule = path.join(__dirname, '..', 'agent', 'store', 'store.js');
    const samples: Record<EngineName, number[]> = { native: [], wasm: [] };
    const warm: Record<EngineName, number[]> = { native: [], wasm: [] };
    for (let i = 0; i < COLD_OPENS; i++) {
      for (const engine of ENGINES) {
        const file = path.join(dir, `history-${engine}.db`);
        const m = openInFreshProcess(storeModule, file, engine);
        samples[engine].push(m.cold);
        warm[engine].push(m.warm);
      }
    }
    for (const engine of ENGINES) {
      coldOpen[engine] = median(samples[engine]);
      warmOpen[engine] = median(warm[engine]);
    }

    const same = answers.native === answers.wasm;
    const lines = [
      `SQLite engines under the store, same run, same data (native: better-sqlite3, SQLite ${versions.native}; wasm: node-sqlite3-wasm, SQLite ${versions.wasm}):`,
      row('', 'native', 'wasm', 'wasm/native'),
      row(`append ${fmt(APPEND_EVENTS)} log events, ${fmt(PER_TICK)}/tick`, rate(append.native), rate(append.wasm), ratio(append)),
      row(`append one event a tick (${fmt(TRICKLE_COMMITS)} commits)`, rate(trickle.native), rate(trickle.wasm), ratio(trickle)),
      row(`write a history: ${fmt(RUNS)} runs, ${fmt(RUNS * EVENTS_PER_RUN)} events`, rate(generate.native), rate(generate.wasm), ratio(generate)),
      ...Object.entries(queries).map(([name, t]) => row(`  ${name}`, ms(t.native), ms(t.wasm), ratio(t))),
      row('database size, the history', mb(historySize.native), mb(historySize.wasm), ratio(historySize)),
      row(`database size, ${fmt(APPEND_EVENTS + TRICKLE_COMMITS)} log events`, mb(appendSize.native), mb(appendSize.wasm), ratio(appendSize)),
      row(`open the history, fresh process (median of ${COLD_OPENS})`, ms(coldOpen.native), ms(coldOpen.wasm), ratio(coldOpen)),
      row('open it again in that process', ms(warmOpen.native), ms(warmOpen.wasm), ratio(warmOpen)),
      `  the queries answer the same on both engines: ${same ? 'yes' : 'NO'}`,
      `commit rate of one-row transactions, bare driver, synchronous=NORMAL:`,
      ...Object.entries(journal).map(([name, r]) => row(`  ${name}`, rate(r.native, 'commits/s'), rate(r.wasm, 'commits/s'), ratio(r))),
      `  (rates: wasm/native below 1 is slower; times and sizes: above 1 is slower or larger)`,
    ];

    const figures: Record<string, number> = { queriesAgree: same ? 1 : 0 };
    const put = (key: string, v: PerEngine) => {
      figures[`${key}Native`] = v.native;
      figures[`${key}Wasm`] = v.wasm;
      figures[`${key}Ratio`] = v.wasm / v.native;
    };
    put('appendEventsPerSecond', append);
    put('trickleEventsPerSecond', trickle);
    put('historyEventsPerSecond', generate);
    for (const [name, t] of Object.entries(queries)) put(`query${camel(name)}Ms`, t);
    put('historyBytes', historySize);
    put('appendBytes', appendSize);
    put('coldOpenMs', coldOpen);
    put('warmOpenMs', warmOpen);
    put('walExclusiveCommitsPerSecond', journal['WAL, exclusive lock']);
    put('deleteJournalCommitsPerSecond', journal['rollback journal (DELETE)']);
    return { name: 'store', lines, figures };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

async function produce(store: Store, count: number): Promise<void> {
  const text = 'x'.repeat(80);
  for (let i = 0; i < count; i += PER_TICK) {
    const n = Math.min(PER_TICK, count - i);
    for (let j = 0; j < n; j++) store.append(logEvent(1, text));
    await tick();
  }
  store.flush();
}

/**
 * 20,000 runs over 35 days, each with four stages of one step, five log lines and a test report,
 * appended as the engine would append them. Deterministic: both engines get the same rows.
 */
async function writeHistory(store: Store): Promise<void> {
  const rnd = prng(42);
  const start = NOW - HISTORY_DAYS * DAY_MS;
  const spacing = (HISTORY_DAYS * DAY_MS) / RUNS;
  const typical: Record<string, number> = { build: 40_000, lint: 8_000, test: 90_000, deploy: 25_000 };
  let pending = 0;
  for (let id = 1; id <= RUNS; id++) {
    const queued = start + id * spacing;
    let t = queued + 500 + rnd() * 2_000;
    const failAt = rnd() < 0.12 ? Math.floor(rnd() * STAGES.length) : -1;
    const summary = (status: RunStatus, finishedAt: number | null): RunSummary => ({
      id,
      pipeline: 'app',
      trigger: id % 5 === 0 ? 'manual' : 'commit',
      status,
      commit: (id * 2654435761).toString(16).padStart(8, '0').slice(0, 8),
      branch: 'main',
      title: `change ${id}`,
      requestedStages: [...STAGES],
      queuedAt: iso(queued),
      startedAt: status === 'queued' ? null : iso(queued + 500),
      finishedAt: finishedAt === null ? null : iso(finishedAt),
      reason: null,
      impact: null,
    });
    const events: AgentEvent[] = [
      { type: 'run.queued', run: summary('queued', null) },
      { type: 'run.started', run: summary('running', null) },
    ];
    let status: RunStatus = 'succeeded';
    STAGES.forEach((name, i) => {
      const began = t;
      // Log-normal-ish durations around each stage's typical time.
      const ms = Math.round(typical[name] * Math.exp((rnd() + rnd() + rnd() - 1.5) * 0.8));
      t += ms;
      const failed = i === failAt;
      const end: StageInfo['status'] = failed ? 'failed' : 'succeeded';
      if (failed) status = 'failed';
      const stageInfo = (s: StageInfo['status'], finishedAt: number | null): StageInfo => ({
        runId: id,
        name,
        kind: 'command',
        status: s,
        needs: i ? [STAGES[i - 1]] : [],
        attempt: 1,
        startedAt: iso(began),
        finishedAt: finishedAt === null ? null : iso(finishedAt),
        message: failed && finishedAt !== null ? 'exit code 1 in step 1' : null,
      });
      const stepInfo = (s: StepInfo['status'], finishedAt: number | null): StepInfo => ({
        runId: id,
        stage: name,
        attempt: 1,
        index: 0,
        command: `npm run ${name}`,
        status: s,
        exitCode: finishedAt === null ? null : failed ? 1 : 0,
        startedAt: iso(began),
        finishedAt: finishedAt === null ? null : iso(finishedAt),
      });
      events.push({ type: 'stage.changed', stage: stageInfo('running', null) });
      events.push({ type: 'step.changed', step: stepInfo('running', null) });
      if (name === 'test') {
        events.push({
          type: 'tests.reported',
          runId: id,
          stage: name,
          attempt: 1,
          passed: 9,
          failed: 1,
          skipped: 0,
          results: Array.from({ length: 10 }, (_, k) => ({
            suite: 'api',
            name: `case ${k}`,
            status: k === 9 && failed ? ('failed' as const) : ('passed' as const),
            durationMs: Math.round(rnd() * 500),
            message: null,
            expected: null,
            actual: null,
            stack: null,
            location: null,
          })),
        });
      }
      events.push({ type: 'step.changed', step: stepInfo(end, t) });
      events.push({ type: 'stage.changed', stage: stageInfo(end, t) });
    });
    for (let k = 0; k < LOGS_PER_RUN; k++) events.push(logEvent(id, `line ${k} of run ${id}: ${'.'.repeat(40)}`));
    events.push({ type: 'run.finished', run: summary(status, t) });
    for (const e of events) store.append(e);
    pending += events.length;
    if (pending >= PER_TICK) {
      pending = 0;
      await tick();
    }
  }
  store.flush();
}

/** What a dashboard asks of the history. Each returns its answer, so both engines can be compared. */
function dashboardQueries(store: Store): Record<string, () => unknown> {
  const db = store.database;
  const since30 = iso(NOW - 30 * DAY_MS);
  const since28 = iso(NOW - 28 * DAY_MS);
  const perDay = db.prepare(`
    SELECT substr(queued_at, 1, 10) AS day, COUNT(*) AS runs,
           ROUND(100.0 * SUM(status = 'succeeded') / COUNT(*), 1) AS success_pct
    FROM runs WHERE queued_at >= ? GROUP BY day ORDER BY day`);
  const durations = db.prepare(`
    WITH d AS (
      SELECT name, (julianday(finished_at) - julianday(started_at)) * 86400000.0 AS ms
      FROM stages WHERE started_at >= ? AND finished_at IS NOT NULL AND status = 'succeeded'
    ), r AS (
      SELECT name, ms, ROW_NUMBER() OVER (PARTITION BY name ORDER BY ms) AS rn, COUNT(*) OVER (PARTITION BY name) AS n FROM d
    )
    SELECT name, n, ROUND(MIN(CASE WHEN rn >= 0.50 * n THEN ms END)) AS p50_ms, ROUND(MIN(CASE WHEN rn >= 0.95 * n THEN ms END)) AS p95_ms
    FROM r GROUP BY name ORDER BY name`);
  let k = 0;
  const nextId = () => 1 + ((k++ * 7919) % RUNS);
  const nextSeq = () => (k++ * 104_729) % (RUNS * EVENTS_PER_RUN - 1000);
  return {
    'list the 50 newest runs': () => store.listRuns(50),
    "one run's detail": () => store.getRun(nextId()),
    'events since N, 1,000 of them': () => store.eventsAfter(nextSeq(), 1000),
    'runs per day, 30 days, success rate': () => perDay.all(since30),
    'stage duration p50/p95, 4 weeks': () => durations.all(since28),
  };
}

/** Median time of one call, over enough calls to fill ~300 ms (at least 5), after a warm-up. */
function timeQuery(fn: () => unknown): number {
  fn();
  const times: number[] = [];
  const deadline = performance.now() + 300;
  while (times.length < 5 || (performance.now() < deadline && times.length < 2000)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** One-row transactions per second on the bare driver, in the given journal mode. */
function commitRate(file: string, engine: EngineName, mode: 'WAL' | 'DELETE'): number {
  const db = openDatabase(file, { engine });
  try {
    if (mode === 'WAL') db.pragma('locking_mode', 'EXCLUSIVE');
    db.pragma('journal_mode', mode);
    db.pragma('synchronous', 'NORMAL');
    db.exec(MIGRATIONS[0]);
    const ins = db.prepare('INSERT INTO events (seq, time, type, run_id, body) VALUES (?, ?, ?, ?, ?)');
    const body = JSON.stringify(logEvent(1, 'one line'));
    const n = 500;
    const t0 = process.hrtime.bigint();
    for (let i = 1; i <= n; i++) db.transaction(() => ins.run(i, iso(NOW), 'log', 1, body));
    return n / seconds(t0);
  } finally {
    db.close();
  }
}

function openInFreshProcess(storeModule: string, file: string, engine: EngineName): { cold: number; warm: number } {
  const code = `
    const t0 = process.hrtime.bigint();
    const { Store } = require(${JSON.stringify(storeModule)});
    let s = Store.open(${JSON.stringify(file)}, { engine: ${JSON.stringify(engine)} });
    s.listRuns(1);
    const cold = Number(process.hrtime.bigint() - t0) / 1e6;
    s.dispose();
    const t1 = process.hrtime.bigint();
    s = Store.open(${JSON.stringify(file)}, { engine: ${JSON.stringify(engine)} });
    s.listRuns(1);
    const warm = Number(process.hrtime.bigint() - t1) / 1e6;
    s.dispose();
    process.stdout.write(JSON.stringify({ cold, warm }));
  `;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the open in a fresh process failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { cold: number; warm: number };
}

function logEvent(runId: number, text: string): AgentEvent {
  return { type: 'log', runId, stage: 'build', attempt: 1, step: 0, text };
}

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const iso = (t: number) => new Date(t).toISOString();
const fmt = (n: number) => n.toLocaleString('en');
const rate = (n: number, unit = '/s') => `${fmt(Math.round(n))} ${unit}`;
const ms = (n: number) => `${n < 10 ? n.toFixed(2) : n.toFixed(1)} ms`;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
const ratio = (v: PerEngine) => `${(v.wasm / v.native).toFixed(2)}`;
const row = (label: string, a: string, b: string, c: string) => `  ${label.padEnd(52)}${a.padStart(18)}${b.padStart(18)}${c.padStart(13)}`;
const camel = (s: string) =>
  s
    .replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))
    .replace(/^./, (c) => c.toUpperCase());
