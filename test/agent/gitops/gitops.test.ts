import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Agent } from '../../../agent/agent';
import type { EnvironmentStatus, SyncInfo } from '../../../agent/protocol';
import { cli, finished, startAgent, startRun, TempRepo, until } from '../../support/fixtures';
import { httpGet } from '../../support/docker';
import { PACKAGE_STAGE, STAGING_STAGE, stopDeployTest } from '../../support/service';

/** Answers $GREETING, so that a change of the desired state's env shows in what it serves. */
const SERVER = `
const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === '/healthz') { res.writeHead(200); return res.end('ok'); }
  res.end(process.env.GREETING || 'hello');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const CONFIG = (extra = '') => `
pipeline:
  stages:
${PACKAGE_STAGE}
${STAGING_STAGE}
environments:
  staging:
    promotion: auto
    start: node server.js
    env: { GREETING: from-config }
    health: { http: /healthz, timeout: 10s, interval: 100ms }
${extra}`;

/** A checkout of the state branch, as a person editing the desired state would have. */
class StateCheckout {
  readonly dir: string;
  constructor(source: string, branch = 'conveyor/state') {
    this.dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-state-')));
    fs.rmSync(this.dir, { recursive: true });
    execFileSync('git', ['clone', '-q', '-b', branch, source, this.dir]);
    this.git('config', 'user.email', 'alice@example.com');
    this.git('config', 'user.name', 'Alice');
  }
  git(...args: string[]): string {
    return execFileSync('git', args, { cwd: this.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }
  edit(file: string, change: (text: string) => string, message: string): void {
    const f = path.join(this.dir, file);
    fs.writeFileSync(f, change(fs.readFileSync(f, 'utf8')));
    this.git('commit', '-q', '-am', message);
    this.git('push', '-q', 'origin', 'HEAD');
  }
  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}


/** The desired state in git, end to end on the process runtime: real git, real processes, real HTTP. */
describe('gitops: desired state in git', function () {
  this.timeout(120_000);
  let repo: TempRepo;
  let agent: Agent;
  const env = async (): Promise<EnvironmentStatus> => (await agent.deployer.status()).find((e) => e.name === 'staging')!;
  const sync = (): SyncInfo | null => agent.reconciler!.status('staging');
  const stateLog = () => repo.git('log', '--format=%s%n%b%x00', 'conveyor/state').split('\0').map((s) => s.trim()).filter(Boolean);
  const served = async () => {
    const r = await httpGet((await env()).url!.replace('http://', ''), '/');
    return 'body' in r ? r.body : r.error;
  };

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG(), 'server.js': SERVER });
    agent = await startAgent(repo, { pollMs: 200 });
  });

  after(async () => {
    await stopDeployTest(agent, repo, ['staging']);
  });

  it('a deploy commits the state file first, linking the run and the source commit, and ends Synced', async () => {
    const source = repo.git('rev-parse', 'HEAD').trim();
    const id = await startRun(agent, { trigger: 'manual' });
    const run = await finished(agent, id);
    assert.equal(run.status, 'succeeded');
    const text = repo.git('show', 'conveyor/state:environments/staging.yml');
    assert.match(text, /environment: staging/);
    assert.match(text, /kind: files/);
    assert.match(text, /GREETING: from-config/);
    assert.match(text, new RegExp(`commit: ${source}`));
    const [subject] = stateLog();
    assert.match(subject, /^deploy staging@1: app\.tgz@[0-9a-f]{12}/);
    assert.match(subject, new RegExp(`Run: #${id} \\(stage staging\\)`));
    assert.match(subject, new RegExp(`Source-Commit: ${source}`));
    // The user's branch and working tree are untouched.
    assert.equal(repo.git('rev-parse', '--abbrev-ref', 'HEAD').trim(), 'main');
    assert.equal(repo.git('status', '--porcelain').trim(), '');
    await until(() => sync()?.sync === 'Synced' && sync()?.health === 'Healthy', 'Synced and Healthy');
    assert.equal(await served(), 'from-config');
  });

  it('a commit to the state file by anyone is picked up and applied (the pull path)', async () => {
    const checkout = new StateCheckout(repo.dir);
    try {
      checkout.edit('environments/staging.yml', (t) => t.replace('GREETING: from-config', 'GREETING: from-git'), 'Say hello from git');
      await until(async () => (await served()) === 'from-git' && agent.store.deployments('staging', 1)[0].status === 'succeeded', 'the new env served', 30_000);
      const live = (await env()).live!;
      assert.equal(live.number, 2);
      assert.equal(live.env.GREETING, 'from-git');
      const d = agent.store.deployments('staging', 1)[0];
      assert.equal(d.trigger, 'sync');
      assert.equal(d.status, 'succeeded');
      await until(() => sync()?.sync === 'Synced', 'Synced again');
      // Applying what git says commits nothing more.
      assert.match(stateLog()[0], /^Say hello from git/);
    } finally {
      checkout.dispose();
    }
  });

  it('a rollback is a revert commit, and git and the live state agree', async () => {
    const r = agent.deployer.rollback('staging', undefined, 'tester (test)');
    assert.ok(r.ok);
    const d = await r.value.done;
    assert.equal(d.status, 'succeeded');
    assert.equal((await env()).live!.number, 1);
    const [message] = stateLog();
    assert.match(message, /^Revert "Say hello from git"/);
    assert.match(message, /This reverts commit [0-9a-f]{40}\./);
    assert.match(repo.git('show', 'conveyor/state:environments/staging.yml'), /GREETING: from-config/);
    await until(() => sync()?.sync === 'Synced', 'Synced after the rollback');
    assert.equal(await served(), 'from-config');
    // The reconciler does not fight the rollback: a later look changes nothing.
    await agent.reconciler!.checkAll();
    assert.equal((await env()).live!.number, 1);
    assert.equal(agent.store.deployments('staging', 1)[0].id, d.id);
  });

  it('an invalid state file is an error at its line, and the last good state stays live', async () => {
    const checkout = new StateCheckout(repo.dir);
    try {
      const before = agent.store.deployments('staging', 1)[0].id;
      checkout.edit('environments/staging.yml', (t) => t.replace(/replicas: \d+/, 'replicas: two'), 'Break the replicas');
      await until(() => sync()?.error?.line, 'the error with its line');
      const info = sync()!;
      const line = fs.readFileSync(path.join(checkout.dir, 'environments/staging.yml'), 'utf8').split('\n').findIndex((l) => l.startsWith('replicas:')) + 1;
      assert.equal(info.error!.line, line);
      assert.match(info.error!.message, new RegExp(`environments/staging\\.yml:${line}:\\d+: "replicas" must be a whole number from 1 to 50, not "two"`));
      assert.match(info.error!.message, /the last valid desired state stays live/);
      assert.equal(info.sync, 'Synced');
      assert.equal(agent.store.deployments('staging', 1)[0].id, before, 'nothing was deployed');
      assert.equal(await served(), 'from-config');
      checkout.edit('environments/staging.yml', (t) => t.replace('replicas: two', 'replicas: 1'), 'Fix the replicas');
      await until(() => sync() && sync()!.error === null, 'the error gone');
    } finally {
      checkout.dispose();
    }
  });

  it('a state file git cannot read is reported, never committed over, and a deploy fails clearly; repaired, it is applied', async () => {
    const before = agent.store.deployments('staging', 1)[0].id;
    // Someone's change lands whose object is corrupt on disk (a bad disk, a bad copy).
    const text = repo.git('show', 'conveyor/state:environments/staging.yml').replace('GREETING: from-config', 'GREETING: unreadable');
    const index = repo.path('.git', 'test-index');
    const git = (args: string[], input?: string) => execFileSync('git', args, { cwd: repo.dir, env: { ...process.env, GIT_INDEX_FILE: index }, input, encoding: 'utf8' }).trim();
    git(['read-tree', 'conveyor/state']);
    const blob = git(['hash-object', '-w', '--stdin'], text);
    git(['update-index', '--add', '--cacheinfo', `100644,${blob},environments/staging.yml`]);
    const commit = git(['commit-tree', git(['write-tree']), '-p', 'conveyor/state', '-m', 'Greet from an unreadable object']);
    fs.rmSync(index);
    const object = repo.path('.git', 'objects', blob.slice(0, 2), blob.slice(2));
    const good = fs.readFileSync(object);
    fs.chmodSync(object, 0o644);
    fs.writeFileSync(object, 'not a zlib stream');
    git(['update-ref', 'refs/heads/conveyor/state', commit]);
    await until(() => /git cannot read environments\/staging\.yml/.test(sync()?.error?.message ?? ''), 'the unreadable file reported');
    const info = sync()!;
    assert.match(info.error!.message, new RegExp(`^git cannot read environments/staging\\.yml at ${commit.slice(0, 7)}: fatal: .*corrupt.*git fsck.*; the last valid desired state stays live$`));
    assert.equal(info.revision, commit);
    assert.equal(info.sync, 'Synced');
    // A deploy must commit first: it fails and says why, and changes nothing.
    const r = agent.deployer.rollback('staging', undefined, 'tester (test)');
    assert.ok(r.ok);
    const d = await r.value.done;
    assert.equal(d.status, 'failed');
    assert.match(d.reason ?? '', /^could not commit the desired state to git, so nothing was changed: git cannot read environments\/staging\.yml/);
    await agent.reconciler!.checkAll();
    assert.equal(repo.git('rev-parse', 'conveyor/state').trim(), commit, 'nothing was committed over the unreadable file');
    assert.equal(await served(), 'from-config');
    assert.ok(agent.store.deployments('staging', 2).every((x) => x.id === d.id || x.id === before), 'nothing else was deployed');
    // The object repaired in place (the branch does not move): read and applied.
    fs.writeFileSync(object, good);
    await until(async () => sync()?.error === null && (await served()) === 'unreadable', 'the repaired state applied');
    assert.equal(repo.git('rev-parse', 'conveyor/state').trim(), commit);
    const checkout = new StateCheckout(repo.dir);
    try {
      checkout.edit('environments/staging.yml', (t) => t.replace('GREETING: unreadable', 'GREETING: from-config'), 'Greet from config again');
      await until(async () => (await served()) === 'from-config' && sync()?.sync === 'Synced', 'back to from-config');
    } finally {
      checkout.dispose();
    }
  });

  it('paused, a change in git is reported and not applied; "Preview sync" shows it and "Sync now" applies it', async () => {
    const paused = await agent.reconciler!.setPaused('staging', true);
    assert.ok(paused.ok && paused.value.paused);
    const checkout = new StateCheckout(repo.dir);
    try {
      checkout.edit('environments/staging.yml', (t) => t.replace('GREETING: from-config', 'GREETING: while-paused'), 'Change while paused');
      await until(() => sync()?.sync === 'OutOfSync' && sync()!.causes.includes('desired'), 'OutOfSync (desired)');
      const item = sync()!.diff.find((i) => i.path === 'env.GREETING')!;
      assert.deepEqual([item.desired, item.live], ['while-paused', 'from-config']);
      assert.equal(await served(), 'from-config');
      const preview = await agent.reconciler!.sync('staging', true, 'tester (test)');
      assert.ok(preview.ok);
      assert.equal(preview.value.dryRun, true);
      assert.equal(preview.value.deployment, null);
      assert.match(preview.value.plan.join('\n'), /deploy app\.tgz@[0-9a-f]{12} to staging as git says \(env\.GREETING\)/);
      assert.equal(await served(), 'from-config');
      const now = await agent.reconciler!.sync('staging', false, 'tester (test)');
      assert.ok(now.ok && now.value.deployment);
      await until(async () => (await served()) === 'while-paused' && agent.store.deployments('staging', 1)[0].status === 'succeeded', 'applied by Sync now');
      const view = await agent.reconciler!.view('staging');
      assert.ok(view.ok);
      assert.equal(view.value.branch, 'conveyor/state');
      assert.ok(view.value.lines['env.GREETING'] > 0);
      assert.match(view.value.desired!.split('\n')[view.value.lines['env.GREETING'] - 1], /GREETING: while-paused/);
      assert.match(view.value.live, /GREETING: while-paused/);
    } finally {
      checkout.dispose();
      await agent.reconciler!.setPaused('staging', false);
    }
  });

  it('the CLI shows drift, previews and applies a sync, and pauses the reconciler', async () => {
    const drift = await cli(['drift', 'staging'], { cwd: repo.dir });
    assert.equal(drift.code, 0, drift.stderr);
    assert.match(drift.stdout, /git: Synced · at [0-9a-f]{7} · selfHeal off, prune off/);
    assert.match(drift.stdout, /desired: environments\/staging\.yml on conveyor\/state/);
    const pause = await cli(['reconcile', 'pause', 'staging'], { cwd: repo.dir });
    assert.equal(pause.code, 0, pause.stderr);
    assert.match(pause.stdout, /reconcile paused/);
    const checkout = new StateCheckout(repo.dir);
    try {
      checkout.edit('environments/staging.yml', (t) => t.replace(/GREETING: .*/, 'GREETING: from-cli'), 'Change for the CLI');
      await until(() => sync()?.causes.includes('desired'), 'OutOfSync');
      const out = await cli(['drift', 'staging'], { cwd: repo.dir });
      assert.equal(out.code, 1);
      assert.match(out.stdout, /git: OutOfSync \(desired\)/);
      assert.match(out.stdout, /env\.GREETING: git says from-cli, staging@\d+ has while-paused/);
      const dry = await cli(['sync', 'staging', '--dry-run'], { cwd: repo.dir });
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /^would deploy app\.tgz@[0-9a-f]{12} to staging as git says \(env\.GREETING\)/m);
      assert.equal(await served(), 'while-paused');
      const now = await cli(['sync', 'staging'], { cwd: repo.dir });
      assert.equal(now.code, 0, now.stderr + now.stdout);
      assert.match(now.stdout, /deploy #\d+ succeeded/);
      assert.equal(await served(), 'from-cli');
    } finally {
      checkout.dispose();
      const resume = await cli(['reconcile', 'resume', 'staging'], { cwd: repo.dir });
      assert.match(resume.stdout, /reconcile resumed/);
    }
  });

  it('the state can live in another repository; a fetch failure is reported and the last known state stays', async () => {
    const remote = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-state-remote-')));
    const moved = `${remote}-moved`;
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote]);
    const other = new TempRepo({ 'conveyor.yml': CONFIG(`gitops: { repo: ${remote}, branch: deploy, interval: 1s }`), 'server.js': SERVER });
    const a = await startAgent(other, { pollMs: 200 });
    try {
      const id = await startRun(a, { trigger: 'manual' });
      assert.equal((await finished(a, id)).status, 'succeeded');
      const log = execFileSync('git', ['log', '--format=%s', 'deploy'], { cwd: remote, encoding: 'utf8' });
      assert.match(log, /^deploy staging@1/);
      assert.throws(() => other.git('rev-parse', '--verify', 'conveyor/state'), 'nothing is written to the workspace repository');
      // A pushed change is fetched and applied.
      const checkout = new StateCheckout(remote, 'deploy');
      checkout.edit('environments/staging.yml', (t) => t.replace('GREETING: from-config', 'GREETING: pushed'), 'Push a change');
      checkout.dispose();
      await until(() => a.deployer.liveRelease('staging')?.env.GREETING === 'pushed', 'the pushed change applied', 30_000);
      // The repository goes away: reported, and what runs stays.
      fs.renameSync(remote, moved);
      await until(() => a.reconciler!.status('staging')?.error?.message.includes('could not fetch deploy'), 'the fetch failure reported', 30_000);
      assert.match(a.reconciler!.status('staging')!.error!.message, /the last fetched desired state stays/);
      assert.equal(a.deployer.liveRelease('staging')!.env.GREETING, 'pushed');
      fs.renameSync(moved, remote);
      await until(() => a.reconciler!.status('staging')?.error === null, 'the error gone once the repository is back', 30_000);
    } finally {
      const runtime = a.runtimes.get('process');
      if (runtime.ok) await runtime.value.remove('staging').catch(() => undefined);
      await a.stop();
      other.dispose();
      fs.rmSync(remote, { recursive: true, force: true });
      fs.rmSync(moved, { recursive: true, force: true });
    }
  });
});
