import * as assert from 'node:assert/strict';
import { Metrics, productionEnvironment } from '../../agent/metrics/metrics';
import type { DoraReport } from '../../agent/protocol';
import { ENGINES, TempDir } from '../agent/store/helpers';
import { HOUR, History, MIN } from './history';

for (const engine of ENGINES) {
  describe(`DORA keys on the ${engine} engine`, () => {
    let tmp: TempDir;
    let h: History;

    beforeEach(() => {
      tmp = new TempDir();
      h = new History(tmp.file('history.db'), engine);
    });

    afterEach(() => {
      h.dispose();
      tmp.dispose();
    });

    const report = (q: Parameters<Metrics['dora']>[0]): DoraReport => {
      const r = new Metrics(h.store).dora(q);
      assert.ok(r.ok, JSON.stringify(r));
      return r.value;
    };

    /**
     * Thirty days of production (March 2026) with every kind of change: plain deploys, a failed
     * one, a rollback, an automatic roll back, health going Degraded and back, a redeploy of an
     * old commit, a rejected approval, a run without a commit time, a staging failure that must
     * not count, and a failure restored only after the window.
     */
    function month(): { failed: number[] } {
      h.run(1, { queuedAt: '2026-02-20T10:30:00.000Z', commitTime: '2026-02-20T10:00:00.000Z' });
      h.release('production', 1, 1, '2026-02-20T11:00:00.000Z');
      h.deploy('production', 1, { status: 'succeeded', startedAt: '2026-02-20T11:50:00.000Z', finishedAt: '2026-02-20T12:00:00.000Z' });

      h.run(2, { queuedAt: '2026-03-02T08:10:00.000Z', commitTime: '2026-03-02T08:00:00.000Z' });
      h.release('production', 2, 2, '2026-03-02T09:00:00.000Z');
      h.deploy('production', 2, { status: 'succeeded', startedAt: '2026-03-02T09:50:00.000Z', finishedAt: '2026-03-02T10:00:00.000Z', fromRelease: 1 });

      h.run(3, { queuedAt: '2026-03-05T09:05:00.000Z', commitTime: '2026-03-05T09:00:00.000Z' });
      h.release('production', 3, 3, '2026-03-05T09:10:00.000Z');
      const d3 = h.deploy('production', 3, { status: 'failed', startedAt: '2026-03-05T09:20:00.000Z', finishedAt: '2026-03-05T09:30:00.000Z', reason: 'health check timed out' });

      h.run(4, { queuedAt: '2026-03-05T10:05:00.000Z', commitTime: '2026-03-05T10:00:00.000Z' });
      h.release('production', 4, 4, '2026-03-05T10:30:00.000Z');
      h.health('production', 'Progressing', 4, '2026-03-05T11:00:00.000Z');
      h.deploy('production', 4, { status: 'succeeded', startedAt: '2026-03-05T11:20:00.000Z', finishedAt: '2026-03-05T11:30:00.000Z' });

      h.run(5, { queuedAt: '2026-03-10T00:05:00.000Z', commitTime: '2026-03-10T00:00:00.000Z' });
      h.release('production', 5, 5, '2026-03-10T05:00:00.000Z');
      const d5 = h.deploy('production', 5, { status: 'succeeded', startedAt: '2026-03-10T05:50:00.000Z', finishedAt: '2026-03-10T06:00:00.000Z', fromRelease: 4 });
      h.health('production', 'Degraded', 5, '2026-03-11T00:00:00.000Z');
      h.health('production', 'Healthy', 5, '2026-03-11T00:30:00.000Z');
      h.deploy('production', 4, { status: 'succeeded', trigger: 'rollback', startedAt: '2026-03-12T00:00:00.000Z', finishedAt: '2026-03-12T00:10:00.000Z', fromRelease: 5 });

      h.run(6, { queuedAt: '2026-03-15T00:05:00.000Z', commitTime: '2026-03-15T00:00:00.000Z' });
      h.release('production', 6, 6, '2026-03-15T00:30:00.000Z');
      const d7 = h.deploy('production', 6, { status: 'rolled_back', startedAt: '2026-03-15T00:50:00.000Z', finishedAt: '2026-03-15T01:00:00.000Z', fromRelease: 4 });
      h.health('production', 'Degraded', 4, '2026-03-15T01:05:00.000Z');
      h.health('production', 'Healthy', 4, '2026-03-15T03:00:00.000Z');

      h.run(7, { queuedAt: '2026-03-20T00:05:00.000Z', commitTime: '2026-03-20T00:00:00.000Z' });
      h.release('production', 7, 7, '2026-03-20T12:00:00.000Z');
      h.deploy('production', 7, { status: 'succeeded', startedAt: '2026-03-20T23:50:00.000Z', finishedAt: '2026-03-21T00:00:00.000Z' });

      // An old commit (first deployed in February) deployed again: a deployment, not a new lead time.
      h.release('production', 8, 1, '2026-03-24T12:00:00.000Z');
      h.deploy('production', 8, { status: 'succeeded', trigger: 'manual', startedAt: '2026-03-24T23:50:00.000Z', finishedAt: '2026-03-25T00:00:00.000Z' });

      h.run(9, { queuedAt: '2026-03-25T12:05:00.000Z', commitTime: '2026-03-25T12:00:00.000Z' });
      h.release('production', 9, 9, '2026-03-25T13:00:00.000Z');
      h.deploy('production', 9, { status: 'rejected', startedAt: '2026-03-25T13:00:00.000Z', finishedAt: '2026-03-26T00:00:00.000Z' });
      h.release('staging', 1, 9, '2026-03-26T11:00:00.000Z');
      h.deploy('staging', 1, { status: 'failed', startedAt: '2026-03-26T11:50:00.000Z', finishedAt: '2026-03-26T12:00:00.000Z' });
      h.health('staging', 'Degraded', 1, '2026-03-26T12:01:00.000Z');

      // Recorded before commit times were kept.
      h.run(8, { queuedAt: '2026-03-26T20:00:00.000Z', commitTime: null });
      h.release('production', 10, 8, '2026-03-26T21:00:00.000Z');
      h.deploy('production', 10, { status: 'succeeded', startedAt: '2026-03-26T23:50:00.000Z', finishedAt: '2026-03-27T00:00:00.000Z' });

      h.run(10, { queuedAt: '2026-03-30T10:05:00.000Z', commitTime: '2026-03-30T10:00:00.000Z' });
      h.release('production', 11, 10, '2026-03-30T11:00:00.000Z');
      const d13 = h.deploy('production', 11, { status: 'failed', startedAt: '2026-03-30T11:50:00.000Z', finishedAt: '2026-03-30T12:00:00.000Z' });
      // After the window: restores the last incident, counts for nothing else.
      h.deploy('production', 4, { status: 'succeeded', trigger: 'manual', startedAt: '2026-03-31T23:50:00.000Z', finishedAt: '2026-04-01T00:00:00.000Z' });
      return { failed: [d3.id, d5.id, d7.id, d13.id] };
    }

    it('answers the four keys of a month of production exactly, with their bands', () => {
      const { failed } = month();
      const r = report({ environment: 'production', days: 30, to: '2026-03-31T00:00:00.000Z' });
      assert.deepEqual(r.window, { from: '2026-03-01T00:00:00.000Z', to: '2026-03-31T00:00:00.000Z' });

      // Succeeded deployments of a release, rollbacks aside: #2, #4, #5, #8, #9 (old commit), #12.
      assert.equal(r.deploymentFrequency.deployments, 6);
      assert.equal(r.deploymentFrequency.perDay, 6 / 30);
      assert.equal(r.deploymentFrequency.perWeek, (6 / 30) * 7);
      assert.equal(r.deploymentFrequency.band, 'high');
      assert.equal(r.deploymentFrequency.daily.length, 30);
      assert.equal(r.deploymentFrequency.daily[0].date, '2026-03-01');
      assert.equal(r.deploymentFrequency.daily[29].date, '2026-03-30');
      assert.deepEqual(
        r.deploymentFrequency.daily.filter((d) => d.deployments > 0),
        ['2026-03-02', '2026-03-05', '2026-03-10', '2026-03-21', '2026-03-25', '2026-03-27'].map((date) => ({ date, deployments: 1 })),
      );

      // First production deploy per commit in the window: c2 2h, c4 1h30, c5 6h, c7 24h; c8 has no commit time.
      assert.deepEqual(r.leadTime, { samples: 4, withoutCommitTime: 1, medianMs: 2 * HOUR, p90Ms: 24 * HOUR, band: 'high' });

      // Nine changes; #3 failed, #5 was rolled back by #6, #7 rolled back, #13 failed.
      assert.deepEqual(r.changeFailureRate, { deployments: 9, failures: 4, rate: 4 / 9, failed, band: 'medium' });

      assert.deepEqual(r.timeToRestore.incidents, [
        { startedAt: '2026-03-05T09:30:00.000Z', cause: `deploy #${failed[0]} failed`, restoredAt: '2026-03-05T11:30:00.000Z', restoredBy: `deploy #${failed[0] + 1} succeeded`, durationMs: 2 * HOUR },
        { startedAt: '2026-03-11T00:00:00.000Z', cause: 'health Degraded', restoredAt: '2026-03-11T00:30:00.000Z', restoredBy: 'health Healthy', durationMs: 30 * MIN },
        { startedAt: '2026-03-15T01:00:00.000Z', cause: `deploy #${failed[2]} rolled back`, restoredAt: '2026-03-15T03:00:00.000Z', restoredBy: 'health Healthy', durationMs: 2 * HOUR },
        { startedAt: '2026-03-30T12:00:00.000Z', cause: `deploy #${failed[3]} failed`, restoredAt: '2026-04-01T00:00:00.000Z', restoredBy: `deploy #${failed[3] + 1} succeeded`, durationMs: 36 * HOUR },
      ]);
      assert.equal(r.timeToRestore.medianMs, 2 * HOUR);
      assert.equal(r.timeToRestore.band, 'high');
    });

    it('takes the window as given, and leaves an incident open when nothing restored it yet', () => {
      const { failed } = month();
      const r = report({ environment: 'production', from: '2026-03-30T00:00:00.000Z', to: '2026-03-31T00:00:00.000Z' });
      assert.equal(r.deploymentFrequency.deployments, 0);
      assert.equal(r.deploymentFrequency.band, 'low');
      assert.deepEqual(r.leadTime, { samples: 0, withoutCommitTime: 0, medianMs: null, p90Ms: null, band: null });
      assert.deepEqual(r.changeFailureRate, { deployments: 1, failures: 1, rate: 1, failed: [failed[3]], band: 'low' });
      assert.equal(r.timeToRestore.incidents.length, 1);

      // Without the restore after the window, the incident is still open.
      const t = new TempDir();
      const h2 = new History(t.file('h.db'), engine);
      try {
        h2.release('production', 1, null, '2026-03-30T11:00:00.000Z');
        h2.deploy('production', 1, { status: 'failed', startedAt: '2026-03-30T11:50:00.000Z', finishedAt: '2026-03-30T12:00:00.000Z' });
        const open = new Metrics(h2.store).dora({ environment: 'production', days: 1, to: '2026-03-31T00:00:00.000Z' });
        assert.ok(open.ok);
        assert.deepEqual(open.value.timeToRestore, {
          incidents: [{ startedAt: '2026-03-30T12:00:00.000Z', cause: 'deploy #1 failed', restoredAt: null, restoredBy: null, durationMs: null }],
          medianMs: null,
          band: null,
        });
      } finally {
        h2.dispose();
        t.dispose();
      }
    });

    it('does not count a failure that began before the window, however long it lasts in it', () => {
      h.release('production', 1, null, '2026-02-28T22:00:00.000Z');
      h.deploy('production', 1, { status: 'failed', startedAt: '2026-02-28T22:50:00.000Z', finishedAt: '2026-02-28T23:00:00.000Z' });
      h.health('production', 'Degraded', null, '2026-03-01T01:00:00.000Z');
      h.health('production', 'Healthy', 1, '2026-03-01T02:00:00.000Z');
      h.health('production', 'Missing', 1, '2026-03-02T00:00:00.000Z');
      h.health('production', 'Healthy', 1, '2026-03-02T00:05:00.000Z');
      const r = report({ environment: 'production', days: 30, to: '2026-03-31T00:00:00.000Z' });
      assert.deepEqual(r.timeToRestore.incidents, [
        { startedAt: '2026-03-02T00:00:00.000Z', cause: 'health Missing', restoredAt: '2026-03-02T00:05:00.000Z', restoredBy: 'health Healthy', durationMs: 5 * MIN },
      ]);
      assert.equal(r.timeToRestore.band, 'elite');
      assert.deepEqual(r.changeFailureRate, { deployments: 0, failures: 0, rate: null, failed: [], band: null });
    });

    it('rates on-demand deploys with one-hour lead times as elite', () => {
      for (let day = 1; day <= 7; day++) {
        for (let k = 0; k < 2; k++) {
          const id = day * 10 + k;
          const at = Date.parse(`2026-03-0${day}T0${k * 4 + 1}:00:00.000Z`);
          h.run(id, { queuedAt: new Date(at + MIN).toISOString(), commitTime: new Date(at).toISOString() });
          h.release('production', id, id, new Date(at + 10 * MIN).toISOString());
          h.deploy('production', id, { status: 'succeeded', startedAt: new Date(at + 20 * MIN).toISOString(), finishedAt: new Date(at + 30 * MIN).toISOString() });
        }
      }
      const r = report({ environment: 'production', days: 7, to: '2026-03-08T00:00:00.000Z' });
      assert.equal(r.deploymentFrequency.deployments, 14);
      assert.equal(r.deploymentFrequency.perDay, 2);
      assert.equal(r.deploymentFrequency.band, 'elite');
      assert.deepEqual(r.leadTime, { samples: 14, withoutCommitTime: 0, medianMs: 30 * MIN, p90Ms: 30 * MIN, band: 'elite' });
      assert.equal(r.changeFailureRate.band, 'elite');
    });

    it('says what is wrong with a bad window', () => {
      const m = new Metrics(h.store);
      const cases: [Parameters<Metrics['dora']>[0], RegExp][] = [
        [{ environment: '' }, /"environment" must be a name/],
        [{ environment: 'production', days: 0 }, /"days" must be a whole number from 1/],
        [{ environment: 'production', to: 'yesterday' }, /"to" is not a time/],
        [{ environment: 'production', from: '2026-03-02T00:00:00Z', to: '2026-03-01T00:00:00Z' }, /"from" must be before "to"/],
        [{ environment: 'production', from: '2026-03-01T00:00:00Z', days: 3 }, /not both/],
      ];
      for (const [q, message] of cases) {
        const r = m.dora(q);
        assert.equal(r.ok, false);
        if (!r.ok) {
          assert.match(r.error.error, message);
          assert.ok(r.error.fix, 'says how to fix it');
        }
      }
    });
  });
}

describe('which environment is production', () => {
  it('is the one named production or prod, else the last declared one that is not a preview template', () => {
    assert.equal(productionEnvironment(['staging', 'production', 'canary']), 'production');
    assert.equal(productionEnvironment(['staging', 'Prod']), 'Prod');
    assert.equal(productionEnvironment(['prod', 'production']), 'production');
    assert.equal(
      productionEnvironment([
        { name: 'dev', preview: false },
        { name: 'live', preview: false },
        { name: 'review', preview: true },
      ]),
      'live',
    );
    assert.equal(productionEnvironment([{ name: 'review', preview: true }]), null);
    assert.equal(productionEnvironment([]), null);
  });
});
