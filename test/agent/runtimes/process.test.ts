import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import type { HealthCheck, Release } from '../../../agent/protocol';
import { ProcessRuntime } from '../../../agent/runtimes/process';
import { SwitchBoard } from '../../../agent/runtimes/proxy';
import type { ApplyContext, ApplyResult, DesiredState, RuntimeServices } from '../../../agent/runtimes/runtime';
import { resolvePhysical, unpackArtifact, UnpackError } from '../../../agent/runtimes/unpack';

// ---------------------------------------------------------------------------------------------
// Fixtures: a tiny HTTP service packed as a .tgz and stored by sha256, as a pipeline stage would

type Entry = { name: string; content?: string; type?: 'file' | 'symlink' | 'directory'; linkname?: string; mode?: number };

async function tarball(entries: Entry[], gzip = true): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') pack.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.content ?? '');
    else pack.entry({ name: e.name, type, linkname: e.linkname, mode: e.mode ?? 0o755 });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const tarBytes = Buffer.concat(chunks);
  return gzip ? zlib.gzipSync(tarBytes) : tarBytes;
}

function store(artifactsDir: string, bytes: Buffer): string {
  const hex = createHash('sha256').update(bytes).digest('hex');
  fs.mkdirSync(path.join(artifactsDir, 'sha256'), { recursive: true });
  fs.writeFileSync(path.join(artifactsDir, 'sha256', hex), bytes);
  return `sha256:${hex}`;
}

/**
 * The service: answers / with its version, /secret with $API_KEY, /healthz with 200 (mode ok),
 * 500 (unhealthy); mode exit prints a reason and exits 3 at once.
 */
function service(version: string, mode: 'ok' | 'unhealthy' | 'exit'): Entry[] {
  const server = `'use strict';
const http = require('node:http');
const { version, mode } = require('../package.json');
if (mode === 'exit') {
  console.error('boom: CONFIG_URL is not set');
  process.exit(3);
}
console.log('service ' + version + ' starting, pid ' + process.pid);
http.createServer((req, res) => {
  if (req.url === '/healthz') {
    if (mode === 'unhealthy') {
      console.error('healthz: the database is unreachable');
      res.writeHead(500);
      return res.end('no');
    }
    return res.end('ok');
  }
  if (req.url === '/secret') return res.end(process.env.API_KEY || '');
  res.end(version);
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening on ' + process.env.PORT));
`;
  return [
    { name: 'src/', type: 'directory' },
    { name: 'src/server.js', content: server },
    { name: 'package.json', content: JSON.stringify({ name: 'svc', version, mode }) },
  ];
}

const ENV = 'staging';
const CHECK: HealthCheck = { kind: 'http', path: '/healthz', timeoutMs: 4000, intervalMs: 100 };
const SECRETS = { API_KEY: 's3cret-value' };

function release(number: number, digest: string, name = 'dist/svc.tgz', environment = ENV): Release {
  return {
    environment,
    number,
    artifact: { kind: 'files', digest, name },
    command: ['node', 'src/server.js'],
    env: { GREETING: 'hello' },
    containerPort: 8080,
    replicas: 1,
    runId: null,
    commit: null,
    createdAt: new Date().toISOString(),
    createdBy: 'test',
  };
}

function context(): ApplyContext & { lines: string[] } {
  const lines: string[] = [];
  return { lines, progress: (m) => lines.push(m), signal: new AbortController().signal };
}

