import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Agent } from '../../agent/agent';
import { Metrics } from '../../agent/metrics/metrics';
import type { ChangesBefore, IncidentRef } from '../../agent/protocol';
import { TempDir } from '../agent/store/helpers';
import { finished, pipelineYaml, startAgent, startRun, TempRepo } from '../support/fixtures';
import { History } from './history';

/** Commits with a known committer date, so that the engine's record of it can be checked. */
function commitAt(repo: TempRepo, message: string, date: string): string {
  const env = { ...process.env, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date };
  execFileSync('git', ['add', '-A'], { cwd: repo.dir, env });
  execFileSync('git', ['commit', '-q', '--allow-empty', '-m', message], { cwd: repo.dir, env });
  return repo.git('rev-parse', 'HEAD').trim();
}

describe('what changed before an incident', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let tmp: TempDir;
  let h: History;
  let sha: Record<'a' | 'b' | 'c' | 'd', string>;
  let ids: { failed: number; rollback: number; staging: number; degradedSeq: number; runFailedSeq: number; configSeq: number; deployed3: number };

  before(() => {
    repo = new TempRepo();
    repo.write({ 'app.js': 'v1\n' });
    const a = commitAt(repo, 'first version', '2026-03-01T10:00:00+00:00');
    repo.write({ 'app.js': 'v2\n', 'lib.js': 'one\ntwo\nthree\n' });
    const b = commitAt(repo, 'second version with a library', '2026-03-02T10:00:00+02:00');
    repo.write({ 'lib.js': 'one\ntwo\nthree\nfour\nfive\n' });
    const c = commitAt(repo, 'longer library', '2026-03-03T10:00:00+00:00');
    fs.writeFileSync(repo.path('logo.bin'), Buffer.from([0, 1, 2, 0, 255, 0]));
    const d = commitAt(repo, 'a logo', '2026-03-04T10:00:00+00:00');
    sha = { a, b, c, d };

    tmp = new TempDir();
    h = new History(tmp.file('history.db'), 'native');
    h.run(1, { queuedAt: '2026-03-01T10:05:00.000Z', commit: a });
    h.release('production', 1, 1, '2026-03-01T11:30:00.000Z', a);
    h.at('2026-03-01T11:00:00.000Z');
    h.store.append({ type: 'config.changed', state: { valid: true, file: '/w/conveyor.yml', config: {} as never, diagnostics: [] } });
    h.deploy('production', 1, { status: 'succeeded', startedAt: '2026-03-01T11:50:00.000Z', finishedAt: '2026-03-01T12:00:00.000Z' });
    h.run(2, { queuedAt: '2026-03-03T10:05:00.000Z', commit: c });
    h.at('2026-03-03T12:00:00.000Z');
    const config = h.store.append({ type: 'config.changed', state: { valid: true, file: '/w/conveyor.yml', config: {} as never, diagnostics: [] } });
    h.release('staging', 1, 2, '2026-03-03T12:30:00.000Z', c);
    const staging = h.deploy('staging', 1, { status: 'succeeded', startedAt: '2026-03-03T12:50:00.000Z', finishedAt: '2026-03-03T13:00:00.000Z' });
    h.run(3, { queuedAt: '2026-03-04T10:05:00.000Z', commit: d });
    h.release('production', 2, 3, '2026-03-04T11:00:00.000Z', d);
    const failed = h.deploy('production', 2, { status: 'failed', startedAt: '2026-03-04T11:50:00.000Z', finishedAt: '2026-03-04T12:00:00.000Z', fromRelease: 1 });
    h.release('production', 3, 2, '2026-03-05T09:00:00.000Z', c);
    const deployed3 = h.deploy('production', 3, { status: 'succeeded', startedAt: '2026-03-05T09:50:00.000Z', finishedAt: '2026-03-05T10:00:00.000Z', fromRelease: 1 });
    const degraded = h.health('production', 'Degraded', 3, '2026-03-05T18:00:00.000Z');
    const rollback = h.deploy('production', 1, { status: 'succeeded', trigger: 'rollback', startedAt: '2026-03-06T09:00:00.000Z', finishedAt: '2026-03-06T09:05:00.000Z', fromRelease: 3 });
    const run4 = h.run(4, { queuedAt: '2026-03-06T10:00:00.000Z', commit: d, status: 'failed' });
    ids = {
      failed: failed.id,
      rollback: rollback.id,
      staging: staging.id,
      degradedSeq: degraded.seq,
      runFailedSeq: run4[run4.length - 1].seq,
      configSeq: config.seq,
      deployed3: deployed3.id,
    };
  });

  after(() => {
    h.dispose();
    tmp.dispose();
    repo.dispose();
  });

  const changes = async (ref: IncidentRef, opts: { repo?: string | null; max?: number } = {}): Promise<ChangesBefore> => {
    const r = await new Metrics(h.store, { repo: opts.repo === undefined ? repo.dir : opts.repo }).changesBefore(ref, opts.max);
    assert.ok(r.ok, JSON.stringify(r));
    return r.value;
  };

  it('lists the commits between the last good release and the failing one, with their diff stats, and the config changes and deploys of that window', async () => {
    const c = await changes({ deployment: ids.failed });
    assert.deepEqual(c.incident, {
      seq: null,
      time: '2026-03-04T12:00:00.000Z',
      title: `Deploy #${ids.failed} production 1 → 2 failed`,
      environment: 'production',
      deployment: ids.failed,
    });
    assert.deepEqual(c.window, { from: '2026-03-01T12:00:00.000Z', to: '2026-03-04T12:00:00.000Z' });
    assert.deepEqual(c.good, { environment: 'production', release: 1, commit: sha.a });
    assert.deepEqual(c.bad, { environment: 'production', release: 2, commit: sha.d });
    assert.equal(c.gitProblem, null);
    assert.equal(c.commitsTruncated, false);
    assert.deepEqual(c.commits, [
      { sha: sha.d, author: 'Test', committedAt: '2026-03-04T10:00:00.000Z', subject: 'a logo', files: [{ path: 'logo.bin', added: null, deleted: null }], added: 0, deleted: 0 },
      { sha: sha.c, author: 'Test', committedAt: '2026-03-03T10:00:00.000Z', subject: 'longer library', files: [{ path: 'lib.js', added: 2, deleted: 0 }], added: 2, deleted: 0 },
      {
        sha: sha.b,
        author: 'Test',
        committedAt: '2026-03-02T08:00:00.000Z',
        subject: 'second version with a library',
        files: [
          { path: 'app.js', added: 1, deleted: 1 },
          { path: 'lib.js', added: 3, deleted: 0 },
        ],
        added: 4,
        deleted: 1,
      },
    ]);
    assert.deepEqual(
      c.configChanges.map((i) => [i.seq, i.title]),
      [[ids.configSeq, 'conveyor.yml changed: valid']],
    );
    assert.deepEqual(
      c.deployments.map((d) => [d.id, d.environment, d.status]),
      [
        [ids.failed, 'production', 'failed'],
        [ids.staging, 'staging', 'succeeded'],
      ],
    );
  });

  it('for a rollback, lists what the release it left added to the one it went back to', async () => {
    const c = await changes({ deployment: ids.rollback });
    assert.deepEqual(c.good, { environment: 'production', release: 1, commit: sha.a });
    assert.deepEqual(c.bad, { environment: 'production', release: 3, commit: sha.c });
    assert.deepEqual(c.window, { from: '2026-03-01T12:00:00.000Z', to: '2026-03-06T09:05:00.000Z' });
    assert.deepEqual(
      c.commits.map((x) => x.sha),
      [sha.c, sha.b],
    );
    assert.deepEqual(
      c.deployments.map((d) => d.id),
      [ids.rollback, ids.deployed3, ids.failed, ids.staging],
    );
  });

  it('for any event: a health change against the release live then, a failed run against the last green run', async () => {
    const health = await changes({ seq: ids.degradedSeq });
    assert.deepEqual(health.incident, { seq: ids.degradedSeq, time: '2026-03-05T18:00:00.000Z', title: 'production is Degraded (release 3)', environment: 'production', deployment: null });
    assert.deepEqual([health.good?.release, health.bad?.release], [1, 3]);
    assert.deepEqual(
      health.commits.map((x) => x.sha),
      [sha.c, sha.b],
    );
    const run = await changes({ seq: ids.runFailedSeq });
    assert.deepEqual([run.good?.commit, run.bad?.commit], [sha.c, sha.d]);
    assert.deepEqual(
      run.commits.map((x) => x.subject),
      ['a logo'],
    );
    assert.equal(run.window.from, '2026-03-03T10:05:00.000Z');
  });

  it('bounds the list, and says why there are no commits when git cannot list them', async () => {
    const two = await changes({ deployment: ids.failed }, { max: 2 });
    assert.deepEqual(
      two.commits.map((x) => x.sha),
      [sha.d, sha.c],
    );
    assert.equal(two.commitsTruncated, true);

    const noRepo = await changes({ deployment: ids.failed }, { repo: null });
    assert.deepEqual(noRepo.commits, []);
    assert.match(noRepo.gitProblem!, /not in a git repository/);
    assert.equal(noRepo.configChanges.length, 1, 'the rest of the answer is still there');

    const other = new TempRepo();
    try {
      commitAt(other, 'unrelated', '2026-03-01T00:00:00+00:00');
      const foreign = await changes({ deployment: ids.failed }, { repo: other.dir });
      assert.match(foreign.gitProblem!, new RegExp(`git knows no commit ${sha.a.slice(0, 12)}`));
      assert.deepEqual(foreign.commits, []);
    } finally {
      other.dispose();
    }

    const m = new Metrics(h.store, { repo: repo.dir });
    for (const ref of [{ deployment: 999 }, { seq: 10_000_000 }, {} as IncidentRef]) {
      const r = await m.changesBefore(ref);
      assert.equal(r.ok, false);
      if (!r.ok) assert.ok(r.error.fix, JSON.stringify(r.error));
    }
  });

  it("gives one commit's diff on request", async () => {
    const m = new Metrics(h.store, { repo: repo.dir });
    const r = await m.commitDiff(sha.b.slice(0, 10));
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha, sha.b);
    assert.equal(r.value.subject, 'second version with a library');
    assert.equal(r.value.truncated, false);
    assert.match(r.value.patch, /^diff --git a\/app\.js b\/app\.js/);
    assert.match(r.value.patch, /^-v1$/m);
    assert.match(r.value.patch, /^\+v2$/m);
    assert.match(r.value.patch, /^\+\+\+ b\/lib\.js$/m);
    for (const bad of ['not-a-sha', 'abcdef1234']) {
      const e = await m.commitDiff(bad);
      assert.equal(e.ok, false);
      if (!e.ok) assert.ok(e.error.fix);
    }
  });
});

describe('the commit time of a run', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent | undefined;

  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    repo?.dispose();
  });

  it('is the committer date of the commit the run is pinned to, and null on the working tree', async () => {
    repo = new TempRepo();
    repo.write({ 'conveyor.yml': pipelineYaml('- name: build\n  run: echo built') });
    const sha = commitAt(repo, 'initial', '2026-02-03T04:05:06+01:00');
    agent = await startAgent(repo);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    assert.equal(run.commit, sha);
    assert.equal(run.commitTime, '2026-02-03T03:05:06.000Z');
    const tree = await finished(agent, await startRun(agent, { trigger: 'manual', workingTree: true }));
    assert.equal(tree.commitTime, null);
  });
});
