import * as assert from 'node:assert/strict';
import type { AgentEvent } from '../../agent/protocol';
import { MIGRATIONS } from '../../agent/store/migrations';
import { openDatabase } from '../../agent/store/sqlite';
import { environmentOf, runIdOf, Store } from '../../agent/store/store';
import { ENGINES, run, TempDir } from '../agent/store/helpers';

/** Events of every shape that names an environment, and some that name none. */
function events(): AgentEvent[] {
  const deployment = {
    id: 1, environment: 'production', fromRelease: null, toRelease: 1, strategy: 'recreate' as const, trigger: 'pipeline' as const, status: 'queued' as const,
    reason: null, runId: 1, stage: 'deploy', requestedBy: 'pipeline', queuedAt: '2026-01-01T10:00:00.000Z', startedAt: null, finishedAt: null,
  };
  return [
    { type: 'run.queued', run: run(1, 'queued') },
    { type: 'log', runId: 1, stage: 'build', attempt: 1, step: 0, text: 'environment: production\n' },
    {
      type: 'release.created',
      release: {
        environment: 'staging', number: 1, artifact: { kind: 'files', digest: 'sha256:00', name: 'a.tgz' }, command: [], env: { environment: 'x' }, containerPort: 80,
        replicas: 1, runId: 1, commit: null, createdAt: '2026-01-01T10:00:00.000Z', createdBy: 'pipeline',
      },
    },
    { type: 'deployment.changed', deployment },
    { type: 'deployment.progress', deploymentId: 1, environment: 'production', message: 'deploying' },
    {
      type: 'approval.changed',
      approval: { id: 1, deploymentId: 1, environment: 'production', release: 1, runId: 1, stage: 'deploy', status: 'pending', requestedAt: '2026-01-01T10:00:00.000Z', decidedAt: null, decidedBy: null, reason: null },
    },
    { type: 'environment.health', environment: 'production', health: 'Healthy', release: 1 },
    { type: 'preview.created', preview: { name: 'preview-login', template: 'review', branch: 'login', createdAt: '2026-01-01T10:00:00.000Z', createdBy: 'me' } },
    { type: 'preview.destroyed', name: 'preview-login', reason: 'branch deleted' },
    { type: 'config.changed', state: { valid: false, file: '/w/conveyor.yml', diagnostics: [] } },
    // A later kind of event: its environment inside one of its objects.
    { type: 'drift.report', status: { environment: 'canary', sync: 'OutOfSync' } } as unknown as AgentEvent,
  ];
}

const EXPECTED = [null, null, 'staging', 'production', 'production', 'production', 'production', 'preview-login', 'preview-login', null, 'canary'];

for (const engine of ENGINES) {
  describe(`the history's monitoring columns on the ${engine} engine`, () => {
    let tmp: TempDir;
    beforeEach(() => (tmp = new TempDir()));
    afterEach(() => tmp.dispose());

    it('keeps the environment of each event, and fills it in for the events of an older history the same way', () => {
      const file = tmp.file('history.db');
      // A history written before the monitoring migration.
      const old = openDatabase(file, { engine });
      for (const m of MIGRATIONS.slice(0, 3)) old.exec(m);
      old.pragma('user_version', 3);
      const insert = old.prepare('INSERT INTO events (seq, time, type, run_id, body) VALUES (?, ?, ?, ?, ?)');
      events().forEach((e, i) => insert.run(i + 1, '2026-01-01T10:00:00.000Z', e.type, runIdOf(e) ?? null, JSON.stringify({ ...e, seq: i + 1, time: '2026-01-01T10:00:00.000Z' })));
      old.prepare(
        `INSERT INTO runs (id, pipeline, trigger, status, commit_sha, branch, title, requested, queued_at) VALUES (1, 'app', 'manual', 'queued', 'abc', 'main', 't', '[]', '2026-01-01T10:00:00.000Z')`,
      ).run();
      old.close();

      const store = Store.open(file, { engine });
      try {
        const column = () => store.database.prepare('SELECT environment FROM events ORDER BY seq').all<{ environment: string | null }>().map((r) => r.environment);
        assert.deepEqual(column(), EXPECTED);
        assert.deepEqual(events().map(environmentOf), EXPECTED);
        assert.equal(store.listRuns(1)[0].commitTime, null);

        // Appended now (the later kind aside: the store knows only the kinds it was built with).
        for (const e of events().slice(0, -1)) store.append(e);
        store.flush();
        assert.deepEqual(column(), [...EXPECTED, ...EXPECTED.slice(0, -1)]);
      } finally {
        store.dispose();
      }
    });

    it('keeps the commit time of a run, stamps events with its clock, and reads runs recorded without a commit time', () => {
      let now = Date.parse('2026-05-05T05:05:05.005Z');
      const store = Store.open(tmp.file('history.db'), { engine, clock: () => new Date(now) });
      try {
        const e = store.append({ type: 'run.queued', run: run(1, 'queued', { commitTime: '2026-05-04T00:00:00.000Z' }) });
        assert.equal(e.time, '2026-05-05T05:05:05.005Z');
        now += 1000;
        assert.equal(store.append({ type: 'run.started', run: run(1, 'running', { commitTime: '2026-05-04T00:00:00.000Z' }) }).time, '2026-05-05T05:05:06.005Z');
        store.append({ type: 'run.queued', run: run(2, 'queued') });
        assert.deepEqual(
          store.listRuns(5).map((r) => [r.id, r.commitTime]),
          [
            [2, null],
            [1, '2026-05-04T00:00:00.000Z'],
          ],
        );
        assert.equal(store.getRun(1)!.commitTime, '2026-05-04T00:00:00.000Z');
      } finally {
        store.dispose();
      }
    });
  });
}
