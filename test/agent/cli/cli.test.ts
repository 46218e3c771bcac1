import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { RunDetail, RunSummary } from '../../../agent/protocol';
import { cli, pipelineYaml, readDiscoveryFile, TempRepo, until } from '../../support/fixtures';

/** The `conveyor` CLI as users and scripts run it: the bundled binary, a real repo, a background agent. */
describe('conveyor CLI', function () {
  this.timeout(120_000);
  let repo: TempRepo;

  before(() => {
    repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`
- name: build
  run: echo "built it"
- name: test
  needs: [build]
  run: echo "testing"; [ ! -e fail-me ]
`),
    });
  });

  after(async () => {
    await cli(['stop'], { cwd: repo.dir });
    repo.dispose();
  });

  it('runs the pipeline, starting the agent in the background, and exits 0 on success', async () => {
    const r = await cli(['run'], { cwd: repo.dir });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /starting the agent in the background/);
    assert.match(r.stdout, /^run #1 of /m);
    assert.match(r.stdout, /^build │ built it$/m);
    assert.match(r.stdout, /^✓ build /m);
    assert.match(r.stdout, /^run #1 succeeded in /m);
    assert.match(r.stdout, /^logs: conveyor logs 1/m);
    const d = readDiscoveryFile(repo.dir)!;
    assert.ok(d.pid !== process.pid);
  });

  let failedRun: number;

  it('exits 1 when the pipeline fails, and --json prints the run', async () => {
    repo.write({ 'fail-me': '' });
    repo.commit('make the test fail');
    const r = await cli(['run', '--json'], { cwd: repo.dir });
    assert.equal(r.code, 1, r.stderr);
    const run = JSON.parse(r.stdout) as RunDetail;
    failedRun = run.id;
    assert.equal(run.status, 'failed');
    assert.deepEqual(run.stages.map((s) => s.status), ['succeeded', 'failed']);
  });

  it('history, status and logs answer in text and JSON', async () => {
    const h = await cli(['history', '--json'], { cwd: repo.dir });
    assert.equal(h.code, 0);
    const runs = JSON.parse(h.stdout) as RunSummary[];
    // The background agent follows the branch too: the commit above also started a run.
    assert.deepEqual(runs.filter((r) => r.trigger === 'manual').map((r) => r.id), [failedRun, 1]);
    assert.deepEqual(runs.map((r) => r.id), [...runs.map((r) => r.id)].sort((a, b) => b - a), 'newest first');
    const text = await cli(['history'], { cwd: repo.dir });
    assert.match(text.stdout, /^RUN\s+STATUS\s+TRIGGER/m);
    assert.match(text.stdout, new RegExp(`^#${failedRun}\\s+failed\\s+manual`, 'm'));

    const status = await cli(['status', String(failedRun)], { cwd: repo.dir });
    assert.equal(status.code, 1);
    assert.match(status.stdout, /✗ test .*exit code 1 in step 1/);

    const logs = await cli(['logs', '1', '--stage', 'build'], { cwd: repo.dir });
    assert.equal(logs.code, 0);
    assert.match(logs.stdout, /built it/);
    const json = JSON.parse((await cli(['status', '--json'], { cwd: repo.dir })).stdout);
    assert.ok(json.latestRun.id >= runs[0].id);
    assert.equal(json.agent.ok, true);
  });

  it('follows a run from another terminal and cancels it', async () => {
    repo.write({ 'conveyor.yml': pipelineYaml(`- name: wait\n  when: manual\n  run: echo waiting; while [ ! -e "$OUT/never" ]; do sleep 0.1; done`) });
    repo.commit('a long stage');
    const started = await cli(['run', '--detach', '--json'], { cwd: repo.dir });
    assert.equal(started.code, 0, started.stderr);
    const id = (JSON.parse(started.stdout) as RunSummary).id;
    const follow = cli(['logs', String(id), '--follow'], { cwd: repo.dir });
    await until(async () => {
      const s = JSON.parse((await cli(['status', String(id), '--json'], { cwd: repo.dir })).stdout) as RunDetail;
      return s.steps.some((st) => st.status === 'running');
    }, 'the step to run');
    const c = await cli(['cancel', String(id)], { cwd: repo.dir });
    assert.equal(c.code, 0);
    const f = await follow;
    assert.equal(f.code, 1);
    assert.match(f.stdout, /waiting/);
    const s = JSON.parse((await cli(['status', String(id), '--json'], { cwd: repo.dir })).stdout) as RunDetail;
    assert.equal(s.status, 'cancelled');
  });

  it('exits 2 on usage errors and unknown runs', async () => {
    assert.equal((await cli(['frobnicate'], { cwd: repo.dir })).code, 2);
    assert.equal((await cli(['run', '--bogus'], { cwd: repo.dir })).code, 2);
    const unknown = await cli(['status', '999'], { cwd: repo.dir });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no run #999/);
    const badStage = await cli(['run', '--stage', 'wiat'], { cwd: repo.dir });
    assert.equal(badStage.code, 2);
    assert.match(badStage.stderr, /did you mean "wait"\?/);
  });

  it('validate prints one path:line:col line per problem and exits 2', async () => {
    const dir = new TempRepo({
      'conveyor.yml': 'pipeline:\n  stages:\n    - name: a\n      run: x\n      needs: [b]\n    - name: a\n      run: y\n',
    });
    try {
      const r = await cli(['validate'], { cwd: dir.dir });
      assert.equal(r.code, 2);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 2, r.stdout);
      for (const line of lines) assert.match(line, /^conveyor\.yml:\d+:\d+: error: /);
      assert.match(lines[0], /^conveyor\.yml:5:15: /);
      fs.writeFileSync(dir.path('conveyor.yml'), 'pipeline:\n  stages:\n    - name: a\n      run: x\n');
      const ok = await cli(['validate'], { cwd: dir.dir });
      assert.equal(ok.code, 0);
      assert.match(ok.stderr, /is valid: pipeline ".*", 1 stage/);
    } finally {
      dir.dispose();
    }
  });

  it('stop stops the background agent', async () => {
    const d = readDiscoveryFile(repo.dir)!;
    const r = await cli(['stop'], { cwd: repo.dir });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /stopped the agent/);
    assert.throws(() => process.kill(d.pid, 0));
    assert.equal(fs.existsSync(repo.path('.conveyor', 'agent.json')), false);
  });
});

