import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { namedParameters } from '../../../agent/store/driver-wasm';
import { ENGINE_ENV, openDatabase, type EngineLoaders, type EngineName, type SqliteDatabase } from '../../../agent/store/sqlite';
import { Store } from '../../../agent/store/store';
import { completeRun, ENGINES, log, TempDir } from './helpers';

/** A native binding built for another runtime: better-sqlite3 fails like this when constructed. */
const ABI_MISMATCH =
  "The module 'better_sqlite3.node' was compiled against a different Node.js version using NODE_MODULE_VERSION 115. This version of Node.js requires NODE_MODULE_VERSION 128.";
const brokenNative = (() =>
  class {
    constructor() {
      throw new Error(ABI_MISMATCH);
    }
  }) as unknown as EngineLoaders['native'];

describe('SQLite drivers', () => {
  let tmp: TempDir;
  beforeEach(() => (tmp = new TempDir()));
  afterEach(() => tmp.dispose());

  for (const engine of ENGINES) {
    describe(`${engine}`, () => {
      let db: SqliteDatabase;
      beforeEach(() => {
        db = openDatabase(tmp.file('t.db'), { engine });
        db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n REAL, note TEXT)');
      });
      afterEach(() => db.close());

      it('binds positional and named parameters the same way', () => {
        const ins = db.prepare('INSERT INTO t (id, name, n, note) VALUES (?, ?, ?, ?)');
        assert.deepEqual(ins.run(1, 'a', 1.5, null), { changes: 1, lastInsertRowid: 1 });
        ins.run([2, 'b', 2, 'two']);
        // Keys the statement does not use are ignored; a name used twice is one parameter.
        const named = db.prepare("INSERT INTO t (id, name, n, note) VALUES (@id, :name, $n, @name || '+' || @name)");
        named.run({ id: 3, name: 'c', n: 3, unused: [1, 2], other: { x: 1 } });
        assert.throws(() => named.run({ id: 4, name: 'd' }), /Missing named parameter "n"/);
        assert.deepEqual(db.prepare('SELECT * FROM t ORDER BY id').all(), [
          { id: 1, name: 'a', n: 1.5, note: null },
          { id: 2, name: 'b', n: 2, note: 'two' },
          { id: 3, name: 'c', n: 3, note: 'c+c' },
        ]);
        assert.deepEqual(db.prepare('SELECT name FROM t WHERE id = @id').get({ id: 2 }), { name: 'b' });
      });

      it('answers undefined for no row, and reuses statements', () => {
        const get = db.prepare('SELECT name FROM t WHERE id = ?');
        assert.equal(get.get(1), undefined);
        assert.deepEqual(get.all(1), []);
        db.prepare('INSERT INTO t (id, name) VALUES (?, ?)').run(1, 'a');
        for (let i = 0; i < 3; i++) assert.deepEqual(get.get(1), { name: 'a' });
        assert.deepEqual(db.prepare('SELECT COUNT(*) AS c FROM t').get(), { c: 1 });
      });

      it('commits a transaction, rolls it back on a throw, and nests with savepoints', () => {
        const ins = db.prepare('INSERT INTO t (id) VALUES (?)');
        const count = () => db.prepare('SELECT COUNT(*) AS c FROM t').get<{ c: number }>()!.c;
        assert.equal(
          db.transaction(() => {
            ins.run(1);
            assert.ok(db.inTransaction);
            return 'done';
          }),
          'done',
        );
        assert.ok(!db.inTransaction);
        assert.throws(() =>
          db.transaction(() => {
            ins.run(2);
            throw new Error('boom');
          }),
        /boom/);
        assert.equal(count(), 1);
        db.transaction(() => {
          ins.run(3);
          assert.throws(() =>
            db.transaction(() => {
              ins.run(4);
              throw new Error('inner');
            }),
          );
          ins.run(5);
        });
        assert.deepEqual(
          db.prepare('SELECT id FROM t ORDER BY id').all<{ id: number }>().map((r) => r.id),
          [1, 3, 5],
        );
        // A unique-key violation inside is an ordinary throw: nothing of the batch stays, and the
        // statement that failed works again.
        assert.throws(() => db.transaction(() => (ins.run(6), ins.run(1))), /UNIQUE/);
        assert.equal(count(), 3);
        ins.run(7);
        assert.throws(() => ins.run(7), /UNIQUE/);
        assert.throws(() => db.prepare('SELECT 1 / 0 AS x, abs(-9223372036854775808)').get(), /overflow/);
        assert.equal(count(), 4);
      });

      it('sets and reads pragmas, and rejects anything but words and numbers', () => {
        assert.equal(db.pragma('user_version'), 0);
        db.pragma('user_version', 7);
        assert.equal(db.pragma('user_version'), 7);
        assert.equal(db.pragma('journal_mode', 'WAL'), 'wal');
        assert.throws(() => db.pragma('user_version', '1; DROP TABLE t'), /not a pragma value/);
        assert.throws(() => db.pragma('x y'), /not a pragma name/);
      });

      it('reports a syntax error when preparing, and closes once', () => {
        assert.throws(() => db.prepare('SELEKT 1'), /syntax error/);
        db.close();
        assert.ok(!db.isOpen);
        db.close();
        assert.throws(() => db.prepare('SELECT 1'));
      });

      it('keeps working when more statements are prepared than it keeps compiled', () => {
        const first = db.prepare('SELECT 0 AS v');
        for (let i = 1; i <= 600; i++) assert.deepEqual(db.prepare(`SELECT ${i} AS v`).get(), { v: i });
        assert.deepEqual(first.get(), { v: 0 });
      });
    });
  }

  it('finds named parameters outside strings, quoted names and comments', () => {
    assert.deepEqual(namedParameters("SELECT @a, ':b', \"@c\", [d:e], `f@g` -- :h\n, /* $i */ :j, $k, @a, 'it''s @l', ?"), ['@a', ':j', '$k']);
    assert.deepEqual(namedParameters('SELECT 1'), []);
  });

  describe('engine choice', () => {
    let saved: string | undefined;
    beforeEach(() => {
      saved = process.env[ENGINE_ENV];
      delete process.env[ENGINE_ENV];
    });
    afterEach(() => {
      if (saved === undefined) delete process.env[ENGINE_ENV];
      else process.env[ENGINE_ENV] = saved;
    });

    it('auto uses the native engine when its binding loads', () => {
      const db = openDatabase(tmp.file('a.db'));
      assert.deepEqual({ ...db.engine, sqliteVersion: '' }, { name: 'native', requested: 'auto', via: 'default', sqliteVersion: '' });
      db.close();
    });

    it('auto falls back to WASM when the native binding does not load, and says why', () => {
      const db = openDatabase(tmp.file('a.db'), { loaders: { native: brokenNative } });
      assert.equal(db.engine.name, 'wasm');
      assert.equal(db.engine.requested, 'auto');
      assert.match(db.engine.nativeError!, /NODE_MODULE_VERSION 115/);
      db.close();

      // The real library, with a binding that does not load in this process, as in Electron.
      const notAnAddon = tmp.file('better_sqlite3.node');
      fs.writeFileSync(notAnAddon, 'built for another runtime');
      const real = require('better-sqlite3') as typeof import('better-sqlite3');
      const elsewhere = openDatabase(tmp.file('e.db'), {
        loaders: {
          native: () =>
            function (file: string, opts: object = {}) {
              return new real(file, { ...opts, nativeBinding: notAnAddon });
            } as unknown as typeof import('better-sqlite3'),
        },
      });
      assert.equal(elsewhere.engine.name, 'wasm');
      assert.ok(elsewhere.engine.nativeError, 'says why');
      elsewhere.close();

      const missing = openDatabase(tmp.file('b.db'), {
        loaders: {
          native: () => {
            throw new Error("Cannot find module 'better-sqlite3'");
          },
        },
      });
      assert.equal(missing.engine.name, 'wasm');
      missing.close();

      const store = Store.open(tmp.file('c.db'), { loaders: { native: brokenNative } });
      assert.equal(store.engine.name, 'wasm');
      for (const e of completeRun(1)) store.append(e);
      assert.equal(store.getRun(1)!.status, 'failed');
      store.dispose();
    });

    it('fails with the reason when the native engine is demanded and does not load', () => {
      assert.throws(() => openDatabase(tmp.file('a.db'), { engine: 'native', loaders: { native: brokenNative } }), /does not load in this runtime .*NODE_MODULE_VERSION 115/);
      assert.ok(!fs.existsSync(tmp.file('a.db')));
    });

    it(`follows ${ENGINE_ENV} when the caller does not choose, and rejects an unknown value`, () => {
      process.env[ENGINE_ENV] = 'wasm';
      const db = openDatabase(tmp.file('a.db'));
      assert.equal(db.engine.name, 'wasm');
      assert.equal(db.engine.via, 'env');
      db.close();
      const chosen = openDatabase(tmp.file('b.db'), { engine: 'native' });
      assert.equal(chosen.engine.name, 'native');
      chosen.close();
      process.env[ENGINE_ENV] = 'native';
      assert.throws(() => openDatabase(tmp.file('c.db'), { loaders: { native: brokenNative } }), new RegExp(`unset ${ENGINE_ENV}`));
      process.env[ENGINE_ENV] = 'sqlite4';
      assert.throws(() => openDatabase(tmp.file('d.db')), /is not an engine/);
    });
  });

  describe('one file, both engines', () => {
    const cases: [EngineName, EngineName][] = [
      ['native', 'wasm'],
      ['wasm', 'native'],
    ];
    for (const [first, second] of cases) {
      it(`opens a history written by ${first} with ${second}, and back`, () => {
        const file = tmp.file('history.db');
        const a = Store.open(file, { engine: first });
        for (const e of completeRun(1)) a.append(e);
        a.append(log(1, 'from the first'));
        a.dispose();
        assert.deepEqual(tmp.list(), ['history.db'], 'a clean close leaves the database alone');

        const b = Store.open(file, { engine: second });
        assert.equal(b.engine.name, second);
        assert.equal(b.lastSeq, completeRun(1).length + 1);
        assert.equal(b.getRun(1)!.stages.length, 2);
        assert.equal(b.getTests(1)[0].results.length, 2);
        for (const e of completeRun(2)) b.append(e);
        b.dispose();

        const c = Store.open(file, { engine: first });
        assert.deepEqual(
          c.listRuns(10).map((r) => r.id),
          [2, 1],
        );
        const seqs = c.events(0, 1000).map((e) => e.seq);
        assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
        assert.equal(c.database.pragma('integrity_check'), 'ok');
        c.dispose();
      });

      it(`opens with ${second} what ${first} left when its process was killed`, async function () {
        this.timeout(30_000);
        const file = tmp.file('history.db');
        await writeAndDie(file, first, 3000);
        const left = tmp.list();
        assert.ok(left.includes('history.db-wal'), `the events are still in the WAL: ${left.join(' ')}`);
        if (first === 'wasm') assert.ok(left.includes('history.db.lock'), 'the dead process left its lock');

        const b = Store.open(file, { engine: second });
        assert.equal(b.lastSeq, 3000);
        assert.equal(b.getRun(1)!.status, 'failed');
        b.append(log(1, 'after'));
        b.dispose();
        // And the first engine again, over whatever the second left.
        const c = Store.open(file, { engine: first });
        assert.equal(c.lastSeq, 3001);
        assert.equal(c.database.pragma('integrity_check'), 'ok');
        c.dispose();
        assert.deepEqual(tmp.list(), ['history.db']);
      });
    }

    it('lets neither engine open a file that the WASM engine has open', () => {
      const file = tmp.file('history.db');
      const w = Store.open(file, { engine: 'wasm' });
      assert.throws(() => Store.open(file, { engine: 'native' }), new RegExp(`open in process ${process.pid}`));
      assert.throws(() => Store.open(file, { engine: 'wasm' }), new RegExp(`already open in process ${process.pid}`));
      w.dispose();
      Store.open(file, { engine: 'native' }).dispose();
    });

    it('lets a second native connection wait and fail rather than share the file', () => {
      const file = tmp.file('history.db');
      const n = Store.open(file, { engine: 'native' });
      const other = openDatabase(file, { engine: 'native' });
      other.pragma('busy_timeout', 10);
      assert.throws(() => other.prepare('SELECT COUNT(*) FROM events').get(), /locked/);
      other.close();
      n.dispose();
    });
  });
});

/** Runs a store in a child process, appends `count` events, and kills it with SIGKILL. */
async function writeAndDie(file: string, engine: EngineName, count: number): Promise<void> {
  const storeModule = path.resolve(__dirname, '../../../agent/store/store.js');
  const helpers = path.resolve(__dirname, 'helpers.js');
  const code = `
    const { Store } = require(${JSON.stringify(storeModule)});
    const { completeRun, log } = require(${JSON.stringify(helpers)});
    const s = Store.open(${JSON.stringify(file)}, { engine: ${JSON.stringify(engine)} });
    const events = completeRun(1);
    for (const e of events) s.append(e);
    for (let i = events.length; i < ${count}; i++) s.append(log(1, 'line ' + i));
    s.flush();
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`the writer exited (${code}): ${err}`)));
  });
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
}
