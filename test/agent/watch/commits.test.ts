import * as assert from 'node:assert/strict';
import type { Agent } from '../../../agent/agent';
import { finished, pipelineYaml, startAgent, TempRepo, until } from '../../support/fixtures';

describe('commit trigger', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;

  beforeEach(async () => {
    repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`
- name: on-commit
  run: echo "$CONVEYOR_COMMIT"
- name: manual-only
  when: manual
  run: "true"
`),
    });
    // A long interval: the test decides when the watcher looks.
    agent = await startAgent(repo, { commitTrigger: true, pollMs: 60_000 });
    await agent.lookForCommits();
  });

  afterEach(async () => {
    await agent.stop();
    repo.dispose();
  });

  it('does not run what was already there when the agent started', () => {
    assert.equal(agent.store.listRuns(10).length, 0);
  });

  it('starts one run per new tip, of the newest commit, with the commit stages only', async () => {
    repo.write({ 'a.txt': '1' });
    repo.commit('one');
    repo.write({ 'a.txt': '2' });
    repo.commit('two');
    repo.write({ 'a.txt': '3' });
    const sha = repo.commit('three');
    await agent.lookForCommits();
    await until(() => agent.store.listRuns(10).length > 0, 'the commit run');
    const runs = agent.store.listRuns(10);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].trigger, 'commit');
    assert.equal(runs[0].commit, sha);
    assert.equal(runs[0].branch, 'main');
    assert.equal(runs[0].title, 'three');
    assert.deepEqual(runs[0].requestedStages, ['on-commit']);
    const run = await finished(agent, runs[0].id);
    assert.equal(run.status, 'succeeded');
    await agent.lookForCommits();
    assert.equal(agent.store.listRuns(10).length, 1, 'no second run for the same tip');
  });

  it('shows a commit whose conveyor.yml is invalid as a failed run with the reason', async () => {
    repo.write({ 'conveyor.yml': 'pipeline:\n  stages:\n    - name: x\n      runn: echo\n' });
    const sha = repo.commit('typo');
    await agent.lookForCommits();
    await until(() => agent.store.listRuns(10).length > 0, 'the failed run');
    const run = agent.store.getRun(agent.store.listRuns(1)[0].id)!;
    assert.equal(run.status, 'failed');
    assert.equal(run.commit, sha);
    assert.equal(run.stages.length, 0);
    assert.match(run.reason!, /^conveyor\.yml at [0-9a-f]{7} is not valid: conveyor\.yml:4:7: unknown key "runn"/);
  });

  it('notices commits made while the agent was down', async () => {
    await agent.stop();
    repo.write({ 'b.txt': 'x' });
    const sha = repo.commit('while down');
    agent = await startAgent(repo, { commitTrigger: true, pollMs: 60_000 });
    await until(() => agent.store.listRuns(10).length === 1, 'a run for the commit made while down');
    assert.equal(agent.store.listRuns(10)[0].commit, sha);
  });
});