describe('conveyor CLI: a big test report', function () {
  this.timeout(120_000);

  it('prints one line of counts for a report that comes in several events, with its failures', async () => {
    // 2,500 results: more than one event of results.
    const gen = `const lines = ['TAP version 13', '1..2500'];
for (let i = 1; i <= 2500; i++) lines.push((i % 1000 === 0 ? 'not ok ' : 'ok ') + i + ' - case ' + i);
require('node:fs').writeFileSync('report.tap', lines.join('\\n') + '\\n');
`;
    const repo = new TempRepo({
      'gen.js': gen,
      'conveyor.yml': pipelineYaml(`
- name: test
  run: node gen.js
  report: { format: tap, path: report.tap }
`),
    });
    try {
      // The stage's command exits 0: the run succeeds, and says what the report holds.
      const r = await cli(['run'], { cwd: repo.dir });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const counts = r.stdout.split('\n').filter((l) => /^ {2}test: tests /.test(l));
      assert.deepEqual(counts, ['  test: tests 2498 passed, 2 failed, 0 skipped']);
      assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('    ✗ ')).map((l) => l.replace(/:.*$/, '').trim()), ['✗ case 1000', '✗ case 2000']);
    } finally {
      await cli(['stop'], { cwd: repo.dir });
      repo.dispose();
    }
  });
});
