import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { SequencedEvent } from '../../../agent/protocol';
import { MIGRATIONS } from '../../../agent/store/migrations';
import { Store, type StoredEvent } from '../../../agent/store/store';
import { completeRun, ENGINES, log, run, TempDir, tick } from './helpers';

/** The same behaviour on both SQLite engines. */
for (const engine of ENGINES) {
  describe(`store on the ${engine} engine`, () => {
    let tmp: TempDir;
    let store: Store | undefined;

    beforeEach(() => {
      tmp = new TempDir();
    });

    afterEach(() => {
      store?.dispose();
      store = undefined;
      tmp.dispose();
    });

    const open = (opts: { ringBytes?: number } = {}) => (store = Store.open(tmp.file('history.db'), { engine, ...opts }));

    it('runs on the engine it was asked for', () => {
      const s = open();
      assert.equal(s.engine.name, engine);
      assert.equal(s.database.engine.name, engine);
      assert.equal(s.engine.requested, engine);
      assert.equal(s.engine.via, 'option');
      assert.match(s.engine.sqliteVersion, /^3\.\d+\.\d+$/);
    });

    it('creates the schema in an empty file, in WAL mode, and opens it again without migrating twice', () => {
      fs.writeFileSync(tmp.file('history.db'), '');
      const s = open();
      assert.equal(s.database.pragma('user_version'), MIGRATIONS.length);
      assert.equal(s.database.pragma('journal_mode'), 'wal');
      const tables = s.database
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .all<{ name: string }>()
        .map((r) => r.name);
      assert.deepEqual(tables, ['approvals', 'artifacts', 'deployments', 'events', 'meta', 'previews', 'releases', 'runs', 'stages', 'step_processes', 'steps', 'test_results']);
      for (const e of completeRun(1)) s.append(e);
      s.setMeta('k', 'v');
      s.dispose();

      const again = open();
      assert.equal(again.database.pragma('user_version'), MIGRATIONS.length);
      assert.equal(again.lastSeq, completeRun(1).length);
      assert.equal(again.getMeta('k'), 'v');
      assert.equal(again.nextRunId(), 2);
      assert.equal(again.append(log(2, 'x')).seq, completeRun(1).length + 1);
    });

    it('refuses a database from a newer schema, with what to do', () => {
      open().database.pragma('user_version', MIGRATIONS.length + 1);
      store!.dispose();
      store = undefined;
      assert.throws(() => open(), /newer Conveyor .*upgrade Conveyor or move .conveyor\/history.db away/);
    });

    it('numbers events from 1, strictly increasing, and tells subscribers only after they are stored', async () => {
      const s = open();
      const told: number[] = [];
      s.onDidAppend((batch) => {
        for (const e of batch) {
          const row = s.database.prepare('SELECT seq, body FROM events WHERE seq = ?').get<{ seq: number; body: string }>(e.seq);
          assert.ok(row, `event ${e.seq} told before it was stored`);
          assert.equal(row.body, e.json);
          told.push(e.seq);
        }
      });
      const seqs: number[] = [];
      for (let i = 0; i < 5000; i++) seqs.push(s.append(log(1, `line ${i}`)).seq);
      await tick();
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
      assert.deepEqual(told, seqs);
      const events = s.events(0, 10_000);
      assert.equal(events.length, 5000);
      assert.deepEqual(
        events.map((e) => e.seq),
        seqs,
      );
      assert.equal((events[4999] as Extract<SequencedEvent, { type: 'log' }>).text, 'line 4999');
      assert.equal(s.lastSeq, 5000);
    });

    it('writes a batch in one transaction per tick, and sooner when it is large', async () => {
      const s = open();
      const batches: number[] = [];
      s.onDidAppend((b) => batches.push(b.length));
      for (let i = 0; i < 10; i++) s.append(log(1, 'a'));
      assert.deepEqual(batches, []);
      assert.equal(s.database.prepare('SELECT COUNT(*) AS n FROM events').get<{ n: number }>()!.n, 0);
      await tick();
      assert.deepEqual(batches, [10]);
      for (let i = 0; i < 5000; i++) s.append(log(1, 'b'));
      await tick();
      assert.equal(
        batches.reduce((a, b) => a + b, 0),
        5010,
      );
      assert.ok(batches.length >= 3, `large batches are cut: ${batches.join(', ')}`);
    });

    it('derives runs, stages, steps, tests and artifacts from the events', () => {
      const s = open();
      for (const e of completeRun(1)) s.append(e);
      s.append({ type: 'run.queued', run: run(2, 'queued') });

      const runs = s.listRuns(10);
      assert.deepEqual(
        runs.map((r) => [r.id, r.status]),
        [
          [2, 'queued'],
          [1, 'failed'],
        ],
      );
      assert.equal(s.listRuns(1).length, 1);
      const detail = s.getRun(1)!;
      assert.equal(detail.status, 'failed');
      assert.equal(detail.reason, 'stage test failed');
      assert.equal(detail.startedAt, '2026-01-01T10:00:01.000Z');
      assert.deepEqual(detail.requestedStages, ['build', 'test']);
      assert.equal(detail.firstSeq, 1);
      assert.deepEqual(
        detail.stages.map((st) => [st.name, st.status, st.attempt, st.needs, st.message]),
        [
          ['build', 'succeeded', 1, [], null],
          ['test', 'failed', 1, ['build'], '1 test failed'],
        ],
      );
      assert.deepEqual(
        detail.steps.map((st) => [st.stage, st.index, st.status, st.exitCode]),
        [['build', 0, 'succeeded', 0]],
      );
      assert.deepEqual(detail.artifacts, [{ runId: 1, stage: 'build', kind: 'file', path: 'dist/app.js', digest: 'sha256:00ff', size: 1234 }]);

      const tests = s.getTests(1);
      assert.equal(tests.length, 1);
      assert.equal(tests[0].stage, 'test');
      assert.deepEqual(
        tests[0].results.map((t) => [t.name, t.status, t.durationMs, t.location]),
        [
          ['adds', 'passed', 1.5, null],
          ['divides', 'failed', 3, { file: '/w/test.js', line: 7, column: 3 }],
        ],
      );
      assert.equal(tests[0].results[1].expected, '2');

      assert.equal(s.getRun(3), undefined);
      assert.deepEqual(
        s.unfinishedRuns().map((r) => r.id),
        [2],
      );
      assert.equal(s.nextRunId(), 3);
    });

    it('serves recent events from memory and older ones from the database once the ring is trimmed', async () => {
      const s = open({ ringBytes: 4000 });
      const told: StoredEvent[] = [];
      s.onDidAppend((b) => told.push(...b));
      for (let i = 0; i < 300; i++) s.append(log(1, `line ${i} ${'x'.repeat(40)}`));
      await tick();
      assert.equal(told.length, 300);

      // The newest ones: the very objects the subscribers got, from the ring.
      const recent = s.eventsAfter(290, 5);
      assert.deepEqual(
        recent.map((e) => e.seq),
        [291, 292, 293, 294, 295],
      );
      assert.equal(recent[0], told[290]);

      // The oldest ones were trimmed from the ring: the same content, read back from the file.
      const old = s.eventsAfter(0, 10);
      assert.deepEqual(old, told.slice(0, 10));
      assert.notEqual(old[0], told[0]);

      // Across the boundary, and the whole history in one answer.
      assert.deepEqual(s.eventsAfter(0, 1000), told);
      assert.deepEqual(s.eventsAfter(300, 10), []);
      assert.deepEqual(
        s.events(298, 10).map((e) => e.seq),
        [299, 300],
      );
    });

    it('answers queries with events not yet committed, and commits what is pending on dispose', () => {
      const s = open();
      s.append(log(1, 'first'));
      assert.equal(s.eventsAfter(0, 10).length, 1);
      s.append(log(1, 'second'));
      s.dispose();
      assert.throws(() => s.append(log(1, 'late')), /store is closed/);
      s.dispose();
      store = undefined;
      const again = open();
      assert.deepEqual(
        again.events(0, 10).map((e) => (e as Extract<SequencedEvent, { type: 'log' }>).text),
        ['first', 'second'],
      );
    });

    it('keeps the process groups of steps recorded until they are forgotten, across a reopen and an upgrade', () => {
      // A history from before the table existed (schema 5), with a run in it.
      const old = open();
      old.database.exec('DROP TABLE step_processes');
      old.database.pragma('user_version', 5);
      for (const e of completeRun(1)) old.append(e);
      old.dispose();
      const s = open();
      assert.equal(s.database.pragma('user_version'), MIGRATIONS.length);
      assert.equal(s.getRun(1)!.status, 'failed');
      assert.deepEqual(s.stepProcesses(), []);
      const a = { pgid: 4242, identity: 'boot:123', runId: 2, stage: 'build', attempt: 1, index: 0 };
      const b = { pgid: 4343, identity: null, runId: 2, stage: 'build', attempt: 1, index: 1 };
      s.recordStepProcess(b);
      s.recordStepProcess(a);
      // A pid given again (the first record was not forgotten) replaces the old record.
      s.recordStepProcess({ ...a, identity: 'boot:456' });
      s.dispose();
      store = undefined;
      const again = open();
      assert.deepEqual(again.stepProcesses(), [{ ...a, identity: 'boot:456' }, b]);
      again.forgetStepProcess(a.pgid);
      again.forgetStepProcess(999);
      assert.deepEqual(again.stepProcesses(), [b]);
      again.dispose();
      // Once closed (the agent stopping), recording and forgetting do nothing.
      again.recordStepProcess(a);
      again.forgetStepProcess(b.pgid);
      store = undefined;
      assert.deepEqual(open().stepProcesses(), [b]);
    });

    it('works in memory', () => {
      const s = (store = Store.memory({ engine }));
      assert.equal(s.engine.name, engine);
      for (const e of completeRun(1)) s.append(e);
      assert.equal(s.getRun(1)!.stages.length, 2);
      assert.equal(s.events(0, 100).length, completeRun(1).length);
    });
  });
}
