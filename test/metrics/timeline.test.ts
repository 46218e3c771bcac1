import * as assert from 'node:assert/strict';
import { Metrics, type MetricsOptions } from '../../agent/metrics/metrics';
import { describeEvent } from '../../agent/metrics/titles';
import type { SequencedEvent, TimelineItem, TimelinePage, TimelineQuery } from '../../agent/protocol';
import { ENGINES, TempDir } from '../agent/store/helpers';
import { History } from './history';

for (const engine of ENGINES) {
  describe(`timeline on the ${engine} engine`, () => {
    let tmp: TempDir;
    let h: History;
    let all: SequencedEvent[];

    before(() => {
      tmp = new TempDir();
      h = new History(tmp.file('history.db'), engine);
      const s = h.store;
      h.at('2026-03-01T09:00:00.000Z');
      s.append({ type: 'config.changed', state: { valid: true, file: '/w/conveyor.yml', config: {} as never, diagnostics: [] } });
      h.run(1, { queuedAt: '2026-03-01T10:00:00.000Z', trigger: 'commit', stages: [{ name: 'build', startedAt: '2026-03-01T10:00:01.000Z', durationMs: 30_000 }, { name: 'test', startedAt: '2026-03-01T10:00:31.000Z', durationMs: 5_000 }] });
      h.at('2026-03-01T10:00:40.000Z');
      s.append({ type: 'log', runId: 1, stage: 'build', attempt: 1, step: 0, text: 'compiling the build\n' });
      s.append({ type: 'log', runId: 1, stage: 'test', attempt: 1, step: 0, text: 'running tests\n' });
      s.append({ type: 'tests.reported', runId: 1, stage: 'test', attempt: 1, passed: 3, failed: 0, skipped: 1, results: [] });
      h.run(2, { queuedAt: '2026-03-01T11:00:00.000Z', trigger: 'manual', status: 'failed', stages: [{ name: 'build', startedAt: '2026-03-01T11:00:01.000Z', durationMs: 30_000, status: 'failed' }] });
      h.at('2026-03-01T11:00:32.000Z');
      s.append({ type: 'log', runId: 2, stage: 'build', attempt: 1, step: 0, text: 'Error: build broke\n' });
      h.release('staging', 1, 1, '2026-03-01T12:00:00.000Z');
      h.deploy('staging', 1, { status: 'succeeded', startedAt: '2026-03-01T12:01:00.000Z', finishedAt: '2026-03-01T12:02:00.000Z', runId: 1 });
      h.release('production', 1, 1, '2026-03-01T13:00:00.000Z');
      h.deploy('production', 1, { status: 'failed', startedAt: '2026-03-01T13:01:00.000Z', finishedAt: '2026-03-01T13:02:00.000Z', reason: 'health check timed out\nlast output: nothing' });
      h.health('production', 'Degraded', null, '2026-03-01T13:03:00.000Z');
      h.at('2026-03-01T14:00:00.000Z');
      s.append({
        type: 'config.changed',
        state: { valid: false, file: '/w/conveyor.yml', diagnostics: [{ severity: 'error', code: 'unknown-key', message: 'unknown key "stagez"', file: '/w/conveyor.yml', range: { start: { line: 3, column: 1 }, end: { line: 3, column: 7 } } }] },
      });
      all = s.events(0, 10_000);
    });

    after(() => {
      h.dispose();
      tmp.dispose();
    });

    const page = (q: TimelineQuery, opts: MetricsOptions = {}): TimelinePage => {
      const r = new Metrics(h.store, opts).timeline(q);
      assert.ok(r.ok, JSON.stringify(r));
      return r.value;
    };
    /** Every page, following `next`. */
    const walk = (q: TimelineQuery, opts: MetricsOptions = {}): { items: TimelineItem[]; pages: TimelinePage[] } => {
      const pages: TimelinePage[] = [];
      let before: number | undefined;
      for (;;) {
        const p = page({ ...q, before }, opts);
        pages.push(p);
        if (p.next === null) break;
        assert.ok(before === undefined || p.next < before, 'the cursor moves back');
        before = p.next;
      }
      return { items: pages.flatMap((p) => p.items), pages };
    };
    const seqs = (items: { seq: number }[]) => items.map((i) => i.seq);
    const newestFirst = (events: SequencedEvent[]) => seqs(events).reverse();
    const envOf = (e: SequencedEvent): string | null =>
      e.type === 'release.created' ? e.release.environment : e.type === 'deployment.changed' ? e.deployment.environment : e.type === 'environment.health' ? e.environment : null;

    it('lists every event but the log lines, newest first, each with a one-line title, its time and its links', () => {
      const p = page({ limit: 500 });
      assert.deepEqual(seqs(p.items), newestFirst(all.filter((e) => e.type !== 'log')));
      assert.equal(p.next, null);
      assert.deepEqual(
        p.items.map((i) => i.time),
        all.filter((e) => e.type !== 'log').map((e) => e.time).reverse(),
      );
      const failedDeploy = p.items.find((i) => i.type === 'deployment.changed' && i.level === 'error')!;
      assert.deepEqual(
        { title: failedDeploy.title, family: failedDeploy.family, links: failedDeploy.links, time: failedDeploy.time },
        { title: 'Deploy #2 production ∅ → 1 failed: health check timed out', family: 'deploy', links: { runId: null, environment: 'production', release: 1, deployment: 2 }, time: '2026-03-01T13:02:00.000Z' },
      );
      const release = p.items.find((i) => i.type === 'release.created' && i.links.environment === 'production')!;
      assert.equal(release.title, `Release production@1 created from run #1 @ ${'c1'.padEnd(40, '0').slice(0, 7)} by pipeline`);
      assert.deepEqual(release.links, { runId: 1, environment: 'production', release: 1, deployment: null });
      const runFailed = p.items.find((i) => i.type === 'run.finished' && i.links.runId === 2)!;
      assert.deepEqual([runFailed.title, runFailed.level], ['Run #2 failed in 31s', 'error']);
      assert.equal(p.items[0].title, 'conveyor.yml changed: 1 problem, first: unknown key "stagez"');
      assert.equal(p.items.find((i) => i.type === 'environment.health')!.title, 'production is Degraded');
    });

    it('pages with a cursor by seq, without gaps or repeats', () => {
      const { items, pages } = walk({ limit: 4 });
      assert.deepEqual(seqs(items), newestFirst(all.filter((e) => e.type !== 'log')));
      assert.ok(pages.length > 3);
      assert.ok(pages.slice(0, -1).every((p) => p.items.length === 4));
      const before = all[10].seq;
      assert.deepEqual(seqs(page({ before, limit: 500 }).items), newestFirst(all.filter((e) => e.type !== 'log' && e.seq < before)));
    });

    it('filters by environment, by stage, and brings the log lines back when asked', () => {
      assert.deepEqual(seqs(page({ environment: 'production' }).items), newestFirst(all.filter((e) => envOf(e) === 'production')));
      assert.deepEqual(seqs(page({ environment: 'nowhere' }).items), []);
      const build = all.filter((e) => e.type === 'stage.changed' && e.stage.name === 'build');
      assert.deepEqual(seqs(page({ stage: 'build' }).items), newestFirst(build));
      const buildLogs = all.filter((e) => (e.type === 'stage.changed' && e.stage.name === 'build') || (e.type === 'log' && e.stage === 'build'));
      assert.deepEqual(seqs(page({ stage: 'build', includeLogs: true }).items), newestFirst(buildLogs));
      const test = all.filter((e) => (e.type === 'stage.changed' && e.stage.name === 'test') || e.type === 'tests.reported');
      assert.deepEqual(seqs(page({ stage: 'test' }).items), newestFirst(test));
      const stagingDeploy = all.filter((e) => e.type === 'deployment.changed' && e.deployment.stage === 'deploy-staging');
      assert.deepEqual(seqs(page({ stage: 'deploy-staging', environment: 'staging' }).items), newestFirst(stagingDeploy));
    });

    it('filters by kind: a family, an event type, several of them', () => {
      const of = (pred: (e: SequencedEvent) => boolean) => newestFirst(all.filter(pred));
      assert.deepEqual(seqs(page({ kinds: ['deploy'] }).items), of((e) => ['release.created', 'deployment.changed', 'environment.health'].includes(e.type)));
      assert.deepEqual(seqs(page({ kinds: ['run.finished'] }).items), of((e) => e.type === 'run.finished'));
      assert.deepEqual(seqs(page({ kinds: ['config', 'test'] }).items), of((e) => e.type === 'config.changed' || e.type === 'tests.reported'));
      // A commit queued run 1; run 2 was asked for by hand.
      assert.deepEqual(seqs(page({ kinds: ['commit'] }).items), of((e) => e.type === 'run.queued' && e.run.id === 1));
      assert.deepEqual(seqs(page({ kinds: ['commit', 'run.queued'] }).items), of((e) => e.type === 'run.queued'));
      assert.deepEqual(seqs(page({ kinds: ['log'] }).items), of((e) => e.type === 'log'));
      assert.deepEqual(seqs(page({ kinds: ['drift', 'alert'] }).items), []);
      assert.deepEqual(page({ kinds: ['deploy'], environment: 'staging' }).items.map((i) => i.type), ['deployment.changed', 'deployment.changed', 'deployment.changed', 'release.created']);
    });

    it('finds free text in titles and in the events, whatever the case', () => {
      const timedOut = all.filter((e) => e.type === 'deployment.changed' && e.deployment.status === 'failed');
      assert.deepEqual(seqs(page({ text: 'timed out' }).items), newestFirst(timedOut));
      assert.deepEqual(seqs(page({ text: 'TIMED OUT' }).items), newestFirst(timedOut));
      // Only in a title ("Release production@1 created ...").
      assert.deepEqual(seqs(page({ text: 'production@1' }).items), newestFirst(all.filter((e) => e.type === 'release.created' && e.release.environment === 'production')));
      // Log lines only when asked for.
      assert.deepEqual(seqs(page({ text: 'broke' }).items), []);
      assert.deepEqual(seqs(page({ text: 'broke', includeLogs: true }).items), newestFirst(all.filter((e) => e.type === 'log' && e.runId === 2)));
      // A key of the events' JSON is not text.
      assert.deepEqual(seqs(page({ text: 'requestedStages' }).items), []);
    });

    it('looks at a bounded span per page when it has to look into the events, and says where to go on', () => {
      const full = page({ text: 'build', includeLogs: true, limit: 500 });
      assert.equal(full.next, null);
      assert.ok(full.items.length >= 3);
      const { items, pages } = walk({ text: 'build', includeLogs: true, limit: 500 }, { timelineScanSpan: 5 });
      assert.deepEqual(seqs(items), seqs(full.items));
      assert.ok(pages.length >= Math.floor(all.length / 5), `${pages.length} pages`);
      assert.ok(pages.some((p) => p.items.length === 0 && p.next !== null), 'an empty page still says where to go on');
      const stage = walk({ stage: 'build' }, { timelineScanSpan: 7 });
      assert.deepEqual(seqs(stage.items), seqs(page({ stage: 'build' }).items));
    });

    it('says what is wrong with a bad query', () => {
      const m = new Metrics(h.store);
      const cases: [TimelineQuery, RegExp][] = [
        [{ kinds: ['deploys'] }, /unknown kind "deploys"/],
        [{ kinds: ['toString'] }, /unknown kind "toString"/],
        [{ limit: 0 }, /"limit" must be a whole number from 1 to 500/],
        [{ limit: 501 }, /"limit"/],
        [{ before: -3 }, /"before"/],
        [{ text: '  ' }, /"text" must be 1 to 200 characters/],
        [{ stage: '' }, /"stage"/],
      ];
      for (const [q, message] of cases) {
        const r = m.timeline(q);
        assert.equal(r.ok, false, JSON.stringify(q));
        if (!r.ok) {
          assert.match(r.error.error, message);
          assert.ok(r.error.fix);
        }
      }
    });
  });
}

