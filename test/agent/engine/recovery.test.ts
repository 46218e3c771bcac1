import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlive, type Agent } from '../../../agent/agent';
import { AgentClient } from '../../../agent/cli/client';
import type { RunDetail, RunSummary, SequencedEvent } from '../../../agent/protocol';
import { processIdentity } from '../../../agent/steps/command';
import { Store } from '../../../agent/store/store';
import { finished, pipelineYaml, scratch, spawnAgent, startAgent, startRun, TempRepo, until } from '../../support/fixtures';

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

  it("stops the process groups a stopped agent's steps left, and only those, and records each step's group while it may run", async () => {
    const repo2 = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: long\n  run: echo $$ > "$OUT/pid"; sleep 300') });
    const out2 = scratch();
    const started: ChildProcess[] = [];
    const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;
    let orphan = 0;
    let agent: Agent | undefined;
    try {
      const group = (script: string) => {
        const c = spawn('/bin/sh', ['-c', script], { detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
        started.push(c);
        return c;
      };
      // A group that ignores SIGTERM: only SIGKILL, after the grace, stops it.
      const stubborn = group('trap "" TERM; while :; do sleep 1; done');
      // A group whose leader has exited, leaving a background child in it: still the step's group.
      const orphaning = group('sleep 300 & echo $!; read x');
      orphan = Number(await new Promise<string>((r) => orphaning.stdout!.once('data', (d) => r(String(d)))));
      // A process with a recorded pid but a later start: the step's group ended and its pid was reused.
      const unrelated = group('sleep 300');
      const identity = (pid: number) => processIdentity(pid) ?? null;
      const records = [
        { pgid: stubborn.pid!, identity: identity(stubborn.pid!) },
        { pgid: orphaning.pid!, identity: identity(orphaning.pid!) },
        { pgid: unrelated.pid!, identity: identity(process.pid) },
      ];
      assert.ok(records.every((r) => r.identity !== null && r.identity !== undefined), 'this system has /proc');
      assert.notEqual(records[2].identity, identity(unrelated.pid!));
      orphaning.stdin!.end();
      await until(() => exited(orphaning), 'the leader of the group to exit');
      assert.ok(isAlive(orphan), 'its background child runs on');

      const history = Store.open(path.join(repo2.dir, '.conveyor', 'history.db'));
      records.forEach((r, index) => history.recordStepProcess({ ...r, runId: 1, stage: 'long', attempt: 1, index }));
      history.dispose();

      agent = await startAgent(repo2, { env: { ...process.env, OUT: out2 } });
      await until(() => exited(stubborn), 'the group that ignores SIGTERM to be killed');
      assert.equal(stubborn.signalCode, 'SIGKILL');
      await until(() => !isAlive(orphan), 'the background child of the exited leader to stop');
      assert.ok(!exited(unrelated) && isAlive(unrelated.pid!), 'a process that only has a recorded pid was signalled');
      assert.deepEqual(agent.store.stepProcesses(), [], 'the records are cleared');

      // A step's group is recorded while it runs, with what tells it from a later process, and
      // forgotten once it is killed.
      const id = await startRun(agent, { trigger: 'manual' });
      const pid = await until(() => (fs.existsSync(path.join(out2, 'pid')) ? Number(fs.readFileSync(path.join(out2, 'pid'), 'utf8')) : 0), 'the step to start');
      assert.deepEqual(agent.store.stepProcesses(), [{ pgid: pid, identity: processIdentity(pid), runId: id, stage: 'long', attempt: 1, index: 0 }]);
      agent.engine.cancel(id);
      assert.equal((await finished(agent, id)).status, 'cancelled');
      assert.deepEqual(agent.store.stepProcesses(), []);
    } finally {
      await agent?.stop();
      for (const c of started) if (!exited(c)) process.kill(-c.pid!, 'SIGKILL');
      if (orphan && isAlive(orphan)) process.kill(orphan, 'SIGKILL');
      repo2.dispose();
      fs.rmSync(out2, { recursive: true, force: true });
    }
  });
});
