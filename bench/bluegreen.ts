import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import type { DeployStrategy, HealthCheck, Release } from '../agent/protocol';
import { ProcessRuntime } from '../agent/runtimes/process';
import { freePort, SwitchBoard } from '../agent/runtimes/proxy';
import { unpackArtifact } from '../agent/runtimes/unpack';
import { median, type BenchResult } from './util';

/** Deploys per strategy. */
const DEPLOYS = 5;
/** Concurrent clients: half reuse their connection (keep-alive), half open one per request. */
const CLIENTS = 4;
/** Bounds of one measured phase, whatever happens. */
const MAX_REQUESTS = 500_000;
const MAX_PHASE_MS = 120_000;
/** Load before the first deploy and after the last one, so each phase starts and ends steady. */
const SETTLE_REQUESTS = 200;

const CHECK: HealthCheck = { kind: 'http', path: '/healthz', timeoutMs: 10_000, intervalMs: 50 };

/** A tiny HTTP service: / answers its version, /healthz 200. No SIGTERM handler: it dies at once. */
const SERVER = `'use strict';
const http = require('node:http');
const { version } = require('./package.json');
http.createServer((req, res) => res.end(req.url === '/healthz' ? 'ok' : version))
  .listen(Number(process.env.PORT), '127.0.0.1');
`;

/**
 * Requests lost by a deploy: a steady loop of requests (4 clients, loopback) against the public
 * port during 5 blue-green deploys of the process runtime (start beside, health check, switch,
 * drain, stop), against the naive way in the same run: stop the old process, then start the new
 * one on the same port. Recreate through the switch is shown too: the switch holds new
 * connections while no instance listens, but the requests the old instance was serving when it
 * was stopped are lost.
 */
