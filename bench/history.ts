import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metrics } from '../agent/metrics/metrics';
import type { AgentEvent, DeploymentInfo, Release, RunStatus, RunSummary, StageInfo } from '../agent/protocol';
import { Store } from '../agent/store/store';
import { median, type BenchResult } from './util';

const RUNS = 100_000;
const EVENTS = 1_000_000;
const HISTORY_DAYS = 365;
const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;
/** The history ends here: "now" for every query. */
const NOW = Date.parse('2026-06-01T00:00:00.000Z');
const TARGET_MS = 200;
const PER_TICK = 2_000;
/** Every Nth run deploys to staging, every Mth to production. */
const STAGING_EVERY = 8;
const PRODUCTION_EVERY = 40;

/**
 * The monitoring queries on a year of history: 100,000 runs (each pinned to a real commit of a
 * generated git repository) and 1,000,000 events, on the native engine. Each query is timed on a
 * fresh connection (cold), then as the median of repeated calls (warm), against a 200 ms target
 * and against one full scan of the events table in the same run.
 */
export async function benchHistory(): Promise<BenchResult> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-history-')));
  try {
    const repo = path.join(dir, 'repo');
    const t0 = performance.now();
    const commits = makeRepository(repo);
    const repoMs = performance.now() - t0;

    const file = path.join(dir, 'history.db');
    let now = 0;
    const store = Store.open(file, { engine: 'native', clock: () => new Date(now) });
    const t1 = performance.now();
    const written = await writeHistory(store, commits, (t) => (now = t));
    const writeMs = performance.now() - t1;
    store.dispose();
    const bytes = fs.statSync(file).size + (fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0);

    const queries = dashboardQueries(file, repo);
    const scan = await measure(file, repo, queries.scan);
    const results: { name: string; cold: number; warm: number }[] = [];
    for (const [name, make] of Object.entries(queries.list)) results.push({ name, ...(await measure(file, repo, make)) });
    const slow = results.filter((r) => r.cold > TARGET_MS || r.warm > TARGET_MS);

    const lines = [
      `a year of history on the native engine: ${fmt(RUNS)} runs, ${fmt(written.events)} events (${fmt(written.deployments)} deployments, ${fmt(written.commits)} commits in a real repository)`,
      `  generated the repository in ${(repoMs / 1000).toFixed(1)} s and wrote the history in ${(writeMs / 1000).toFixed(1)} s (${fmt(Math.round(written.events / (writeMs / 1000)))} events/s)`,
      `  database on disk: ${(bytes / 1024 / 1024).toFixed(1)} MB`,
      row('query', 'cold', 'warm', 'cold/scan', 'warm/scan', ''),
      row('SELECT count(*) FROM events (the full scan)', ms(scan.cold), ms(scan.warm), '1.00', '1.00', ''),
      ...results.map((r) => row(r.name, ms(r.cold), ms(r.warm), (r.cold / scan.cold).toFixed(2), (r.warm / scan.warm).toFixed(2), r.cold > TARGET_MS || r.warm > TARGET_MS ? 'OVER' : 'ok')),
      `  target ${TARGET_MS} ms per query, cold and warm: ${slow.length === 0 ? 'every query is under it' : `OVER for ${slow.map((s) => s.name).join('; ')}`}`,
      ...queries.answers(),
    ];
    const figures: Record<string, number> = { runs: RUNS, events: written.events, databaseBytes: bytes, scanColdMs: scan.cold, scanWarmMs: scan.warm, queriesOverTarget: slow.length };
    for (const r of results) {
      figures[`${camel(r.name)}ColdMs`] = r.cold;
      figures[`${camel(r.name)}WarmMs`] = r.warm;
    }
    return { name: 'history', lines, figures };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

interface Commit {
  sha: string;
  time: number;
}

/** Commit time of run i's commit: a little before the run is queued. */
const queuedAt = (i: number) => NOW - HISTORY_DAYS * DAY_MS + i * ((HISTORY_DAYS * DAY_MS) / RUNS);
const committedAt = (i: number) => Math.floor((queuedAt(i) - 60_000 - ((i * 7919) % 180) * 1000) / 1000) * 1000;

/** One commit per run, each changing one of 100 files, made with `git fast-import`. */
function makeRepository(repo: string): Commit[] {
  fs.mkdirSync(repo);
  const init = spawnSync('git', ['init', '-q', '-b', 'main'], { cwd: repo, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`git init failed: ${init.stderr}`);
  const chunks: string[] = [];
  for (let i = 1; i <= RUNS; i++) {
    const content = `change ${i}\nline two of change ${i}\n`;
    const message = `change ${i}: ${i % 7 === 0 ? 'fix' : 'feature'} in module ${i % 100}\n`;
    const when = `${committedAt(i) / 1000} +0000`;
    chunks.push(
      `blob\nmark :${2 * i - 1}\ndata ${Buffer.byteLength(content)}\n${content}` +
        `commit refs/heads/main\nmark :${2 * i}\nauthor Dev <dev@example.com> ${when}\ncommitter Dev <dev@example.com> ${when}\n` +
        `data ${Buffer.byteLength(message)}\n${message}${i > 1 ? `from :${2 * i - 2}\n` : ''}M 100644 :${2 * i - 1} src/module${i % 100}.txt\n\n`,
    );
  }
  const marks = path.join(repo, '..', 'marks');
  const r = spawnSync('git', ['fast-import', '--quiet', `--export-marks=${marks}`], { cwd: repo, input: chunks.join(''), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`git fast-import failed: ${r.stderr}`);
  const commits: Commit[] = new Array(RUNS + 1);
  for (const line of fs.readFileSync(marks, 'utf8').split('\n')) {
    const m = /^:(\d+) ([0-9a-f]+)$/.exec(line);
    if (m && Number(m[1]) % 2 === 0) {
      const i = Number(m[1]) / 2;
      commits[i] = { sha: m[2], time: committedAt(i) };
    }
  }
  return commits;
}

/**
 * 100,000 runs over a year, as the engine and the deployer append them: two stages each with a
 * test report, a staging deploy every 8th green run and a production deploy every 40th (some
 * failing, some rolled back, with health events), config changes, and log lines to make exactly
 * 1,000,000 events. Deterministic. The test stage is planted 50% slower in one week.
 */
async function writeHistory(store: Store, commits: Commit[], setClock: (t: number) => void): Promise<{ events: number; deployments: number; commits: number }> {
  const rnd = prng(7);
  let events = 0;
  let deploymentId = 0;
  const releases: Record<string, number> = { staging: 0, production: 0 };
  let productionLive = 0;
  let productionFailing = false;
  let pending = 0;
  let clock = 0;
  const slowWeek = NOW - 3 * WEEK_MS;
  const iso = (t: number) => new Date(t).toISOString();

  for (let i = 1; i <= RUNS; i++) {
    const out: [number, AgentEvent][] = [];
    const queued = queuedAt(i);
    const trigger: RunSummary['trigger'] = i % 10 === 0 ? 'manual' : 'commit';
    const failAt = rnd() < 0.08 ? (rnd() < 0.4 ? 'build' : 'test') : null;
    const summary = (status: RunStatus, started: number | null, finished: number | null): RunSummary => ({
      id: i,
      pipeline: 'app',
      trigger,
      status,
      commit: commits[i].sha,
      commitTime: iso(commits[i].time),
      branch: 'main',
      title: `change ${i}: ${i % 7 === 0 ? 'fix' : 'feature'} in module ${i % 100}`,
      requestedStages: ['build', 'test', 'deploy-staging', 'deploy-production'],
      queuedAt: iso(queued),
      startedAt: started === null ? null : iso(started),
      finishedAt: finished === null ? null : iso(finished),
      reason: null,
      impact: null,
    });
    out.push([queued, { type: 'run.queued', run: summary('queued', null, null) }]);
    out.push([queued + 500, { type: 'run.started', run: summary('running', queued + 500, null) }]);
    let t = queued + 1000;
    let status: RunStatus = 'succeeded';
    const stage = (name: string, typicalMs: number): boolean => {
      const slow = name === 'test' && t >= slowWeek && t < slowWeek + WEEK_MS ? 1.5 : 1;
      const took = Math.round(typicalMs * slow * Math.exp((rnd() + rnd() + rnd() - 1.5) * 0.5));
      const failed = failAt === name;
      const info: StageInfo = { runId: i, name, kind: 'command', status: 'running', needs: [], attempt: 1, startedAt: iso(t), finishedAt: null, message: null };
      out.push([t, { type: 'stage.changed', stage: info }]);
      if (name === 'test') {
        out.push([t + took - 10, { type: 'tests.reported', runId: i, stage: name, attempt: 1, passed: failed ? 41 : 42, failed: failed ? 1 : 0, skipped: 0, results: [] }]);
      }
      t += took;
      out.push([t, { type: 'stage.changed', stage: { ...info, status: failed ? 'failed' : 'succeeded', finishedAt: iso(t), message: failed ? 'exit code 1 in step 1' : null } }]);
      if (failed) status = 'failed';
      return !failed;
    };
    const deploy = (environment: 'staging' | 'production'): void => {
      const number = ++releases[environment];
      const release: Release = {
        environment,
        number,
        artifact: { kind: 'files', digest: `sha256:${commits[i].sha.padEnd(64, '0')}`, name: 'app.tgz' },
        command: ['node', 'server.js'],
        env: {},
        containerPort: 8080,
        replicas: 1,
        runId: i,
        commit: commits[i].sha,
        createdAt: iso(t),
        createdBy: 'pipeline',
      };
      out.push([t, { type: 'release.created', release }]);
      const failed = rnd() < (environment === 'production' ? 0.08 : 0.05);
      const d: DeploymentInfo = {
        id: ++deploymentId,
        environment,
        fromRelease: environment === 'production' ? productionLive || null : number - 1 || null,
        toRelease: number,
        strategy: 'blue-green',
        trigger: 'pipeline',
        status: 'queued',
        reason: null,
        runId: i,
        stage: `deploy-${environment}`,
        requestedBy: 'pipeline',
        queuedAt: iso(t),
        startedAt: null,
        finishedAt: null,
      };
      out.push([t, { type: 'deployment.changed', deployment: d }]);
      out.push([t + 100, { type: 'deployment.changed', deployment: { ...d, status: 'running', startedAt: iso(t + 100) } }]);
      out.push([t + 200, { type: 'deployment.progress', deploymentId: d.id, environment, message: `deploying ${environment}@${number}` }]);
      const took = Math.round(20_000 + rnd() * 20_000);
      const end = t + 100 + took;
      const final: DeploymentInfo = { ...d, status: failed ? 'failed' : 'succeeded', startedAt: iso(t + 100), finishedAt: iso(end), reason: failed ? 'health check timed out after 30s' : null };
      out.push([end, { type: 'deployment.changed', deployment: final }]);
      t = end + 100;
      if (environment !== 'production') return;
      if (failed && !productionFailing) {
        productionFailing = true;
        out.push([t, { type: 'environment.health', environment, health: 'Degraded', release: productionLive || null }]);
      } else if (!failed) {
        if (productionFailing) out.push([t, { type: 'environment.health', environment, health: 'Healthy', release: number }]);
        productionFailing = false;
        const from = productionLive;
        productionLive = number;
        if (from && rnd() < 0.03) {
          // A bad release caught by people: rolled back a minute later.
          const back: DeploymentInfo = { ...final, id: ++deploymentId, fromRelease: number, toRelease: from, trigger: 'rollback', runId: null, stage: null, requestedBy: 'cli', queuedAt: iso(t + 30_000), startedAt: iso(t + 30_000), finishedAt: iso(t + 60_000), reason: null };
          out.push([t + 30_000, { type: 'deployment.changed', deployment: { ...back, status: 'queued', startedAt: null, finishedAt: null } }]);
          out.push([t + 60_000, { type: 'deployment.changed', deployment: back }]);
          productionLive = from;
        }
      }
    };
    if (stage('build', 40_000)) {
      if (stage('test', 90_000)) {
        if (i % STAGING_EVERY === 0) deploy('staging');
        if (i % PRODUCTION_EVERY === 0) deploy('production');
      }
    }
    out.push([t, { type: 'run.finished', run: summary(status, queued + 500, t) }]);
    if (i % 5000 === 0) out.push([t + 1000, { type: 'config.changed', state: { valid: true, file: '/work/app/conveyor.yml', config: {} as never, diagnostics: [] } }]);

    // Log lines after the build, enough to keep the total on course for exactly EVENTS (a few
    // kept back for the last run, which deploys everywhere).
    const logs = i === RUNS ? EVENTS - events - out.length : Math.max(0, Math.round(((EVENTS - 100) * i) / RUNS) - events - out.length);
    const at = out.findIndex(([, e]) => e.type === 'stage.changed' && e.stage.status !== 'running');
    const logTime = out[at][0];
    const lines: [number, AgentEvent][] = Array.from({ length: logs }, (_, k) => [logTime, { type: 'log', runId: i, stage: 'build', attempt: 1, step: 0, text: `[${k}] compiled module ${i % 100} in ${100 + (k % 50)} ms\n` }]);
    out.splice(at, 0, ...lines);

    // The store's clock only moves forward, as the agent's does when runs overlap.
    for (const [time, e] of out.sort((a, b) => a[0] - b[0])) {
      clock = Math.max(clock, time);
      setClock(clock);
      store.append(e);
    }
    events += out.length;
    pending += out.length;
    if (pending >= PER_TICK) {
      pending = 0;
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  store.flush();
  return { events, deployments: deploymentId, commits: RUNS };
}

/** A query made for one connection: a function to call, as often as needed. */
type MakeQuery = (m: Metrics, s: Store) => () => unknown;

/** Each query as a dashboard asks it, the full scan to compare them with, and what they answered. */
function dashboardQueries(file: string, repo: string): { scan: MakeQuery; list: Record<string, MakeQuery>; answers: () => string[] } {
  const iso = (t: number) => new Date(t).toISOString();
  const unwrap = <T>(r: { ok: true; value: T } | { ok: false; error: { error: string } }): T => {
    if (!r.ok) throw new Error(r.error.error);
    return r.value;
  };
  const probe = Store.open(file, { engine: 'native' });
  const lastSeq = probe.lastSeq;
  const failedDeploy = probe.database
    .prepare("SELECT id FROM deployments WHERE environment = 'production' AND status = 'failed' ORDER BY id DESC LIMIT 1")
    .get<{ id: number }>()!.id;
  const someCommit = probe.listRuns(1)[0].commit!;
  const m = new Metrics(probe, { repo, clock: () => new Date(NOW) });
  const dora = unwrap(m.dora({ environment: 'production', days: 30 }));
  const year = unwrap(m.dora({ environment: 'production', days: 365 }));
  const trends = unwrap(m.durations({ weeks: 12 }));
  const builds = unwrap(m.builds({ days: 30 }));
  probe.dispose();
  return {
    scan: (_m, s) => {
      const stmt = s.database.prepare('SELECT count(*) AS n FROM events');
      return () => stmt.get();
    },
    list: {
      'DORA keys, production, 30 days': (q) => () => unwrap(q.dora({ environment: 'production', days: 30 })),
      'DORA keys, production, 365 days': (q) => () => unwrap(q.dora({ environment: 'production', days: 365 })),
      'builds per day, 30 days': (q) => () => unwrap(q.builds({ days: 30 })),
      'builds per day, 365 days': (q) => () => unwrap(q.builds({ days: 365 })),
      'stage p50/p95 per week, 12 weeks': (q) => () => unwrap(q.durations({ weeks: 12 })),
      'stage p50/p95 per week, 52 weeks': (q) => () => unwrap(q.durations({ weeks: 52 })),
      'slower than usual? stage test': (q) => () => unwrap(q.slowdown({ stage: 'test' }, { durationMs: 150_000, startedAt: iso(NOW) })),
      'slower than usual? production deploys': (q) => () => unwrap(q.slowdown({ environment: 'production' }, { durationMs: 45_000, startedAt: iso(NOW) })),
      'timeline, newest 50': (q) => () => unwrap(q.timeline({})),
      'timeline, 50 from the middle': (q) => () => unwrap(q.timeline({ before: Math.floor(lastSeq / 2) })),
      'timeline, environment production': (q) => () => unwrap(q.timeline({ environment: 'production' })),
      'timeline, stage test': (q) => () => unwrap(q.timeline({ stage: 'test' })),
      'timeline, kind deploy': (q) => () => unwrap(q.timeline({ kinds: ['deploy'] })),
      'timeline, kinds commit + config': (q) => () => unwrap(q.timeline({ kinds: ['commit', 'config'] })),
      'timeline, text "timed out"': (q) => () => unwrap(q.timeline({ text: 'timed out' })),
      'timeline, text found nowhere (whole span)': (q) => () => unwrap(q.timeline({ text: 'no such words' })),
      'timeline, text + logs': (q) => () => unwrap(q.timeline({ text: 'module 42', includeLogs: true })),
      'what changed before the last failed deploy': (q) => () => q.changesBefore({ deployment: failedDeploy }).then(unwrap),
      "one commit's diff": (q) => () => q.commitDiff(someCommit).then(unwrap),
    },
    answers: () => [
      `  production, last 30 days: ${dora.deploymentFrequency.deployments} deploys (${dora.deploymentFrequency.perDay.toFixed(2)}/day, ${dora.deploymentFrequency.band}), lead time median ${min(dora.leadTime.medianMs)} p90 ${min(dora.leadTime.p90Ms)} (${dora.leadTime.band}), change failure rate ${pct(dora.changeFailureRate.rate)} (${dora.changeFailureRate.band}), time to restore median ${min(dora.timeToRestore.medianMs)} over ${dora.timeToRestore.incidents.length} incidents (${dora.timeToRestore.band})`,
      `  production, last 365 days: ${year.deploymentFrequency.deployments} deploys, change failure rate ${pct(year.changeFailureRate.rate)}, ${year.timeToRestore.incidents.length} incidents`,
      `  builds, last 30 days: ${fmt(builds.runs)} runs, success rate ${pct(builds.successRate)}`,
      `  regression weeks found in 12 weeks: ${trends.stages.flatMap((s) => s.weeks.filter((w) => w.regression).map((w) => `${s.stage} week of ${w.from.slice(0, 10)}`)).join(', ') || 'none'} (planted: test, week of ${iso(NOW - 3 * WEEK_MS).slice(0, 10)})`,
    ],
  };
}

/**
 * Cold: the first call on a fresh connection. Warm: the median of repeated calls (at least 5,
 * about 300 ms of them) on that connection. Each query gets its own connection.
 */
async function measure(file: string, repo: string, make: MakeQuery): Promise<{ cold: number; warm: number }> {
  const store = Store.open(file, { engine: 'native' });
  try {
    const fn = make(new Metrics(store, { repo, clock: () => new Date(NOW) }), store);
    const t0 = performance.now();
    await fn();
    const cold = performance.now() - t0;
    const times: number[] = [];
    const deadline = performance.now() + 300;
    while (times.length < 5 || (performance.now() < deadline && times.length < 200)) {
      const t = performance.now();
      await fn();
      times.push(performance.now() - t);
    }
    return { cold, warm: median(times) };
  } finally {
    store.dispose();
  }
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

const fmt = (n: number) => n.toLocaleString('en');
const ms = (n: number) => `${n < 10 ? n.toFixed(2) : n.toFixed(1)} ms`;
const min = (n: number | null) => (n === null ? '-' : n < 3_600_000 ? `${(n / 60_000).toFixed(1)} min` : `${(n / 3_600_000).toFixed(1)} h`);
const pct = (n: number | null) => (n === null ? '-' : `${(n * 100).toFixed(1)}%`);
const row = (label: string, a: string, b: string, c: string, d: string, e: string) =>
  `  ${label.padEnd(48)}${a.padStart(11)}${b.padStart(11)}${c.padStart(11)}${d.padStart(11)}${e.padStart(6)}`;
const camel = (s: string) =>
  s
    .replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))
    .replace(/^./, (c) => c.toLowerCase());
