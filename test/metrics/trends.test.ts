import * as assert from 'node:assert/strict';
import { STAGE_DURATIONS_SQL } from '../../agent/metrics/durations';
import { Metrics } from '../../agent/metrics/metrics';
import type { DurationTrends, RunStatus } from '../../agent/protocol';
import { ENGINES, TempDir } from '../agent/store/helpers';
import { DAY, History, MIN } from './history';

const WEEK = 7 * DAY;
const iso = (ms: number) => new Date(ms).toISOString();

for (const engine of ENGINES) {
  describe(`build and duration trends on the ${engine} engine`, () => {
    let tmp: TempDir;
    let h: History;
    let metrics: Metrics;

    beforeEach(() => {
      tmp = new TempDir();
      h = new History(tmp.file('history.db'), engine);
      metrics = new Metrics(h.store);
    });

    afterEach(() => {
      h.dispose();
      tmp.dispose();
    });

    it('counts the runs of each UTC day by status, every day present, with the success rate', () => {
      const runs: [string, RunStatus][] = [
        ['2026-02-28T23:59:59.999Z', 'succeeded'], // the day before the window
        ['2026-03-01T00:00:00.000Z', 'succeeded'],
        ['2026-03-01T12:00:00.000Z', 'succeeded'],
        ['2026-03-01T23:59:59.999Z', 'failed'],
        ['2026-03-03T08:00:00.000Z', 'succeeded'],
        ['2026-03-03T09:00:00.000Z', 'cancelled'],
        ['2026-03-03T10:00:00.000Z', 'interrupted'],
        ['2026-03-07T01:00:00.000Z', 'failed'],
        ['2026-03-07T14:00:00.000Z', 'running'],
        ['2026-03-08T00:00:00.000Z', 'succeeded'], // the day after
      ];
      runs.forEach(([queuedAt, status], i) => h.run(i + 1, { queuedAt, status }));
      const r = metrics.builds({ days: 7, to: '2026-03-07T15:00:00.000Z' });
      assert.ok(r.ok, JSON.stringify(r));
      const b = r.value;
      assert.deepEqual(b.window, { from: '2026-03-01T00:00:00.000Z', to: '2026-03-08T00:00:00.000Z' });
      assert.deepEqual(
        b.days.map((d) => d.date),
        ['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05', '2026-03-06', '2026-03-07'],
      );
      const zero = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, interrupted: 0 };
      assert.deepEqual(b.days[0], { date: '2026-03-01', runs: 3, byStatus: { ...zero, succeeded: 2, failed: 1 }, successRate: 2 / 3 });
      assert.deepEqual(b.days[1], { date: '2026-03-02', runs: 0, byStatus: zero, successRate: null });
      assert.deepEqual(b.days[2], { date: '2026-03-03', runs: 3, byStatus: { ...zero, succeeded: 1, cancelled: 1, interrupted: 1 }, successRate: 1 });
      assert.deepEqual(b.days[6], { date: '2026-03-07', runs: 2, byStatus: { ...zero, failed: 1, running: 1 }, successRate: 0 });
      assert.equal(b.runs, 8);
      assert.deepEqual(b.byStatus, { queued: 0, running: 1, succeeded: 3, failed: 2, cancelled: 1, interrupted: 1 });
      assert.equal(b.successRate, 3 / 5);
    });

    /**
     * Seven 7-day weeks ending 2026-04-01: four of baseline, then three shown. build takes
     * 1.0-1.9 s (ten runs a week) except in the sixth week, 2.0-2.9 s; test takes 5 s (five runs
     * a week) with one 5.9 s run in the last week; lint ran only in the baseline weeks. Failed
     * and unfinished stages do not count.
     */
    const to = Date.parse('2026-04-01T00:00:00.000Z');
    const start = to - 7 * WEEK;
    function weeks(): void {
      let id = 0;
      for (let k = 0; k < 7; k++) {
        const week = start + k * WEEK;
        for (let i = 0; i < 10; i++) {
          const began = week + i * 6 * 3_600_000 + 60_000;
          const stages: Parameters<History['run']>[1]['stages'] = [{ name: 'build', startedAt: iso(began), durationMs: (k === 5 ? 2000 : 1000) + i * 100 }];
          if (i < 5) stages.push({ name: 'test', startedAt: iso(began + 10 * MIN), durationMs: k === 6 && i === 4 ? 5900 : 5000 });
          if (i === 0 && k < 4) stages.push({ name: 'lint', startedAt: iso(began + 20 * MIN), durationMs: 700 });
          if (i === 5) stages.push({ name: 'test', startedAt: iso(began + 10 * MIN), durationMs: 60_000, status: 'failed' });
          if (i === 6) stages.push({ name: 'test', startedAt: iso(began + 10 * MIN), durationMs: null });
          h.run(++id, { queuedAt: iso(began - 1000), stages });
        }
      }
    }

    const trends = (q: Parameters<Metrics['durations']>[0]): DurationTrends => {
      const r = metrics.durations(q);
      assert.ok(r.ok, JSON.stringify(r));
      return r.value;
    };

    it('gives p50 and p95 per stage per week and marks the planted regression week, and only it', () => {
      weeks();
      const t = trends({ weeks: 3, to: iso(to) });
      assert.deepEqual(t.window, { from: iso(start + 4 * WEEK), to: iso(to) });
      assert.equal(t.thresholdPct, 20);
      assert.deepEqual(
        t.stages.map((s) => s.stage),
        ['build', 'lint', 'test'],
      );
      const [build, lint, test] = t.stages;
      assert.deepEqual(build.weeks, [
        // Baseline: forty samples, 1.0-1.9 s four times each; the 38th is 1.9 s.
        { from: iso(start + 4 * WEEK), to: iso(start + 5 * WEEK), samples: 10, p50Ms: 1400, p95Ms: 1900, baselineP95Ms: 1900, regression: false },
        { from: iso(start + 5 * WEEK), to: iso(start + 6 * WEEK), samples: 10, p50Ms: 2400, p95Ms: 2900, baselineP95Ms: 1900, regression: true },
        // Baseline now holds the slow week: its 38th of 40 samples is 2.7 s.
        { from: iso(start + 6 * WEEK), to: iso(to), samples: 10, p50Ms: 1400, p95Ms: 1900, baselineP95Ms: 2700, regression: false },
      ]);
      assert.deepEqual(
        lint.weeks.map((w) => [w.samples, w.p50Ms, w.p95Ms, w.baselineP95Ms, w.regression]),
        [
          [0, null, null, 700, false],
          [0, null, null, 700, false],
          [0, null, null, 700, false],
        ],
      );
      assert.deepEqual(
        test.weeks.map((w) => [w.samples, w.p50Ms, w.p95Ms, w.baselineP95Ms, w.regression]),
        [
          [5, 5000, 5000, 5000, false],
          [5, 5000, 5000, 5000, false],
          [5, 5000, 5900, 5000, false], // 18% above: under the default 20%
        ],
      );
      // At 10%, the 5.9 s week of test is a regression too.
      const strict = trends({ weeks: 3, to: iso(to), thresholdPct: 10 });
      assert.deepEqual(
        strict.stages.map((s) => s.weeks.map((w) => w.regression)),
        [
          [false, true, false],
          [false, false, false],
          [false, false, true],
        ],
      );
    });

    it("says whether a new duration is slower than the 4 weeks before it, with the evidence", () => {
      weeks();
      // The 4 weeks before `to` hold the slow week: their p95 is 2.7 s, the limit 3.24 s.
      const slow = metrics.slowdown({ stage: 'build' }, { durationMs: 3300, startedAt: iso(to) });
      assert.ok(slow.ok, JSON.stringify(slow));
      assert.deepEqual(
        { ...slow.value, pctAbove: Math.round(slow.value.pctAbove! * 1000) / 1000 },
        {
          subject: { stage: 'build' },
          durationMs: 3300,
          baseline: { from: iso(to - 4 * WEEK), to: iso(to) },
          samples: 40,
          baselineP95Ms: 2700,
          thresholdPct: 20,
          limitMs: 3240,
          pctAbove: 22.222,
          slower: true,
          message: 'build took 3.3s, 22% above its 4-week p95 of 2.7s (40 before it): more than 20% slower',
        },
      );
      const fine = metrics.slowdown({ stage: 'build' }, { durationMs: 3000, startedAt: iso(to) });
      assert.ok(fine.ok);
      assert.equal(fine.value.slower, false);
      // Only what started before the new one: a week earlier, the slow week is the newest of the four.
      const earlier = metrics.slowdown({ stage: 'build' }, { durationMs: 2500, startedAt: iso(to - WEEK) }, 30);
      assert.ok(earlier.ok);
      assert.deepEqual([earlier.value.samples, earlier.value.baselineP95Ms, earlier.value.limitMs, earlier.value.slower], [40, 2700, 2700 * 1.3, false]);
      const none = metrics.slowdown({ stage: 'deploy' }, { durationMs: 1000, startedAt: iso(to) });
      assert.ok(none.ok);
      assert.deepEqual([none.value.samples, none.value.baselineP95Ms, none.value.slower], [0, null, false]);
      assert.match(none.value.message, /nothing to compare with/);
    });

    it("checks a deployment's duration against the environment's earlier deployments", () => {
      const day = Date.parse('2026-03-20T00:00:00.000Z');
      const durations = [60_000, 60_000, 90_000, 120_000];
      durations.forEach((ms, i) => {
        h.release('production', i + 1, null, iso(day + i * DAY));
        h.deploy('production', i + 1, { status: 'succeeded', startedAt: iso(day + i * DAY + MIN), finishedAt: iso(day + i * DAY + MIN + ms) });
      });
      h.release('production', 5, null, iso(day + 5 * DAY));
      h.deploy('production', 5, { status: 'failed', startedAt: iso(day + 5 * DAY), finishedAt: iso(day + 5 * DAY + 600_000) });
      h.release('staging', 1, null, iso(day + 5 * DAY));
      h.deploy('staging', 1, { status: 'succeeded', startedAt: iso(day + 5 * DAY), finishedAt: iso(day + 5 * DAY + 900_000) });
      const r = metrics.slowdown({ environment: 'production' }, { durationMs: 150_000, startedAt: iso(day + 6 * DAY) });
      assert.ok(r.ok, JSON.stringify(r));
      assert.deepEqual([r.value.samples, r.value.baselineP95Ms, r.value.limitMs, r.value.slower], [4, 120_000, 144_000, true]);
      assert.equal(r.value.message, 'deploying production took 2m 30s, 25% above its 4-week p95 of 2m 0s (4 before it): more than 20% slower');
    });

    it('reads stage durations from their index alone', () => {
      const plan = h.store.database
        .prepare(`EXPLAIN QUERY PLAN ${STAGE_DURATIONS_SQL}`)
        .all<{ detail: string }>('build', 0, 1)
        .map((r) => r.detail);
      assert.deepEqual(plan.length, 1, plan.join('; '));
      assert.match(plan[0], /USING COVERING INDEX stages_durations/);
    });

    it('says what is wrong with bad input', () => {
      const bad = [
        metrics.durations({ weeks: 0 }),
        metrics.durations({ thresholdPct: -5 }),
        metrics.builds({ days: 1.5 }),
        metrics.slowdown({ stage: 'build' }, { durationMs: -1, startedAt: iso(to) }),
        metrics.slowdown({ stage: 'build' }, { durationMs: 10, startedAt: 'soon' }),
        metrics.slowdown({} as { stage: string }, { durationMs: 10, startedAt: iso(to) }),
      ];
      for (const r of bad) {
        assert.equal(r.ok, false);
        if (!r.ok) assert.ok(r.error.error && r.error.fix, JSON.stringify(r.error));
      }
    });
  });
}