export async function benchBlueGreen(): Promise<BenchResult> {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-bg-')));
  const artifactsDir = path.join(root, 'artifacts');
  const digests: string[] = [];
  for (let v = 1; v <= 2 * DEPLOYS + 2; v++) digests.push(await storeService(artifactsDir, `v${v}`));
  try {
    const blueGreen = await measureRuntime(root, artifactsDir, digests.slice(0, DEPLOYS + 1), 'blue-green');
    const recreate = await measureRuntime(root, artifactsDir, digests.slice(DEPLOYS + 1), 'recreate');
    const naive = await measureNaive(root, artifactsDir, digests.slice(0, DEPLOYS + 1));
    const row = (label: string, p: Phase) =>
      `  ${label.padEnd(36)} ${String(p.sent).padStart(7)} sent  ${String(p.failed).padStart(5)} failed  deploy ${p.deployMs.toFixed(0).padStart(5)} ms (median)`;
    return {
      name: 'bluegreen',
      lines: [
        `${DEPLOYS} deploys of a tiny HTTP service under a steady load of ${CLIENTS} clients (half keep-alive), loopback:`,
        row('process runtime, blue-green:', blueGreen),
        row('process runtime, recreate:', recreate),
        row('naive stop-then-start, same port:', naive),
        `  requests failed during blue-green deploys: ${blueGreen.failed}   (target 0) ${blueGreen.failed === 0 ? 'PASS' : 'MISS'}`,
        ...(naive.errors.length ? [`  naive failures were: ${summarize(naive.errors)}`] : []),
        ...(blueGreen.errors.length ? [`  blue-green failures were: ${summarize(blueGreen.errors)}`] : []),
      ],
      figures: {
        deploys: DEPLOYS,
        blueGreenRequests: blueGreen.sent,
        blueGreenFailed: blueGreen.failed,
        blueGreenDeployMs: blueGreen.deployMs,
        recreateRequests: recreate.sent,
        recreateFailed: recreate.failed,
        recreateDeployMs: recreate.deployMs,
        naiveRequests: naive.sent,
        naiveFailed: naive.failed,
        naiveDeployMs: naive.deployMs,
      },
    };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

interface Phase {
  sent: number;
  failed: number;
  deployMs: number;
  errors: string[];
}

async function measureRuntime(root: string, artifactsDir: string, digests: string[], strategy: DeployStrategy): Promise<Phase> {
  const board = new SwitchBoard();
  const stateDir = path.join(root, `state-${strategy}`);
  const runtime = new ProcessRuntime(
    { allocatePort: () => board.allocatePort(), route: (e, p, u) => board.route(e, p, u), artifactsDir, stateDir },
    { traffic: board, stopGraceMs: 5000 },
  );
  const publicPort = await board.allocatePort();
  const ctx = { progress: () => undefined, signal: new AbortController().signal };
  const deploy = async (i: number, how: DeployStrategy) => {
    const r = await runtime.apply({ release: release(i + 1, digests[i]), healthCheck: CHECK, publicPort, secrets: {} }, how, ctx);
    if (!r.ok) throw new Error(`bench deploy of release ${i + 1} failed: ${r.reason}\n${r.log}`);
  };
  try {
    await deploy(0, 'recreate');
    const load = new Load(publicPort);
    const times: number[] = [];
    try {
      await load.until(SETTLE_REQUESTS);
      for (let i = 1; i < digests.length; i++) {
        const t0 = performance.now();
        await deploy(i, strategy);
        times.push(performance.now() - t0);
        await load.until(load.sent + SETTLE_REQUESTS);
      }
    } finally {
      await load.stop();
    }
    return { sent: load.sent, failed: load.failed, deployMs: median(times), errors: load.errors };
  } finally {
    await runtime.remove('bench');
    runtime.dispose();
    board.dispose();
  }
}

/** Stop the running process, start the new release on the same port, wait until it answers. */
async function measureNaive(root: string, artifactsDir: string, digests: string[]): Promise<Phase> {
  const port = await freePort();
  const dirs: string[] = [];
  for (let i = 0; i < digests.length; i++) {
    const u = await unpackArtifact({ artifactsDir, digest: digests[i], name: 'svc.tgz', dest: path.join(root, 'naive', `v${i + 1}`) });
    dirs.push(u.dir);
  }
  const start = async (dir: string): Promise<ChildProcess> => {
    const child = spawn(process.execPath, ['server.js'], { cwd: dir, env: { PATH: process.env.PATH ?? '', PORT: String(port) }, stdio: 'ignore' });
    for (;;) {
      if (child.exitCode !== null) throw new Error('the naive server exited');
      if (await answers(port)) return child;
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  let child = await start(dirs[0]);
  const load = new Load(port);
  const times: number[] = [];
  try {
    await load.until(SETTLE_REQUESTS);
    for (let i = 1; i < dirs.length; i++) {
      const t0 = performance.now();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      child = await start(dirs[i]);
      times.push(performance.now() - t0);
      await load.until(load.sent + SETTLE_REQUESTS);
    }
  } finally {
    await load.stop();
    child.kill('SIGKILL');
  }
  return { sent: load.sent, failed: load.failed, deployMs: median(times), errors: load.errors };
}

/** CLIENTS loops of GET / against 127.0.0.1:port, bounded by MAX_REQUESTS and MAX_PHASE_MS. */
class Load {
  sent = 0;
  failed = 0;
  readonly errors: string[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];
  private readonly agents: http.Agent[] = [];
  private readonly deadline = Date.now() + MAX_PHASE_MS;

  constructor(private readonly port: number) {
    this.loops = Array.from({ length: CLIENTS }, (_, i) => {
      const agent = i % 2 ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
      if (agent) this.agents.push(agent);
      return this.loop(agent);
    });
  }

  private async loop(agent: http.Agent | false): Promise<void> {
    while (!this.stopped && this.sent < MAX_REQUESTS && Date.now() < this.deadline) {
      this.sent++;
      const r = await request(this.port, agent);
      if (r !== null) {
        this.failed++;
        this.errors.push(r);
      }
    }
  }

  /** Resolves once `n` requests were sent (or the phase's bounds were reached). */
  async until(n: number): Promise<void> {
    while (this.sent < n && this.sent < MAX_REQUESTS && Date.now() < this.deadline) await new Promise((r) => setTimeout(r, 5));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
  }
}

/** One GET /: null when it answered 200, else what went wrong. */
function request(port: number, agent: http.Agent | false): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? null : `HTTP ${res.statusCode}`));
      res.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
  });
}

function summarize(errors: string[]): string {
  const counts = new Map<string, number>();
  for (const e of errors) counts.set(e, (counts.get(e) ?? 0) + 1);
  return [...counts].map(([e, n]) => `${e} ×${n}`).join(', ');
}

function release(number: number, digest: string): Release {
  return {
    environment: 'bench',
    number,
    artifact: { kind: 'files', digest, name: 'svc.tgz' },
    command: [process.execPath, 'server.js'],
    env: {},
    containerPort: 8080,
    replicas: 1,
    runId: null,
    commit: null,
    createdAt: new Date().toISOString(),
    createdBy: 'bench',
  };
}

/** Packs the service at `version` as a .tgz and stores it by sha256, as a pipeline stage would. */
async function storeService(artifactsDir: string, version: string): Promise<string> {
  const pack = tar.pack();
  pack.entry({ name: 'server.js', mode: 0o644 }, SERVER);
  pack.entry({ name: 'package.json', mode: 0o644 }, JSON.stringify({ name: 'svc', version }));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const bytes = zlib.gzipSync(Buffer.concat(chunks));
  const hex = createHash('sha256').update(bytes).digest('hex');
  fs.mkdirSync(path.join(artifactsDir, 'sha256'), { recursive: true });
  fs.writeFileSync(path.join(artifactsDir, 'sha256', hex), bytes);
  return `sha256:${hex}`;
}
