import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AgentClient } from '../../../agent/cli/client';
import type { RunDetail, RunSummary, SequencedEvent } from '../../../agent/protocol';
import { pipelineYaml, scratch, spawnAgent, TempRepo, until } from '../../support/fixtures';

/** kill -9 the agent process mid-run, start it again, and check what the history says. */
describe('crash recovery', function () {
  this.timeout(90_000);
  let repo: TempRepo;
  let out: string;

  before(() => {
    out = scratch();
    repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`
- name: first
  run: echo first
- name: long
  needs: [first]
  run: touch "$OUT/long-started"; sleep 300
- name: last
  needs: [long]
  run: echo last
`),
    });
  });

  after(() => {
    repo.dispose();
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('marks the run interrupted, keeps every event once, and runs again', async () => {
    const a = await spawnAgent(repo.dir, { OUT: out });
    const client = new AgentClient(a.discovery);
    const run = await client.request<RunSummary>('POST', '/runs', {});
    await until(() => fs.existsSync(path.join(out, 'long-started')), 'the long stage to start');
    const before = await client.request<SequencedEvent[]>('GET', '/events?since=0&limit=10000');
    const worktrees = repo.git('worktree', 'list').trim().split('\n').length;
    assert.equal(worktrees, 2, 'the run has its snapshot');

    a.child.kill('SIGKILL');
    await new Promise((r) => a.child.once('exit', r));

    const b = await spawnAgent(repo.dir, { OUT: out });
    try {
      const c2 = new AgentClient(b.discovery);
      const detail = await c2.request<RunDetail>('GET', `/runs/${run.id}`);
      assert.equal(detail.status, 'interrupted');
      assert.match(detail.reason!, /the agent stopped while this run was in progress/);
      assert.deepEqual(
        detail.stages.map((s) => [s.name, s.status]),
        [
          ['first', 'succeeded'],
          ['long', 'interrupted'],
          ['last', 'skipped'],
        ],
      );
      assert.equal(detail.steps.find((s) => s.stage === 'long')!.status, 'interrupted');
      // Nothing lost, nothing twice: the old events are a prefix of the new history.
      const after = await c2.request<SequencedEvent[]>('GET', '/events?since=0&limit=10000');
      assert.deepEqual(after.slice(0, before.length), before);
      const seqs = after.map((e) => e.seq);
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
      const started = after.filter((e) => e.type === 'agent.started');
      assert.equal(started.length, 2);
      const last = started[1];
      assert.ok(last.type === 'agent.started' && last.interruptedRuns.includes(run.id));
      // The leftover snapshot is pruned.
      assert.equal(repo.git('worktree', 'list').trim().split('\n').length, 1);
      // And the agent works: a new run of the first stage succeeds.
      const again = await c2.request<RunSummary>('POST', '/runs', { stages: ['first'] });
      await until(async () => (await c2.request<RunDetail>('GET', `/runs/${again.id}`)).status === 'succeeded', 'the new run');
    } finally {
      b.child.kill('SIGTERM');
      await new Promise((r) => b.child.once('exit', r));
    }
  });
});
