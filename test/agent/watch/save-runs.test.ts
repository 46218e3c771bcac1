import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Agent } from '../../../agent/agent';
import type { RunDetail } from '../../../agent/protocol';
import { eventsOf, finished, startAgent, TempRepo, until } from '../../support/fixtures';

const MOCHA = path.resolve(__dirname, '../../../../node_modules/mocha/bin/mocha.js');

const CONFIG = `
pipeline:
  stages:
    - name: test
      run: node ${MOCHA} --reporter json --reporter-option output=reports/mocha.json $CONVEYOR_TESTS
      report: { format: mocha-json, path: reports/mocha.json }
watch:
  stages: [test]
  tests: ["test/**/*.test.js"]
`;

/** The develop loop in the agent: a real watcher, the import graph, mocha, a real repo. */
describe('save runs', function () {
  this.timeout(90_000);
  let repo: TempRepo;
  let agent: Agent;

  before(async () => {
    repo = new TempRepo({
      'conveyor.yml': CONFIG,
      '.gitignore': 'reports/\n',
      'src/math.js': 'exports.add = (a, b) => a + b;\n',
      'src/words.js': 'exports.shout = (s) => s.toUpperCase();\n',
      'test/math.test.js': [
        "const assert = require('node:assert');",
        "const { add } = require('../src/math');",
        "describe('math', () => {",
        "  it('adds', () => {",
        '    assert.strictEqual(add(2, 2), 4);',
        '  });',
        '});',
        '',
      ].join('\n'),
      'test/words.test.js': "const assert = require('node:assert');\nconst { shout } = require('../src/words');\nit('shouts', () => assert.strictEqual(shout('a'), 'A'));\n",
    });
    agent = await startAgent(repo, { watch: true });
    await agent.developReady();
    assert.equal(agent.watchState().enabled, true);
  });

  after(async () => {
    await agent.stop();
    repo.dispose();
  });

  const saveRuns = (): RunDetail[] =>
    agent.store
      .listRuns(50)
      .filter((r) => r.trigger === 'save')
      .map((r) => agent.store.getRun(r.id)!);

  it('saving a source file runs only the tests that import it, and the failure lands on its line', async () => {
    fs.writeFileSync(repo.path('src/math.js'), 'exports.add = (a, b) => a + b + 1; // off by one\n');
    const run = await until(() => saveRuns()[0], 'a save run');
    const done = await finished(agent, run.id);
    assert.equal(done.status, 'failed');
    assert.equal(done.commit, null, 'on the working tree');
    assert.deepEqual(done.impact, { mode: 'affected', changed: ['src/math.js'], tests: ['test/math.test.js'], reason: null });
    const [group] = agent.store.getTests(run.id);
    assert.deepEqual(group.results.map((t) => [t.name, t.status]), [['adds', 'failed']], 'words.test.js did not run');
    const failure = group.results[0];
    assert.equal(failure.location?.file, repo.path('test/math.test.js'));
    assert.equal(failure.location?.line, 5);
    assert.equal(failure.expected, '4');
    assert.equal(failure.actual, '5');
  });

  it('a burst of saves is one run; fixing the code passes', async () => {
    const before = saveRuns().length;
    for (let i = 0; i < 10; i++) fs.writeFileSync(repo.path('src/math.js'), `exports.add = (a, b) => a + b; // ${i}\n`);
    await until(() => saveRuns().length > before, 'the save run');
    const run = saveRuns()[0];
    const done = await finished(agent, run.id);
    assert.equal(done.status, 'succeeded');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(saveRuns().length, before + 1, 'ten writes made one run');
  });

  it('a change to package.json runs every test, saying why', async () => {
    const before = saveRuns().length;
    fs.writeFileSync(repo.path('package.json'), '{ "name": "x" }\n');
    await until(() => saveRuns().length > before, 'the save run');
    const done = await finished(agent, saveRuns()[0].id);
    assert.equal(done.impact?.mode, 'all');
    assert.match(done.impact!.reason!, /package\.json/);
    assert.deepEqual(agent.store.getTests(done.id)[0].results.map((t) => t.name).sort(), ['adds', 'shouts']);
    assert.ok(eventsOf(agent, done.id).some((e) => e.type === 'tests.reported'));
  });

  it('the develop loop can be turned off and on', async () => {
    assert.equal(agent.setWatch(false).enabled, false);
    const before = saveRuns().length;
    fs.writeFileSync(repo.path('src/words.js'), 'exports.shout = (s) => s.toUpperCase(); // off\n');
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(saveRuns().length, before, 'no run while off');
    agent.setWatch(true);
    await agent.developReady();
    fs.writeFileSync(repo.path('src/words.js'), 'exports.shout = (s) => s.toUpperCase(); // on\n');
    await until(() => saveRuns().length > before, 'a run once on again');
  });
});
