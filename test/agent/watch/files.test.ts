import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FSWatcher } from 'chokidar';
import { Debouncer, FileWatcher, WorkspaceIgnore, type FileChangeSet, type FileWatcherOptions } from '../../../agent/watch/files';
import { scratch, until } from '../../support/fixtures';

/**
 * The file watcher, for real: chokidar on a temporary folder. No test waits for a fixed time;
 * "nothing else was reported" is shown with a barrier: a last write whose change set, once it
 * arrives, proves every event before it was delivered.
 */
describe('FileWatcher', function () {
  this.timeout(60_000);
  let dir: string;
  let watcher: FileWatcher | undefined;
  let sets: FileChangeSet[];

  beforeEach(() => {
    dir = scratch();
    sets = [];
  });

  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function write(files: Record<string, string>): void {
    for (const [rel, text] of Object.entries(files)) {
      const abs = path.join(dir, rel);
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, text);
    }
  }

  async function start(opts: Partial<FileWatcherOptions> = {}): Promise<FileWatcher> {
    write({ 'barrier.txt': '0' });
    watcher = new FileWatcher({ root: dir, ...opts });
    watcher.onDidChange((s) => sets.push(s));
    await watcher.ready;
    return watcher;
  }

  /** Waits for the change set that holds `rel`, and returns it. */
  async function setWith(rel: string): Promise<FileChangeSet> {
    return until(() => sets.find((s) => s.changed.includes(rel) || s.deleted.includes(rel)), `a change set with ${rel}`);
  }

  let barriers = 0;
  /** Writes the barrier file and waits for it: every earlier event has been reported by then. */
  async function barrier(): Promise<void> {
    const before = sets.length;
    write({ 'barrier.txt': String(++barriers) });
    await until(() => sets.slice(before).some((s) => s.changed.includes('barrier.txt')), 'the barrier');
  }

  /** Every path reported so far, the barrier left out. */
  function reported(): string[] {
    return [...new Set(sets.flatMap((s) => [...s.changed, ...s.deleted]))].filter((f) => f !== 'barrier.txt').sort();
  }

  it('reports a saved file with a workspace-relative, forward-slash path', async () => {
    write({ 'src/deep/a.js': '1' });
    await start();
    write({ 'src/deep/a.js': '2' });
    const set = await setWith('src/deep/a.js');
    assert.deepEqual(set, { changed: ['src/deep/a.js'], deleted: [] });
  });

  it('reports a burst of ten writes as one change set', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `pkg${i % 3}/file${i}.ts`);
    write(Object.fromEntries(names.map((n) => [n, 'before'])));
    await start({ quietMs: 200 });
    write(Object.fromEntries(names.map((n) => [n, 'after'])));
    const set = await setWith(names[0]);
    assert.deepEqual(set, { changed: [...names].sort(), deleted: [] });
    await barrier();
    assert.equal(sets.length, 2, `one set for the burst, one for the barrier: ${JSON.stringify(sets)}`);
  });

  it('reports new files and deleted files', async () => {
    write({ 'old.txt': 'x', 'keep.txt': 'x' });
    await start();
    fs.rmSync(path.join(dir, 'old.txt'));
    write({ 'new.txt': 'x' });
    await setWith('old.txt');
    await setWith('new.txt');
    const all = { changed: sets.flatMap((s) => s.changed), deleted: sets.flatMap((s) => s.deleted) };
    assert.deepEqual(all, { changed: ['new.txt'], deleted: ['old.txt'] });
  });

  it('reports every file of a deleted folder', async () => {
    write({ 'gone/a.js': '1', 'gone/sub/b.js': '2' });
    await start();
    fs.rmSync(path.join(dir, 'gone'), { recursive: true });
    await setWith('gone/a.js');
    await setWith('gone/sub/b.js');
    assert.deepEqual(sets.flatMap((s) => s.deleted).sort(), ['gone/a.js', 'gone/sub/b.js']);
  });

  it('honours .gitignore files, nested ones and .git/info/exclude', async () => {
    write({
      '.gitignore': '*.log\nbuild/\n/only-at-root.txt\n',
      'pkg/.gitignore': 'secret.txt\n!keep.log\n',
      '.git/info/exclude': 'excluded.txt\n',
      'build/out.js': '1',
      'a.log': '1',
      'only-at-root.txt': '1',
      'pkg/only-at-root.txt': '1',
      'pkg/secret.txt': '1',
      'pkg/keep.log': '1',
      'pkg/other.log': '1',
      'sub/secret.txt': '1',
      'excluded.txt': '1',
    });
    await start();
    write({
      'build/out.js': '2',
      'build/new/deeper.js': '2',
      'a.log': '2',
      'only-at-root.txt': '2',
      'pkg/only-at-root.txt': '2',
      'pkg/secret.txt': '2',
      'pkg/keep.log': '2',
      'pkg/other.log': '2',
      'sub/secret.txt': '2',
      'excluded.txt': '2',
    });
    await barrier();
    assert.deepEqual(reported(), ['pkg/keep.log', 'pkg/only-at-root.txt', 'sub/secret.txt']);
  });

  it('never reports .git, node_modules or .conveyor, at any depth', async () => {
    write({
      '.git/HEAD': 'ref: refs/heads/main\n',
      'node_modules/lib/index.js': '1',
      'pkg/node_modules/lib/index.js': '1',
      '.conveyor/agent.json': '{}',
      'src/a.js': '1',
    });
    await start();
    write({
      '.git/HEAD': 'ref: refs/heads/other\n',
      '.git/objects/ab/cdef': 'x',
      'node_modules/lib/index.js': '2',
      'node_modules/new/index.js': '2',
      'pkg/node_modules/lib/index.js': '2',
      '.conveyor/agent.json': '{"x":1}',
      'src/a.js': '2',
    });
    await barrier();
    assert.deepEqual(reported(), ['src/a.js']);
  });

  it('does not descend into ignored folders', async () => {
    write({
      '.gitignore': 'build/\n',
      'build/a/b/c.js': '1',
      'node_modules/x/y/z.js': '1',
      'dist/out.js': '1',
      'src/a.js': '1',
    });
    const w = await start({ exclude: ['dist/**'] });
    const internals = w as unknown as { instances: FSWatcher[]; folders: Map<string, unknown> };
    // What chokidar listed, and what the watcher watches.
    const listed = internals.instances.flatMap((i) => Object.keys(i.getWatched())).map((p) => path.relative(dir, p).split(path.sep).join('/'));
    const watched = [...internals.folders.keys()].sort();
    assert.deepEqual(watched, ['', 'src']);
    for (const folder of ['build', 'build/a', 'node_modules', 'node_modules/x', 'dist']) {
      assert.ok(!listed.includes(folder), `${folder} is not listed: ${listed.join(', ')}`);
    }
  });

  it('watches a folder created while watching, and the folders inside it', async () => {
    await start();
    write({ 'new/a.js': '1' });
    await setWith('new/a.js');
    write({ 'new/deeper/still/b.js': '1' });
    await setWith('new/deeper/still/b.js');
    write({ 'new/deeper/still/b.js': '2' });
    await until(() => sets.filter((s) => s.changed.includes('new/deeper/still/b.js')).length === 2, 'the second save of b.js');
  });

  it('reports an atomic save (write a temporary file, rename it over) as a change of the file', async () => {
    write({ 'src/a.ts': '1' });
    await start();
    fs.writeFileSync(path.join(dir, 'src/.a.ts.tmp-123'), '2');
    fs.renameSync(path.join(dir, 'src/.a.ts.tmp-123'), path.join(dir, 'src/a.ts'));
    write({ 'src/.a.ts.swp': 'vim' });
    await barrier();
    assert.deepEqual(reported(), ['src/a.ts']);
  });

  it('applies watch.include and watch.exclude', async () => {
    write({ 'src/a.js': '1', 'src/readme.md': '1', 'src/gen/x.js': '1', 'lib/c.js': '1' });
    await start({ include: ['src/**', 'barrier.txt'], exclude: ['**/*.md', 'src/gen/**'] });
    write({ 'src/a.js': '2', 'src/readme.md': '2', 'src/gen/x.js': '2', 'src/gen/new.js': '2', 'lib/c.js': '2' });
    await barrier();
    assert.deepEqual(reported(), ['src/a.js']);
  });

  it('applies a .gitignore edited while watching to the events that follow', async () => {
    write({ 'notes.txt': '1', 'src/a.js': '1' });
    await start();
    write({ '.gitignore': 'notes.txt\n' });
    await setWith('.gitignore');
    write({ 'notes.txt': '2', 'src/a.js': '2' });
    await barrier();
    assert.deepEqual(reported(), ['.gitignore', 'src/a.js']);
  });

  it('reports nothing after it is disposed', async () => {
    write({ 'a.txt': '1' });
    const w = await start();
    await w.close();
    write({ 'a.txt': '2' });
    w.flush();
    assert.deepEqual(sets, []);
  });
});

