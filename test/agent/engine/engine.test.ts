import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Agent } from '../../../agent/agent';
import { eventsOf, finished, pipelineYaml, scratch, startAgent, startRun, TempRepo, until } from '../../support/fixtures';

/**
 * The engine against real processes in real git repositories. Stages prove ordering and
 * parallelism with marker files in a scratch folder (passed as $OUT), never with timings.
 */
describe('engine', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;
  let out: string;

  const setup = async (stages: string, extra = '', env: NodeJS.ProcessEnv = {}) => {
    out = scratch();
    repo = new TempRepo({ 'conveyor.yml': pipelineYaml(stages, extra) });
    agent = await startAgent(repo, { env: { ...process.env, OUT: out, ...env } });
  };

  afterEach(async () => {
    await agent?.stop();
    repo?.dispose();
    if (out) fs.rmSync(out, { recursive: true, force: true });
  });

  it('runs the DAG in order, with independent stages in parallel', async () => {
    // b and c each wait for the other's start marker: they can only both succeed if they overlap.
    const waitFor = (f: string) => `i=0; while [ ! -e "$OUT/${f}" ]; do i=$((i+1)); [ $i -gt 400 ] && exit 7; sleep 0.05; done`;
    await setup(`
- name: a
  run: echo a >> "$OUT/order"
- name: b
  needs: [a]
  run: touch "$OUT/b-started"; ${waitFor('c-started')}; echo b >> "$OUT/order"
- name: c
  needs: [a]
  run: touch "$OUT/c-started"; ${waitFor('b-started')}; echo c >> "$OUT/order"
- name: d
  needs: [b, c]
  run: echo d >> "$OUT/order"
`);
    const id = await startRun(agent, { trigger: 'manual' });
    const run = await finished(agent, id);
    assert.equal(run.status, 'succeeded', JSON.stringify(run.stages));
    const order = fs.readFileSync(path.join(out, 'order'), 'utf8').trim().split('\n');
    assert.equal(order[0], 'a');
    assert.deepEqual(order.slice(1, 3).sort(), ['b', 'c']);
    assert.equal(order[3], 'd');
    assert.deepEqual(run.stages.map((s) => s.name), ['a', 'b', 'c', 'd']);
  });

  it('respects maxParallel', async () => {
    // With maxParallel 1, b must not see c's marker while it runs, whatever order they start in.
    await setup(
      `
- name: b
  run: touch "$OUT/b-on"; sleep 0.3; [ ! -e "$OUT/c-on" ] || echo overlap >> "$OUT/overlap"; rm "$OUT/b-on"
- name: c
  run: touch "$OUT/c-on"; sleep 0.3; [ ! -e "$OUT/b-on" ] || echo overlap >> "$OUT/overlap"; rm "$OUT/c-on"
`.replace(/^/, ''),
    );
    fs.writeFileSync(repo.path('conveyor.yml'), fs.readFileSync(repo.path('conveyor.yml'), 'utf8').replace('maxParallel: 4', 'maxParallel: 1'));
    repo.commit('one at a time');
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(run.status, 'succeeded');
    assert.equal(fs.existsSync(path.join(out, 'overlap')), false);
  });

  it('skips the dependents of a failed stage and finishes the others', async () => {
    await setup(`
- name: build
  run: echo building; exit 3
- name: test
  needs: [build]
  run: touch "$OUT/test-ran"
- name: lint
  run: touch "$OUT/lint-ran"
`);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(run.status, 'failed');
    const byName = Object.fromEntries(run.stages.map((s) => [s.name, s]));
    assert.equal(byName.build.status, 'failed');
    assert.match(byName.build.message!, /exit code 3 in step 1/);
    assert.equal(byName.test.status, 'skipped');
    assert.equal(byName.test.message, 'needs build (failed)');
    assert.equal(byName.lint.status, 'succeeded');
    assert.equal(fs.existsSync(path.join(out, 'test-ran')), false);
    assert.equal(fs.existsSync(path.join(out, 'lint-ran')), true);
  });

  it('runs each command of a list as a step and stops at the first failure', async () => {
    await setup(`
- name: s
  run:
    - echo one
    - "false"
    - touch "$OUT/third"
`);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.deepEqual(
      run.steps.map((s) => [s.index, s.status, s.exitCode]),
      [
        [0, 'succeeded', 0],
        [1, 'failed', 1],
        [2, 'skipped', null],
      ],
    );
    assert.equal(fs.existsSync(path.join(out, 'third')), false);
  });

  it('cancel kills the whole process group', async () => {
    await setup(`
- name: long
  run: sleep 300 & echo $! > "$OUT/child.pid"; touch "$OUT/started"; wait
`);
    const id = await startRun(agent, { trigger: 'manual' });
    await until(() => fs.existsSync(path.join(out, 'started')), 'the stage to start');
    const childPid = Number(fs.readFileSync(path.join(out, 'child.pid'), 'utf8'));
    assert.ok(alive(childPid));
    agent.engine.cancel(id);
    const run = await finished(agent, id);
    assert.equal(run.status, 'cancelled');
    assert.equal(run.stages[0].status, 'cancelled');
    await until(() => !alive(childPid), 'the background child to be killed');
  });

  it('a time-out kills the stage and marks it timed out', async () => {
    await setup(`
- name: slow
  timeout: 1s
  run: sleep 0.2 & sleep 60
- name: after
  needs: [slow]
  run: "true"
`);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(run.status, 'failed');
    assert.equal(run.stages[0].status, 'timed_out');
    assert.match(run.stages[0].message!, /timed out after 1s/);
    assert.equal(run.stages[1].status, 'skipped');
    assert.equal(run.steps.find((s) => s.stage === 'slow')!.status, 'timed_out');
  });

  it('retries record one attempt each', async () => {
    await setup(`
- name: flaky
  retries: 2
  run: n=$(cat "$OUT/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$OUT/n"; echo "attempt $n"; [ $n -ge 2 ]
`);
    const id = await startRun(agent, { trigger: 'manual' });
    const run = await finished(agent, id);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.stages[0].attempt, 2);
    assert.deepEqual(
      run.steps.map((s) => [s.attempt, s.status]),
      [
        [1, 'failed'],
        [2, 'succeeded'],
      ],
    );
    const logs = eventsOf(agent, id).filter((e) => e.type === 'log');
    assert.deepEqual(
      logs.map((e) => e.type === 'log' && [e.attempt, e.text.trim()]),
      [
        [1, 'attempt 1'],
        [2, 'attempt 2'],
      ],
    );
  });

  it('runs in a clean snapshot of the commit, not the dirty working tree', async () => {
    await setup(`
- name: look
  run: cat data.txt > "$OUT/seen"; pwd > "$OUT/pwd"; git status --porcelain > "$OUT/status"
`);
    repo.write({ 'data.txt': 'committed\n' });
    const sha = repo.commit('data');
    repo.write({ 'data.txt': 'dirty edit\n' });
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(run.status, 'succeeded');
    assert.equal(run.commit, sha);
    assert.equal(run.title, 'data');
    assert.equal(run.branch, 'main');
    assert.equal(fs.readFileSync(path.join(out, 'seen'), 'utf8'), 'committed\n');
    assert.notEqual(fs.readFileSync(path.join(out, 'pwd'), 'utf8').trim(), repo.dir);
    assert.equal(fs.readFileSync(path.join(out, 'status'), 'utf8'), '');
    // The snapshot is gone afterwards, and the user's tree shows nothing from the agent.
    assert.deepEqual(fs.readdirSync(path.join(repo.dir, '.conveyor', 'work')), []);
    assert.equal(repo.git('status', '--porcelain'), ' M data.txt\n');
    assert.equal(repo.git('worktree', 'list').trim().split('\n').length, 1);

    const wt = await finished(agent, await startRun(agent, { trigger: 'manual', workingTree: true }));
    assert.equal(wt.commit, null);
    assert.equal(fs.readFileSync(path.join(out, 'seen'), 'utf8'), 'dirty edit\n');
  });

  it('pins a run to an older commit and uses the config committed there', async () => {
    await setup(`
- name: one
  run: echo one > "$OUT/which"
`);
    const first = repo.git('rev-parse', 'HEAD').trim();
    repo.write({ 'conveyor.yml': pipelineYaml(`- name: two\n  run: echo two > "$OUT/which"`) });
    repo.commit('rename the stage');
    const run = await finished(agent, await startRun(agent, { trigger: 'manual', commit: first.slice(0, 8) }));
    assert.equal(run.commit, first);
    assert.deepEqual(run.stages.map((s) => s.name), ['one']);
    assert.equal(fs.readFileSync(path.join(out, 'which'), 'utf8'), 'one\n');
  });

  it('refuses bad requests with a message and a fix', async () => {
    await setup(`
- name: test
  run: "true"
`);
    const unknownStage = await agent.engine.start({ trigger: 'manual', stages: ['tset'] });
    assert.ok(!unknownStage.ok);
    assert.equal(unknownStage.error.error, 'no stage named "tset"');
    assert.equal(unknownStage.error.fix, 'did you mean "test"?');
    const unknownCommit = await agent.engine.start({ trigger: 'manual', commit: 'no-such-branch' });
    assert.ok(!unknownCommit.ok);
    assert.match(unknownCommit.error.error, /git knows no commit "no-such-branch"/);
  });

  it('a config that does not validate starts no run', async () => {
    await setup(`
- name: test
  run: "true"
`);
    repo.write({ 'conveyor.yml': 'pipeline:\n  stages:\n    - name: test\n      run: "true"\n      neds: [x]\n' });
    repo.commit('broken config');
    const before = agent.store.listRuns(100).length;
    const r = await agent.engine.start({ trigger: 'manual' });
    assert.ok(!r.ok);
    assert.match(r.error.error, /conveyor\.yml at [0-9a-f]{7} is not valid: conveyor\.yml:5:7: /);
    assert.ok(r.error.diagnostics && r.error.diagnostics.length > 0);
    assert.equal(agent.store.listRuns(100).length, before);
  });

  it('runs the stage asked for with everything it needs', async () => {
    await setup(`
- name: a
  run: touch "$OUT/a"
- name: b
  needs: [a]
  run: touch "$OUT/b"
- name: c
  run: touch "$OUT/c"
`);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['b'] }));
    assert.deepEqual(run.requestedStages, ['a', 'b']);
    assert.ok(fs.existsSync(path.join(out, 'b')));
    assert.ok(!fs.existsSync(path.join(out, 'c')));
  });

  it('queues a second run behind the first', async () => {
    await setup(`
- name: s
  run: echo "$CONVEYOR_RUN_ID" >> "$OUT/runs"; [ "$CONVEYOR_RUN_ID" != 1 ] || { touch "$OUT/first"; while [ ! -e "$OUT/go" ]; do sleep 0.05; done; }
`);
    const first = await startRun(agent, { trigger: 'manual' });
    await until(() => fs.existsSync(path.join(out, 'first')), 'the first run to start');
    const second = await startRun(agent, { trigger: 'manual' });
    assert.equal(agent.store.getRun(second)!.status, 'queued');
    fs.writeFileSync(path.join(out, 'go'), '');
    assert.equal((await finished(agent, first)).status, 'succeeded');
    assert.equal((await finished(agent, second)).status, 'succeeded');
    assert.equal(fs.readFileSync(path.join(out, 'runs'), 'utf8'), `${first}\n${second}\n`);
  });

  it('supersedes the older run when configured to', async () => {
    await setup(
      `
- name: s
  run: touch "$OUT/started-$CONVEYOR_RUN_ID"; [ "$CONVEYOR_RUN_ID" != 1 ] || sleep 60
`,
    );
    fs.writeFileSync(repo.path('conveyor.yml'), fs.readFileSync(repo.path('conveyor.yml'), 'utf8').replace('maxParallel: 4', 'maxParallel: 4\n  onNewRun: supersede'));
    repo.commit('supersede');
    const first = await startRun(agent, { trigger: 'manual' });
    await until(() => fs.existsSync(path.join(out, `started-${first}`)), 'the first run to start');
    const second = await startRun(agent, { trigger: 'manual' });
    const a = await finished(agent, first);
    assert.equal(a.status, 'cancelled');
    assert.equal(a.reason, `superseded by #${second}`);
    assert.equal((await finished(agent, second)).status, 'succeeded');
  });

  it('records artifacts by content', async () => {
    await setup(`
- name: package
  run: mkdir -p dist && printf hello > dist/app.txt
  artifacts: [dist/*.txt]
- name: missing
  run: "true"
  artifacts: [nothing/here.bin]
`);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.deepEqual(
      run.artifacts.map((a) => [a.stage, a.path, a.digest, a.size]),
      [['package', 'dist/app.txt', 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', 5]],
    );
    const stored = path.join(repo.dir, '.conveyor', 'artifacts', 'sha256', '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    assert.equal(fs.readFileSync(stored, 'utf8'), 'hello');
    const missing = run.stages.find((s) => s.name === 'missing')!;
    assert.equal(missing.status, 'failed');
    assert.equal(missing.message, 'artifact "nothing/here.bin" matched no file in .');
  });

  it('records every result of a big report, in bounded events, with the messages past the budget shortened', async () => {
    // 200 skipped tests with 3,000-character reasons, then 3,000 failures with 2,500 characters
    // of message and stack each (7.5 MB, over the 4 MiB budget), then 2,000 passed tests.
    const generate = `
const fs = require('node:fs');
fs.mkdirSync('reports', { recursive: true });
const lines = ['<?xml version="1.0"?>', '<testsuites><testsuite name="big">'];
for (let i = 0; i < 200; i++) lines.push('<testcase classname="big" name="skipped ' + i + '"><skipped message="' + 's'.repeat(3000) + '"/></testcase>');
for (let i = 0; i < 3000; i++) lines.push('<testcase classname="big" name="failed ' + i + '"><failure message="' + 'm'.repeat(1000) + '">' + 'k'.repeat(1500) + '</failure></testcase>');
for (let i = 0; i < 2000; i++) lines.push('<testcase classname="big" name="passed ' + i + '" time="0.002"/>');
lines.push('</testsuite></testsuites>', '');
fs.writeFileSync('reports/junit.xml', lines.join('\\n'));
`;
    out = scratch();
    repo = new TempRepo({
      'gen.js': generate,
      'conveyor.yml': pipelineYaml(`
- name: big
  run: node gen.js
  report: { format: junit, path: reports/junit.xml }
`),
    });
    agent = await startAgent(repo);
    const id = await finished(agent, await startRun(agent, { trigger: 'manual' }), 120_000).then((r) => r.id);

    const names = [
      ...Array.from({ length: 200 }, (_, i) => `skipped ${i}`),
      ...Array.from({ length: 3000 }, (_, i) => `failed ${i}`),
      ...Array.from({ length: 2000 }, (_, i) => `passed ${i}`),
    ];
    const groups = agent.store.getTests(id);
    assert.equal(groups.length, 1);
    const results = groups[0].results;
    assert.deepEqual(results.map((r) => r.name), names, 'every result is recorded, in report order');
    assert.ok(results.filter((r) => r.status === 'passed').every((r) => r.durationMs === 2));

    const events = eventsOf(agent, id).flatMap((e) => (e.type === 'tests.reported' ? [e] : []));
    assert.ok(events.length > 1, `${events.length} events`);
    for (const e of events) assert.ok(JSON.stringify(e).length <= 1.1 * 1024 * 1024, `an event of ${JSON.stringify(e).length} characters`);
    assert.deepEqual(events.map((e) => e.first), events.map((_, i) => events.slice(0, i).reduce((n, b) => n + b.results.length, 0)));
    assert.ok(events.every((e) => e.total === names.length));
    assert.deepEqual(
      ['passed', 'failed', 'skipped'].map((k) => events.reduce((n, e) => n + (e[k as 'passed'] as number), 0)),
      [2000, 3000, 200],
    );

    const notes = events.filter((e) => e.note !== undefined);
    assert.equal(notes.length, 1);
    assert.equal(notes[0], events[0]);
    assert.match(notes[0].note!, /^the messages of \d+ of the 5200 results were cut to 200 characters each, .* the full report is \/.*\/reports\/junit\.xml$/);
    // Failures spend the budget first: the first ones keep all of their message, the skipped ones do not.
    const failed = results.filter((r) => r.status === 'failed');
    assert.equal(failed[0].message, 'm'.repeat(1000));
    assert.equal(failed[0].stack, 'k'.repeat(1500));
    assert.equal(failed[2999].message, `${'m'.repeat(200)}…`);
    assert.ok(results.filter((r) => r.status === 'skipped').every((r) => r.message === `${'s'.repeat(200)}…`));
    const kept = failed.filter((r) => r.message!.length === 1000).length;
    assert.equal(kept, Math.floor((4 * 1024 * 1024) / 2500));
    assert.match(notes[0].note!, new RegExp(`^the messages of ${5200 - 2000 - kept} of`));
  });

  it('keeps a flood of output in the log file and streams a bounded part of it', async () => {
    await setup(`
- name: flood
  run: head -c 24000000 /dev/zero | tr '\\0' 'x' | fold -w 100; echo; echo done
`);
    const id = await startRun(agent, { trigger: 'manual' });
    const run = await finished(agent, id, 120_000);
    assert.equal(run.status, 'succeeded');
    const file = path.join(repo.dir, '.conveyor', 'logs', String(id), 'flood', '1-0.log');
    assert.ok(fs.statSync(file).size > 24_000_000, 'the log file has everything');
    const streamed = eventsOf(agent, id)
      .filter((e) => e.type === 'log')
      .reduce((n, e) => n + (e.type === 'log' ? e.text.length : 0), 0);
    assert.ok(streamed < 9 * 1024 * 1024, `streamed ${streamed} characters`);
    const last = eventsOf(agent, id).filter((e) => e.type === 'log').pop();
    assert.ok(last?.type === 'log' && /the rest is in its log file \(conveyor logs \d+ --stage flood\)/.test(last.text));
  });

  it('save runs: their own lane, the chosen tests in $CONVEYOR_TESTS, a newer one supersedes an older one', async () => {
    await setup(
      `
- name: test
  when: [save, manual]
  run: echo "$CONVEYOR_TEST_MODE:$CONVEYOR_TESTS" >> "$OUT/tests-$CONVEYOR_RUN_ID"; [ "$CONVEYOR_RUN_ID" != 2 ] || sleep 60
- name: release
  when: [manual]
  run: touch "$OUT/release-started"; while [ ! -e "$OUT/release-go" ]; do sleep 0.05; done
`,
      'watch: { stages: [test], tests: ["test/**/*.test.js"] }\n',
    );
    repo.write({ 'test/a.test.js': '', 'test/b.test.js': '', 'test/sub/c.test.js': '' });
    repo.commit('tests');
    // A manual run occupies the pipeline lane; save runs must not wait behind it.
    const manual = await startRun(agent, { trigger: 'manual', stages: ['release'] });
    await until(() => fs.existsSync(path.join(out, 'release-started')), 'the release stage');
    const impact = { mode: 'affected' as const, changed: ['src/x.js'], tests: ['test/b.test.js'], reason: null };
    const slow = await startRun(agent, { trigger: 'save', workingTree: true, stages: ['test'], impact });
    assert.equal(slow, 2);
    await until(() => fs.existsSync(path.join(out, 'tests-2')), 'save run #2 to start');
    const fast = await startRun(agent, { trigger: 'save', workingTree: true, stages: ['test'], impact: { ...impact, tests: ['test/a.test.js', 'test/b.test.js'] } });
    const superseded = await finished(agent, slow);
    assert.equal(superseded.status, 'cancelled');
    assert.equal(superseded.reason, `superseded by #${fast}`);
    assert.equal((await finished(agent, fast)).status, 'succeeded');
    assert.equal(fs.readFileSync(path.join(out, `tests-${fast}`), 'utf8'), 'affected:test/a.test.js test/b.test.js\n');
    assert.deepEqual(agent.store.getRun(fast)!.impact, { ...impact, tests: ['test/a.test.js', 'test/b.test.js'] }, 'the record says which tests ran and why');
    assert.equal(agent.store.getRun(manual)!.status, 'running', 'the manual run is still going');
    fs.writeFileSync(path.join(out, 'release-go'), '');
    await finished(agent, manual);
    // Other triggers get every test file the globs match.
    const all = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['test'] }));
    assert.equal(fs.readFileSync(path.join(out, `tests-${all.id}`), 'utf8'), 'all:test/a.test.js test/b.test.js test/sub/c.test.js\n');
    // A run asked for with test files (the editor running one test file) runs just those.
    const one = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['test'], tests: ['test/sub/c.test.js'] }));
    assert.equal(fs.readFileSync(path.join(out, `tests-${one.id}`), 'utf8'), 'affected:test/sub/c.test.js\n');
  });

  it('lists the tests in $CONVEYOR_TESTS_FILE too, and past 32 KiB only there, with $CONVEYOR_TESTS naming it as @file', async () => {
    await setup(
      `
- name: test
  when: [save, manual]
  run: printf '%s' "$CONVEYOR_TESTS" > "$OUT/var-$CONVEYOR_RUN_ID"; cp "$CONVEYOR_TESTS_FILE" "$OUT/list-$CONVEYOR_RUN_ID"; echo "$CONVEYOR_TESTS_FILE" > "$OUT/file-$CONVEYOR_RUN_ID"
`,
      'watch: { tests: ["test/**/*.test.js"] }\n',
    );
    const read = (name: string) => fs.readFileSync(path.join(out, name), 'utf8');
    // A short list: in both.
    const short = await finished(agent, await startRun(agent, { trigger: 'manual', tests: ['test/a.test.js', 'test/b.test.js'] }));
    assert.equal(short.status, 'succeeded');
    assert.equal(read(`var-${short.id}`), 'test/a.test.js test/b.test.js');
    assert.equal(read(`list-${short.id}`), 'test/a.test.js\ntest/b.test.js\n');
    // A list too long for a variable: in the file, which the variable names.
    const many = Array.from({ length: 1000 }, (_, i) => `test/a-folder-with-a-long-name/case-${String(i).padStart(4, '0')}.test.js`);
    repo.write(Object.fromEntries(many.map((f) => [f, ''])));
    repo.commit('many tests');
    const long = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(long.status, 'succeeded', long.stages[0].message ?? '');
    const file = read(`file-${long.id}`).trim();
    assert.ok(path.isAbsolute(file), file);
    assert.equal(read(`var-${long.id}`), `@${file}`);
    assert.equal(read(`list-${long.id}`), many.map((f) => `${f}\n`).join(''));
    // The file lives as long as its run.
    assert.ok(!fs.existsSync(file), `${file} is left after the run`);
    // No list (the stage runs its tests as written): an empty file, an empty variable.
    const none = await finished(agent, await startRun(agent, { trigger: 'save', workingTree: true, stages: ['test'], impact: { mode: 'whole-stage', changed: [], tests: [], reason: 'a config file changed' } }));
    assert.equal(none.status, 'succeeded');
    assert.equal(read(`var-${none.id}`), '');
    assert.equal(read(`list-${none.id}`), '');
  });

  it('fails a step that cannot start, saying why, and goes on with the run', async () => {
    // The step's variables are more than the system takes (E2BIG), and a later step's working
    // directory is gone (ENOENT): both are failed steps, not a stuck or broken run.
    await setup(
      `
- name: huge
  run: echo never
- name: gone
  workdir: sub
  run:
    - rm -rf "$PWD"
    - echo never
- name: after
  run: echo after > "$OUT/after"
`,
      '',
      { HUGE: 'x'.repeat(200_000) },
    );
    repo.write({ 'sub/keep.txt': '' });
    repo.commit('sub');
    const run = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['huge'] }));
    assert.equal(run.status, 'failed');
    assert.match(run.stages[0].message ?? '', /^could not start: the command and its environment are larger than the system allows \(E2BIG\); shorten .* in step 1 \(echo never\)$/);
    assert.deepEqual(run.steps.map((s) => s.status), ['failed']);
    const log = fs.readFileSync(path.join(repo.dir, '.conveyor', 'logs', String(run.id), 'huge', '1-0.log'), 'utf8');
    assert.match(log, /E2BIG/);

    await agent.stop();
    agent = await startAgent(repo, { env: { ...process.env, OUT: out } });
    const second = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['gone', 'after'] }));
    const gone = second.stages.find((s) => s.name === 'gone')!;
    assert.equal(gone.status, 'failed');
    assert.match(gone.message ?? '', /^could not start: its working directory .*\/sub no longer exists .* in step 2 \(echo never\)$/);
    assert.deepEqual(second.steps.filter((s) => s.stage === 'gone').map((s) => s.status), ['succeeded', 'failed']);
    assert.equal(second.stages.find((s) => s.name === 'after')!.status, 'succeeded');
    assert.equal(fs.readFileSync(path.join(out, 'after'), 'utf8'), 'after\n');
  });

  it('gives every event a strictly increasing sequence number, persisted before it is told', async () => {
    await setup(`
- name: s
  run: for i in 1 2 3 4 5; do echo line $i; done
`);
    const told: number[] = [];
    const sub = agent.store.onDidAppend((batch) => {
      for (const e of batch) {
        // Persisted already: the database answers with it.
        const row = agent.store.database.prepare('SELECT seq FROM events WHERE seq = ?').get(e.seq);
        assert.ok(row, `event ${e.seq} told before it was stored`);
        told.push(e.seq);
      }
    });
    const id = await startRun(agent, { trigger: 'manual' });
    await finished(agent, id);
    sub.dispose();
    const all = eventsOf(agent).map((e) => e.seq);
    assert.deepEqual(all, all.map((_, i) => i + 1));
    for (let i = 1; i < told.length; i++) assert.equal(told[i], told[i - 1] + 1);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