describe('timeline titles', () => {
  it('titles kinds of events added later from the fields they usually carry', () => {
    const later = (e: Record<string, unknown>) => describeEvent({ ...e, seq: 1, time: '2026-01-01T00:00:00.000Z' } as unknown as SequencedEvent);
    assert.deepEqual(later({ type: 'drift.found', environment: 'production', items: [{}, {}], action: 'healed' }), { title: 'Drift found in production: 2 items, healed', level: 'warning' });
    assert.deepEqual(later({ type: 'alert.raised', alert: { title: 'build is 46% slower', environment: 'staging' } }), { title: 'Alert raised in staging: build is 46% slower', level: 'warning' });
    assert.deepEqual(later({ type: 'state.pushed', environment: 'staging', commit: 'abcdef1234', message: 'deploy staging@4\n\nmore' }), { title: 'State pushed in staging @ abcdef1: deploy staging@4', level: 'info' });
    assert.deepEqual(later({ type: 'load.measured', runId: 4, stage: 'load' }), { title: 'Load measured #4 load', level: 'info' });
  });

  it('says which results of a report sent in several events each event holds', () => {
    const at = { seq: 1, time: '2026-01-01T00:00:00.000Z' };
    const result = { suite: '', name: 'a', status: 'failed' as const, durationMs: null, message: null, expected: null, actual: null, stack: null, location: null };
    const base = { ...at, type: 'tests.reported' as const, runId: 4, stage: 'test', attempt: 1, passed: 0, failed: 2, skipped: 0, results: [result, result] };
    assert.deepEqual(describeEvent(base), { title: '#4 test: 0 passed, 2 failed, 0 skipped', level: 'error' });
    assert.deepEqual(describeEvent({ ...base, first: 1000, total: 1002 }), { title: '#4 test: 0 passed, 2 failed, 0 skipped (results 1001–1002 of 1002)', level: 'error' });
  });
});