describe('WorkspaceIgnore', () => {
  let dir: string;
  beforeEach(() => (dir = scratch()));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('applies the rules of the folders between the repository root and the workspace', () => {
    fs.mkdirSync(path.join(dir, '.git', 'info'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'apps', 'web'), { recursive: true });
    fs.writeFileSync(path.join(dir, '.gitignore'), '*.tmp\n');
    fs.writeFileSync(path.join(dir, 'apps', '.gitignore'), '/web/cache/\n');
    fs.writeFileSync(path.join(dir, '.git', 'info', 'exclude'), 'local.txt\n');
    const rules = new WorkspaceIgnore(path.join(dir, 'apps', 'web'));
    assert.equal(rules.ignores('a.tmp', false), true);
    assert.equal(rules.ignores('cache', true), true);
    assert.equal(rules.ignores('src/cache', true), false);
    assert.equal(rules.ignores('local.txt', false), true);
    assert.equal(rules.ignores('src/index.ts', false), false);
  });

  it('tells folder-only rules from files', () => {
    fs.writeFileSync(path.join(dir, '.gitignore'), 'out/\n');
    const rules = new WorkspaceIgnore(dir);
    assert.equal(rules.ignores('out', true), true);
    assert.equal(rules.ignores('out', false), false);
    assert.equal(rules.ignores('out/x.js', false), true);
  });
});

describe('Debouncer', () => {
  it('fires once for a burst', async () => {
    let fired = 0;
    const d = new Debouncer(20, 10_000, () => fired++);
    for (let i = 0; i < 10; i++) d.trigger();
    await until(() => fired > 0, 'the callback');
    assert.equal(fired, 1);
    assert.equal(d.pending, false);
    d.dispose();
  });

  it('fires during a stream that never pauses, at the cap', async () => {
    let fired = 0;
    const d = new Debouncer(50, 200, () => fired++);
    // Triggers more often than the quiet period, until the cap fires.
    const stream = setInterval(() => d.trigger(), 5);
    d.trigger();
    try {
      await until(() => fired > 0, 'the capped callback');
    } finally {
      clearInterval(stream);
      d.dispose();
    }
  });

  it('does not fire once disposed', () => {
    let fired = 0;
    const d = new Debouncer(10, 100, () => fired++);
    d.trigger();
    d.dispose();
    d.flush();
    d.trigger();
    d.flush();
    assert.equal(fired, 0);
  });
});
