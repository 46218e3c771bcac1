import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StateRepo } from '../../../agent/gitops/repo';
import { scratch, TempRepo } from '../../support/fixtures';

const FILE = 'environments/staging.yml';

/** The state branch of a workspace repository, on real git. */
describe('gitops: the state repository', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let cache: string;
  let state: StateRepo;
  const tip = () => repo.git('rev-parse', 'conveyor/state').trim();
  const objectFile = (sha: string) => repo.path('.git', 'objects', sha.slice(0, 2), sha.slice(2));
  const commit = (text: string | null, message = 'change') => state.commit({ file: FILE, text, message, author: 'alice (test)' });

  beforeEach(async () => {
    repo = new TempRepo({ 'README.md': 'a workspace\n' });
    cache = scratch();
    state = new StateRepo({ workspaceRepo: repo.dir, config: { repo: null, branch: 'conveyor/state', path: 'environments', intervalMs: 30_000 }, cacheDir: cache });
    assert.equal(await state.tip(), null, 'no branch yet');
    await commit('replicas: 1\n', 'first');
  });

  afterEach(() => {
    repo.dispose();
    fs.rmSync(cache, { recursive: true, force: true });
  });

  it('a file absent at a revision is null; one whose object git cannot read is an error that names it, and nothing is committed over it', async () => {
    const first = tip();
    assert.equal(await state.read('environments/production.yml', first), null);
    assert.equal(await state.read(FILE, first), 'replicas: 1\n');
    // The object of the file at the tip is corrupt on disk (a bad disk, a bad copy).
    const blob = repo.git('rev-parse', `${first}:${FILE}`).trim();
    fs.chmodSync(objectFile(blob), 0o644);
    fs.writeFileSync(objectFile(blob), 'not a zlib stream');
    await assert.rejects(state.read(FILE, first), (e: Error) => {
      assert.match(e.message, new RegExp(`^git cannot read environments/staging\\.yml at ${first.slice(0, 7)}: fatal: .*corrupt`));
      assert.match(e.message, /git fsck/);
      return true;
    });
    await assert.rejects(commit('replicas: 2\n', 'over it'), /git cannot read environments\/staging\.yml/);
    await assert.rejects(commit(null, 'remove it'), /git cannot read environments\/staging\.yml/);
    assert.equal(tip(), first, 'the branch did not move');
    // Missing altogether (a fetch that did not bring it): the same.
    fs.rmSync(objectFile(blob));
    await assert.rejects(state.read(FILE, first), /git cannot read environments\/staging\.yml/);
    assert.equal(await state.read('environments/production.yml', first), null, 'another file is still absent, not unreadable');
    // The object back as git writes it: readable again, and commits go on top of it.
    execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: repo.dir, input: 'replicas: 1\n' });
    assert.equal(await state.read(FILE, first), 'replicas: 1\n');
    assert.ok(await commit('replicas: 2\n', 'second'));
    assert.equal(repo.git('show', `conveyor/state:${FILE}`), 'replicas: 2\n');
    const [last] = await state.log(FILE, 1);
    assert.deepEqual([last.subject, last.parent], ['second', first]);
  });

  it('a branch git cannot read is an error, not a branch that does not exist yet', async () => {
    fs.writeFileSync(repo.path('.git', 'refs', 'heads', 'conveyor', 'state'), 'not a commit id\n');
    await assert.rejects(state.tip(), /git cannot read the branch conveyor\/state: .*broken ref/);
    await assert.rejects(commit('replicas: 3\n'), /git cannot read the branch conveyor\/state/);
  });

  it('a lock left on the branch fails the commit with the lock file and the fix; removed, the commit goes in', async () => {
    const before = tip();
    const lock = repo.path('.git', 'refs', 'heads', 'conveyor', 'state.lock');
    fs.writeFileSync(lock, '');
    await assert.rejects(commit('replicas: 2\n'), (e: Error) => {
      assert.ok(e.message.includes(`${lock} exists`), e.message);
      assert.ok(e.message.includes(`if none is, one was stopped and left the lock behind: remove ${lock}`), e.message);
      return true;
    });
    assert.equal(tip(), before);
    fs.rmSync(lock);
    assert.ok(await commit('replicas: 2\n'));
    assert.equal(repo.git('show', `conveyor/state:${FILE}`), 'replicas: 2\n');
  });

  it("keeps its private index under the repository's git folder, and removes those of an agent that is gone on start", async () => {
    const dir = repo.path('.git', 'conveyor-state');
    // A commit needs no system temporary folder.
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = path.join(cache, 'no-such-folder');
    try {
      assert.ok(await commit('replicas: 2\n'));
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing is left after a commit');
    // An agent killed mid-commit left its index and the index's lock; another agent is committing.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    const alive = process.ppid;
    fs.writeFileSync(path.join(dir, `index-${gone}-4`), 'DIRC');
    fs.writeFileSync(path.join(dir, `index-${gone}-4.lock`), 'DIRC');
    fs.writeFileSync(path.join(dir, `index-${alive}-1`), 'DIRC');
    const restarted = new StateRepo({ workspaceRepo: repo.dir, config: { repo: null, branch: 'conveyor/state', path: 'environments', intervalMs: 30_000 }, cacheDir: cache });
    assert.equal(await restarted.tip(), tip());
    assert.deepEqual(fs.readdirSync(dir), [`index-${alive}-1`]);
  });
});
