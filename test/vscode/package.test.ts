/**
 * The packaged extension: `npm run package` makes conveyor.vsix; installed with
 * `--install-extension` into a fresh code-server extensions folder, it starts its own bundled
 * agent for a repository with a conveyor.yml, from the .vsix's files alone.
 */
import * as assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AgentDiscovery, Health, RunDetail, RunSummary } from '../../agent/protocol';
import { codeServerEntry, openWorkbench, repoRoot, startCodeServer, testOutputDir } from './harness';
import { pipelineYaml, TempRepo, WORKSPACE_SETTINGS } from './suite/repo';

const MAX_VSIX_BYTES = 5 * 1024 * 1024;

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

function readDiscovery(folder: string): AgentDiscovery | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(folder, '.conveyor', 'agent.json'), 'utf8')) as AgentDiscovery;
  } catch {
    return undefined;
  }
}

async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs: number): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await Promise.resolve(check()).catch(() => undefined);
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('VS Code extension package (.vsix)', function () {
  this.timeout(8 * 60_000);
  const root = repoRoot();
  const vsix = path.join(root, 'conveyor.vsix');
  let scratch: string;

  before(function () {
    codeServerEntry();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-vsix-test-'));
  });

  after(function () {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('npm run package makes a .vsix under 5 MB holding the extension, the agent and its native store', async function () {
    fs.rmSync(vsix, { force: true });
    await run('npm', ['run', 'package'], { cwd: root, timeoutMs: 5 * 60_000 });
    const size = fs.statSync(vsix).size;
    console.log(`      conveyor.vsix: ${(size / 1024 / 1024).toFixed(2)} MB`);
    fs.writeFileSync(path.join(testOutputDir(), 'vscode-vsix.json'), JSON.stringify({ bytes: size, measuredAt: new Date().toISOString() }, null, 2) + '\n');
    assert.ok(size < MAX_VSIX_BYTES, `${size} bytes`);
    const files = execFileSync('unzip', ['-Z1', vsix], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const f of [
      'extension/package.json',
      'extension/dist/extension.js',
      'extension/dist/cli.js',
      'extension/dist/reportWorker.js',
      'extension/dist/conveyor.schema.json',
      'extension/media/conveyor.svg',
      'extension/node_modules/better-sqlite3/lib/index.js',
      'extension/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      'extension/node_modules/bindings/bindings.js',
      'extension/node_modules/file-uri-to-path/index.js',
    ]) {
      assert.ok(files.includes(f), `${f} is in the .vsix`);
    }
    const unwanted = files.filter((f) => /\.map$|^extension\/(out|agent|extension|test|src|examples|scripts)\/|\.ts$/.test(f));
    assert.deepEqual(unwanted, [], 'no sources, source maps or tests');
  });

  it('installed into a fresh code-server, starts its own agent from the .vsix files alone; a run succeeds', async function () {
    assert.ok(fs.existsSync(vsix), 'the previous test made the .vsix');
    const extensionsDir = path.join(scratch, 'extensions');
    const userData = path.join(scratch, 'install-user-data');
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: path.join(scratch, 'xdg'), XDG_DATA_HOME: path.join(scratch, 'xdg'), XDG_CACHE_HOME: path.join(scratch, 'xdg') };
    delete env.NODE_PATH;
    const out = await run(process.execPath, [codeServerEntry(), '--extensions-dir', extensionsDir, '--user-data-dir', userData, '--install-extension', vsix], {
      cwd: scratch,
      env,
      timeoutMs: 2 * 60_000,
    });
    const installed = fs.readdirSync(extensionsDir).filter((d) => d.startsWith('conveyor.conveyor-'));
    assert.equal(installed.length, 1, `installed: ${fs.readdirSync(extensionsDir).join(', ')}\n${out}`);
    const extDir = path.join(extensionsDir, installed[0]);
    assert.ok(!extDir.startsWith(root + path.sep), 'the installed extension lives outside the checkout');

    const repo = new TempRepo({
      'conveyor.yml': pipelineYaml('- name: build\n  run: echo "built from the vsix"\n- name: test\n  needs: [build]\n  run: echo ok'),
      '.vscode/settings.json': WORKSPACE_SETTINGS,
    });
    try {
      const server = await startCodeServer({ folder: repo.dir, extensionsDir, env: { NODE_PATH: '' } });
      try {
        const { close } = await openWorkbench(server, { folder: repo.dir });
        try {
          const d = await until(() => readDiscovery(repo.dir), 'the packaged extension to start an agent (discovery file)', 120_000);
          const argv = fs.readFileSync(`/proc/${d.pid}/cmdline`, 'latin1').split('\0');
          assert.ok(argv.includes(path.join(extDir, 'dist', 'cli.js')), `the agent is the .vsix's own: ${argv.join(' ')}`);
          // Nothing the agent loaded comes from the checkout (its node_modules are out of reach).
          const maps = fs.readFileSync(`/proc/${d.pid}/maps`, 'utf8');
          assert.ok(!maps.includes(root + path.sep), 'the agent maps no file of the checkout');
          const sqlite = maps.split('\n').find((l) => /better_sqlite3\.node|node-sqlite3-wasm/.test(l));
          if (sqlite) assert.ok(sqlite.includes(extDir), `the SQLite binding comes from the .vsix: ${sqlite}`);
          console.log(`      agent pid ${d.pid}: ${argv.slice(1, 3).join(' ')}; SQLite: ${sqlite ? sqlite.split(/\s+/).pop() : 'no native binding mapped'}`);

          const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
            const res = await fetch(`http://127.0.0.1:${d.port}/api${route}`, {
              method,
              headers: { authorization: `Bearer ${d.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
              body: body ? JSON.stringify(body) : undefined,
            });
            const text = await res.text();
            assert.ok(res.ok, `${method} ${route}: ${res.status} ${text}`);
            return JSON.parse(text) as T;
          };
          const health = await api<Health>('GET', '/health');
          assert.equal(health.ok, true);
          assert.equal(health.pid, d.pid);
          console.log(`      SQLite engine: ${(health as Health & { sqlite?: string }).sqlite ?? 'not reported'}`);
          const started = await api<RunSummary>('POST', '/runs', { trigger: 'api' });
          const done = await until(async () => {
            const r = await api<RunDetail>('GET', `/runs/${started.id}`);
            return ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(r.status) ? r : undefined;
          }, 'the run to finish', 60_000);
          assert.equal(done.status, 'succeeded', JSON.stringify(done));
          assert.deepEqual(
            done.stages.map((s) => [s.name, s.status]),
            [
              ['build', 'succeeded'],
              ['test', 'succeeded'],
            ],
          );
        } finally {
          await close();
        }
      } finally {
        await server.stop();
      }
    } finally {
      repo.dispose();
    }
  });

  it("the .vsix's agent also runs on its WebAssembly SQLite (for editors whose runtime cannot load the native one)", async function () {
    const extensionsDir = path.join(scratch, 'extensions');
    const installed = fs.existsSync(extensionsDir) ? fs.readdirSync(extensionsDir).filter((d) => d.startsWith('conveyor.conveyor-')) : [];
    assert.equal(installed.length, 1, 'the previous test installed the .vsix');
    const cli = path.join(extensionsDir, installed[0], 'dist', 'cli.js');
    const repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: build\n  run: echo wasm') });
    const env: NodeJS.ProcessEnv = { ...process.env, CONVEYOR_SQLITE: 'wasm' };
    delete env.NODE_PATH;
    const { spawn } = await import('node:child_process');
    const agent = spawn(process.execPath, [cli, 'agent', '--workspace', repo.dir, '--no-commit-trigger'], { cwd: repo.dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    agent.stderr!.on('data', (c) => (log += c));
    try {
      const d = await until(() => {
        const x = readDiscovery(repo.dir);
        return x && x.pid === agent.pid ? x : undefined;
      }, 'the agent on WebAssembly SQLite to start', 60_000).catch((e: Error) => {
        throw new Error(`${e.message}; agent log: ${log}`);
      });
      const headers = { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' };
      const health = (await (await fetch(`http://127.0.0.1:${d.port}/api/health`, { headers })).json()) as Health & { sqlite?: string };
      assert.equal(health.sqlite, 'wasm', JSON.stringify(health));
      const started = (await (await fetch(`http://127.0.0.1:${d.port}/api/runs`, { method: 'POST', headers, body: '{}' })).json()) as RunSummary;
      const done = await until(async () => {
        const r = (await (await fetch(`http://127.0.0.1:${d.port}/api/runs/${started.id}`, { headers })).json()) as RunDetail;
        return ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(r.status) ? r : undefined;
      }, 'the run to finish', 60_000);
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
      const maps = fs.readFileSync(`/proc/${d.pid}/maps`, 'utf8');
      assert.ok(!maps.includes(root + path.sep), 'nothing of the checkout is loaded');
    } finally {
      agent.kill('SIGTERM');
      await new Promise((r) => (agent.exitCode !== null ? r(undefined) : agent.once('exit', r)));
      repo.dispose();
    }
  });
});
