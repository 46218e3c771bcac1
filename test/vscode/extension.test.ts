/**
 * The extension in a real VS Code (code-server 4.100.3 = VS Code 1.100.3): runs the suite of
 * test/vscode/suite/ inside the extension host, on a temporary git repository with a
 * conveyor.yml, against the real bundled agent (dist/cli.js, built by `npm run build`).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot, runExtensionTests, testOutputDir } from './harness';
import { TempRepo, WORKSPACE_SETTINGS } from './suite/repo';
import { SUITE_CONFIG } from './suite-config';

describe('VS Code extension (inside the real extension host)', function () {
  this.timeout(8 * 60_000);
  let repo: TempRepo;

  before(function () {
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'cli.js')), 'dist/cli.js exists (npm run build)');
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'extension.js')), 'dist/extension.js exists (npm run build)');
    // The commit's title is what the tree shows.
    repo = new TempRepo({ 'conveyor.yml': SUITE_CONFIG, '.vscode/settings.json': WORKSPACE_SETTINGS, 'README.md': '# demo\n' }, 'initial commit');
  });

  after(function () {
    repo?.dispose();
  });

  it('passes the in-editor suite: activation, runs, tree, logs, diagnostics, cancel, reconnect, crashes', async function () {
    const result = await runExtensionTests({
      extensionDevelopmentPath: repoRoot(),
      extensionTestsPath: path.join(repoRoot(), 'out', 'test', 'vscode', 'suite', 'index.js'),
      folder: repo.dir,
      timeoutMs: 6 * 60_000,
      screenshotPath: 'vscode-extension-suite.png',
    });
    // The in-editor suite's own report.
    console.log(result.output.replace(/^/gm, '    | '));
    assert.equal(result.exitCode, 0, 'the in-editor suite passed (its output is above)');
    const m = /CONVEYOR_ACTIVATION_MS=([\d.]+)/.exec(result.output);
    assert.ok(m, 'the suite reported the activation time');
    const activationMs = Number(m[1]);
    console.log(`      activate() took ${activationMs} ms`);
    fs.writeFileSync(path.join(testOutputDir(), 'vscode-activation.json'), JSON.stringify({ activationMs, measuredAt: new Date().toISOString() }, null, 2) + '\n');
    assert.match(result.output, /passing/);
    assert.doesNotMatch(result.output, /failing/);
  });
});