function get(port: number, urlPath = '/', agent: http.Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Pids of the processes whose working folder is under `dir` (the instances). */
function processesIn(dir: string): number[] {
  const real = fs.realpathSync(dir);
  const out: number[] = [];
  for (const n of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const cwd = fs.readlinkSync(`/proc/${n}/cwd`);
      if (cwd === real || cwd.startsWith(real + '/')) out.push(Number(n));
    } catch {
      // gone or not ours
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function expectOk(r: ApplyResult): asserts r is Extract<ApplyResult, { ok: true }> {
  if (!r.ok) assert.fail(`the deploy failed: ${r.reason}\n${r.log}`);
}

// ---------------------------------------------------------------------------------------------

describe('process runtime', function () {
  this.timeout(120_000);
  let root: string;
  let artifactsDir: string;
  let stateDir: string;
  let board: SwitchBoard;
  let runtime: ProcessRuntime;
  let publicPort: number;
  const digests: Record<string, string> = {};

  const services = (b: SwitchBoard): RuntimeServices => ({
    allocatePort: () => b.allocatePort(),
    route: (env, port, upstream) => b.route(env, port, upstream),
    artifactsDir,
    stateDir,
  });
  const makeRuntime = (b: SwitchBoard) =>
    new ProcessRuntime(services(b), { traffic: b, stopGraceMs: 2000, pollMs: 200, restartDelayMs: { first: 100, most: 1000 } });
  const desired = (n: number, digest: string, env = ENV, port = publicPort): DesiredState => ({
    release: release(n, digest, 'dist/svc.tgz', env),
    healthCheck: CHECK,
    publicPort: port,
    secrets: SECRETS,
  });

  before(async () => {
    root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-process-')));
    artifactsDir = path.join(root, 'artifacts');
    stateDir = path.join(root, 'state');
    for (const [key, version, mode] of [
      ['v1', 'v1', 'ok'],
      ['v2', 'v2', 'ok'],
      ['unhealthy', 'v3', 'unhealthy'],
      ['exit', 'v4', 'exit'],
    ] as const) {
      digests[key] = store(artifactsDir, await tarball(service(version, mode)));
    }
    board = new SwitchBoard();
    runtime = makeRuntime(board);
    publicPort = await board.allocatePort();
  });

  after(() => {
    runtime?.dispose();
    board?.dispose();
    for (const pid of fs.existsSync(stateDir) ? processesIn(stateDir) : []) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('deploys release 1 (recreate) and serves it on the public port through the switch', async () => {
    assert.equal(await runtime.health(ENV), 'Missing');
    const ctx = context();
    const r = await runtime.apply(desired(1, digests.v1), 'recreate', ctx);
    expectOk(r);
    assert.equal((await get(publicPort)).body, 'v1');
    assert.equal((await get(publicPort, '/secret')).body, SECRETS.API_KEY, 'the instance has the secrets');
    assert.equal(r.live.instances.length, 1);
    const inst = r.live.instances[0];
    assert.equal(inst.release, 1);
    assert.equal(inst.state, 'running');
    assert.equal(inst.env.GREETING, 'hello');
    assert.equal(inst.env.PORT, inst.address!.split(':')[1]);
    assert.ok(!Object.values(inst.env).includes(SECRETS.API_KEY), 'the live state never shows a secret');
    assert.ok(ctx.lines.some((l) => l.startsWith('unpacked dist/svc.tgz')), ctx.lines.join('\n'));
    assert.equal(await runtime.health(ENV), 'Healthy');
    assert.ok(fs.readFileSync(inst.labels['conveyor.log'], 'utf8').includes('service v1 starting'), 'the output goes to the log file');
    const state = JSON.parse(fs.readFileSync(path.join(stateDir, 'environments', `${ENV}.json`), 'utf8'));
    assert.equal(state.instances[0].pid, Number(inst.id));
    assert.ok(!JSON.stringify(state).includes(SECRETS.API_KEY), 'the state file holds no secret');
  });

  it('switches to release 2 (blue-green) without failing a request, with keep-alive on and off', async () => {
    const before = await runtime.observe(ENV);
    const oldPid = Number(before.instances[0].id);
    let stop = false;
    const loop = async (agent: http.Agent | false) => {
      const answers: string[] = [];
      const errors: string[] = [];
      while (!stop) {
        try {
          const r = await get(publicPort, '/', agent);
          if (r.status === 200) answers.push(r.body);
          else errors.push(`HTTP ${r.status}: ${r.body}`);
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
      return { answers, errors };
    };
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const loops = [loop(false), loop(keepAlive)];
    try {
      await until(() => board.get(ENV)!.stats.requests >= 20, 'the loops to run');
      const r = await runtime.apply(desired(2, digests.v2), 'blue-green', context());
      expectOk(r);
      const requestsAtSwitch = board.get(ENV)!.stats.requests;
      await until(() => board.get(ENV)!.stats.requests >= requestsAtSwitch + 20, 'the loops to run on release 2');
    } finally {
      stop = true;
    }
    const [closed, kept] = await Promise.all(loops);
    keepAlive.destroy();
    for (const [what, l] of [['keep-alive off', closed], ['keep-alive on', kept]] as const) {
      assert.deepEqual(l.errors, [], `${what}: no request failed`);
      assert.equal(l.answers[0], 'v1', `${what}: answered by release 1 first`);
      const first2 = l.answers.indexOf('v2');
      assert.ok(first2 > 0, `${what}: then by release 2`);
      assert.ok(l.answers.slice(first2).every((a) => a === 'v2'), `${what}: and only by release 2 after the switch`);
    }
    const after = await runtime.observe(ENV);
    assert.deepEqual(after.instances.map((i) => [i.release, i.state]), [[2, 'running']]);
    assert.equal(alive(oldPid), false, 'release 1 was stopped');
  });

  it('rolls back a release whose health check fails, with the reason and its log lines', async () => {
    const ctx = context();
    const r = await runtime.apply(desired(3, digests.unhealthy), 'blue-green', ctx);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /^release 3 never got healthy: not healthy within 4s: GET \/healthz answered 500; release 2 keeps serving$/);
    assert.match(r.log, /healthz: the database is unreachable/);
    assert.match(r.log, /service v3 starting/);
    assert.equal(r.restored, true);
    assert.equal((await get(publicPort)).body, 'v2');
    const live = await runtime.observe(ENV);
    assert.deepEqual(live.instances.map((i) => i.release), [2]);
    assert.equal(processesIn(stateDir).length, 1, 'release 3 was stopped');
  });

  it('rolls back a release that exits at once, naming the exit and showing what it printed', async () => {
    const r = await runtime.apply(desired(4, digests.exit), 'blue-green', context());
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /^release 4 exited with code 3 before it got healthy; release 2 keeps serving$/);
    assert.match(r.log, /boom: CONFIG_URL is not set/);
    assert.equal(r.restored, true);
    assert.equal((await get(publicPort)).body, 'v2');
  });

  it('recreate: a failing release is replaced by the previous one again, secrets included', async () => {
    const r = await runtime.apply(desired(5, digests.unhealthy), 'recreate', context());
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /^release 5 never got healthy: .*GET \/healthz answered 500; release 2 was started again$/);
    assert.match(r.log, /healthz: the database is unreachable/);
    assert.equal(r.restored, true);
    assert.equal((await get(publicPort)).body, 'v2');
    assert.equal((await get(publicPort, '/secret')).body, SECRETS.API_KEY);
    assert.equal(await runtime.health(ENV), 'Healthy');
    assert.equal(processesIn(stateDir).length, 1);
  });

  it('restarts an instance killed with SIGKILL, and health comes back to Healthy', async () => {
    let changes = 0;
    const sub = runtime.watch(ENV, () => changes++);
    try {
      const pid = Number((await runtime.observe(ENV)).instances[0].id);
      process.kill(pid, 'SIGKILL');
      const back = await until(async () => {
        const i = (await runtime.observe(ENV)).instances[0];
        return i && i.id !== String(pid) && i.state === 'running' ? i : undefined;
      }, 'the instance to be started again');
      assert.equal(back.labels['conveyor.restarts'], '1');
      assert.equal(back.labels['conveyor.last-exit'], undefined);
      assert.ok(changes >= 2, 'watchers heard of the exit and of the restart');
      await until(async () => (await runtime.health(ENV)) === 'Healthy', 'Healthy');
      assert.equal((await get(publicPort)).body, 'v2');
      assert.equal((await get(publicPort, '/secret')).body, SECRETS.API_KEY);
      assert.match(fs.readFileSync(back.labels['conveyor.log'], 'utf8'), /was killed by SIGKILL[\s\S]*starting it again/);
    } finally {
      sub.dispose();
    }
  });

  it('tells watchers when the state file changes', async () => {
    let changes = 0;
    const sub = runtime.watch(ENV, () => changes++);
    try {
      const file = path.join(stateDir, 'environments', `${ENV}.json`);
      fs.writeFileSync(file, fs.readFileSync(file));
      await until(() => changes > 0, 'a change to be reported');
    } finally {
      sub.dispose();
    }
  });

  it('adopts the running release after an agent restart: no second process, the switch comes back', async () => {
    const before = (await runtime.observe(ENV)).instances[0];
    runtime.dispose();
    board.dispose();
    // The agent is gone: the public port is not served, the instance still answers on its own.
    await assert.rejects(get(publicPort), /ECONNREFUSED/);
    assert.equal((await get(Number(before.address!.split(':')[1]))).body, 'v2');

    board = new SwitchBoard();
    runtime = makeRuntime(board);
    assert.deepEqual(await runtime.restore(), [ENV]);
    const after = await runtime.observe(ENV);
    assert.deepEqual(after.instances.map((i) => [i.id, i.release, i.state]), [[before.id, 2, 'running']]);
    assert.deepEqual(processesIn(stateDir), [Number(before.id)], 'no duplicate process was started');
    assert.equal((await get(publicPort)).body, 'v2');
    assert.equal(await runtime.health(ENV), 'Healthy');

    // Supervised after the restart too, with the environment it was started with.
    process.kill(Number(before.id), 'SIGKILL');
    await until(async () => {
      const i = (await runtime.observe(ENV)).instances[0];
      return i && i.id !== before.id && i.state !== 'exited';
    }, 'the adopted instance to be started again');
    await until(async () => (await runtime.health(ENV)) === 'Healthy', 'Healthy');
    assert.equal((await get(publicPort, '/secret')).body, SECRETS.API_KEY);
    assert.equal(processesIn(stateDir).length, 1);
  });

  it('says clearly when the public port is taken, and leaves nothing running', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = (holder.address() as net.AddressInfo).port;
    try {
      const r = await runtime.apply(desired(1, digests.v1, 'blocked', taken), 'blue-green', context());
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.match(r.reason, new RegExp(`port ${taken} on 127\\.0\\.0\\.1 is in use by another program, so environment "blocked" cannot be served there: stop that program`));
      assert.equal(r.restored, false);
      assert.deepEqual((await runtime.observe('blocked')).instances, []);
      assert.equal(await runtime.health('blocked'), 'Missing');
      assert.deepEqual(processesIn(path.join(stateDir, 'releases', 'blocked')), []);
    } finally {
      holder.close();
    }
  });

  it('refuses to deploy a tarball that escapes its folder, and leaves the environment as it was', async () => {
    const bad = store(artifactsDir, await tarball([{ name: '../../escape.js', content: 'x' }]));
    const r = await runtime.apply(desired(9, bad), 'blue-green', context());
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /^release 9 cannot be unpacked: refused to unpack dist\/svc\.tgz: "\.\.\/\.\.\/escape\.js" is a path outside the release folder$/);
    assert.equal(r.restored, true);
    assert.equal((await get(publicPort)).body, 'v2');
    assert.equal(fs.existsSync(path.join(stateDir, 'releases', ENV, 'escape.js')), false);
    assert.equal(processesIn(stateDir).length, 1);
  });

  it('remove() stops every process of the environment', async () => {
    const pids = processesIn(stateDir);
    assert.equal(pids.length, 1);
    await runtime.remove(ENV);
    assert.deepEqual(processesIn(stateDir), []);
    assert.equal(alive(pids[0]), false);
    assert.deepEqual((await runtime.observe(ENV)).instances, []);
    assert.equal(await runtime.health(ENV), 'Missing');
    assert.equal(fs.existsSync(path.join(stateDir, 'environments', `${ENV}.json`)), false);
    await assert.rejects(get(publicPort), /ECONNREFUSED/);
  });
});

describe('unpacking a files artifact', function () {
  let root: string;
  let artifactsDir: string;
  before(() => {
    root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-unpack-')));
    artifactsDir = path.join(root, 'artifacts');
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('refuses a tarball with a path or a link leading out of the folder, and a damaged artifact', async () => {
    const parent = path.join(root, 'unpack');
    fs.mkdirSync(parent, { recursive: true });
    const cases: [string, Entry[], RegExp][] = [
      ['dot-dot', [{ name: 'ok.txt', content: 'x' }, { name: '../evil.txt', content: 'x' }], /refused to unpack bad\.tgz: "\.\.\/evil\.txt" is a path outside the release folder/],
      ['absolute', [{ name: '/tmp/evil.txt', content: 'x' }], /"\/tmp\/evil\.txt" is a path outside the release folder/],
      ['symlink-out', [{ name: 'up', type: 'symlink', linkname: '../..' }], /the link "up" points to "\.\.\/\.\.", outside the release folder/],
      ['through-link', [{ name: 'out', type: 'symlink', linkname: '.' }, { name: 'out/out/l', type: 'symlink', linkname: '../evil' }], /the link "out\/out\/l" points to "\.\.\/evil", outside the release folder/],
      // Each link points inside when it is made; together they lead out.
      ['late-link', [{ name: 'a', type: 'symlink', linkname: 'b/..' }, { name: 'b', type: 'symlink', linkname: '.' }], /the link "a" leads outside the release folder/],
      [
        'write-through-link',
        [{ name: 'a', type: 'symlink', linkname: 'b/..' }, { name: 'b', type: 'symlink', linkname: '.' }, { name: 'a/evil.txt', content: 'x' }],
        /"a\/evil\.txt" would be written outside the release folder \(through a link\)/,
      ],
    ];
    for (const [name, entries, expected] of cases) {
      const digest = store(artifactsDir, await tarball(entries));
      const dest = path.join(parent, name, 'release');
      await assert.rejects(unpackArtifact({ artifactsDir, digest, name: 'bad.tgz', dest }), (e: Error) => {
        assert.ok(e instanceof UnpackError, `${name}: ${e.stack}`);
        assert.match(e.message, expected, name);
        return true;
      });
      assert.equal(fs.existsSync(dest), false, `${name}: no folder is left`);
      assert.deepEqual(fs.readdirSync(path.join(parent, name)), [], `${name}: nor a temporary one`);
      assert.equal(fs.existsSync(path.join(parent, name, 'evil.txt')) || fs.existsSync(path.join(parent, 'evil.txt')), false);
    }

    // A stored file that does not match its digest.
    const damaged = store(artifactsDir, await tarball(service('v9', 'ok')));
    fs.appendFileSync(path.join(artifactsDir, 'sha256', damaged.slice(7)), 'tampered');
    await assert.rejects(unpackArtifact({ artifactsDir, digest: damaged, name: 'svc.tgz', dest: path.join(parent, 'damaged') }), /is damaged: its content hashes to sha256:[0-9a-f]{64}/);
  });

  it('unpacks once (a second call finds the folder), keeps links inside, and copies a single file', async () => {
    const digest = store(artifactsDir, await tarball([...service('v7', 'ok'), { name: 'lib', type: 'symlink', linkname: 'src' }, { name: 'bin/run', content: '#!/bin/sh\necho run\n', mode: 0o755 }]));
    const dest = path.join(root, 'once', 'release');
    const first = await unpackArtifact({ artifactsDir, digest, name: 'svc.tar.gz', dest });
    assert.deepEqual(first, { dir: dest, format: 'tar.gz', created: true });
    assert.equal(fs.readlinkSync(path.join(dest, 'lib')), 'src');
    assert.equal(resolvePhysical(path.join(dest, 'lib', 'server.js')), path.join(dest, 'src', 'server.js'));
    assert.equal(fs.statSync(path.join(dest, 'bin/run')).mode & 0o777, 0o755);
    const again = await unpackArtifact({ artifactsDir, digest, name: 'svc.tar.gz', dest });
    assert.equal(again.created, false);

    const plain = store(artifactsDir, await tarball(service('v8', 'ok'), false));
    assert.equal((await unpackArtifact({ artifactsDir, digest: plain, name: 'svc.tar', dest: path.join(root, 'plain') })).format, 'tar');
    assert.ok(fs.existsSync(path.join(root, 'plain', 'src', 'server.js')));

    const script = store(artifactsDir, Buffer.from('#!/bin/sh\necho hi\n'));
    const single = await unpackArtifact({ artifactsDir, digest: script, name: 'dist/tool', dest: path.join(root, 'single'), executable: true });
    assert.equal(single.format, 'file');
    assert.equal(fs.statSync(path.join(root, 'single', 'tool')).mode & 0o777, 0o755);
  });
});
