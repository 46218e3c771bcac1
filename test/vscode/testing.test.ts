/**
 * The develop loop in a real VS Code (code-server 4.100.3 = VS Code 1.100.3): runs the testing
 * suite of test/vscode/suite/testing.spec.ts inside the extension host, on a temporary git
 * repository made from test/fixtures/develop (a JS project whose mocha tests fail at known
 * lines), against the real bundled agent (dist/cli.js) and the checkout's mocha.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot, runExtensionTests } from './harness';
import { TempRepo, WORKSPACE_SETTINGS } from './suite/repo';

/** The title of the suite in test/vscode/suite/testing.spec.ts (that file loads vscode, so it is not imported). */
const TESTING_SUITE = 'Conveyor Testing view and test problems';

/** The fixture's files (relative path → text), its conveyor.yml pointed at this checkout's mocha. */
function developFixture(): Record<string, string> {
  const dir = path.join(repoRoot(), 'test', 'fixtures', 'develop');
  const files: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(name);
      else files[name] = fs.readFileSync(path.join(dir, name), 'utf8');
    }
  };
  walk('');
  const mocha = path.join(repoRoot(), 'node_modules', 'mocha', 'bin', 'mocha.js');
  assert.ok(fs.existsSync(mocha), `mocha is installed (${mocha})`);
  assert.match(files['conveyor.yml'], /node \S+\/mocha\.js /);
  files['conveyor.yml'] = files['conveyor.yml'].replace(/node \S+\/mocha\.js /, `node ${mocha} `);
  return files;
}

describe('Testing view and test problems in VS Code (develop fixture, real extension host)', function () {
  this.timeout(4 * 60_000);
  let repo: TempRepo;

  before(function () {
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'cli.js')), 'dist/cli.js exists (npm run build)');
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'extension.js')), 'dist/extension.js exists (npm run build)');
    repo = new TempRepo({ ...developFixture(), '.vscode/settings.json': WORKSPACE_SETTINGS }, 'develop fixture');
  });

  after(function () {
    repo?.dispose();
  });

  it('passes the in-editor testing suite: items, states, problems at the assertion, continuous run, deletion', async function () {
    const result = await runExtensionTests({
      extensionDevelopmentPath: repoRoot(),
      extensionTestsPath: path.join(repoRoot(), 'out', 'test', 'vscode', 'suite', 'index.js'),
      folder: repo.dir,
      env: { CONVEYOR_SUITE_GREP: TESTING_SUITE },
      timeoutMs: 3 * 60_000,
      screenshotPath: 'vscode-testing-suite.png',
    });
    console.log(result.output.replace(/^/gm, '    | '));
    assert.equal(result.exitCode, 0, 'the in-editor suite passed (its output is above)');
    const passing = Number(/(\d+) passing/.exec(result.output)?.[1] ?? 0);
    assert.ok(passing >= 9, `every test of the suite ran (${passing} passing)`);
    assert.doesNotMatch(result.output, /failing|pending/);
  });
});
