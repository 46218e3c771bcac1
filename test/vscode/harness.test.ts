/**
 * Proves the VS Code test harness against a real extension host (code-server 4.100.3) with a
 * throwaway extension generated in a temporary folder. Needs `bash test/provision.sh` first.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ExtensionTestsError,
  codeServerEntry,
  openWorkbench,
  runCommandFromPalette,
  runExtensionTests,
  screenshot,
  startCodeServer,
  testOutputDir,
} from './harness';

const PUBLISHER = 'conveyor-test';
const NAME = 'harness-probe';
const VERSION = '0.0.1';
const COMMAND = 'harnessProbe.writeMarker';
const COMMAND_TITLE = 'Harness Probe: Write Marker';
const MARKER = 'harness-probe-marker.json';

/** The throwaway extension: activates on startup and contributes one command writing a marker file. */
function writeExtension(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify(
      {
        name: NAME,
        publisher: PUBLISHER,
        version: VERSION,
        main: './extension.js',
        engines: { vscode: '^1.90.0' },
        activationEvents: ['onStartupFinished'],
        contributes: { commands: [{ command: COMMAND, title: 'Write Marker', category: 'Harness Probe' }] },
      },
      null,
      2,
    ),
  );
  fs.writeFileSync(
    path.join(dir, 'extension.js'),
    `const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
exports.activate = function activate(context) {
  context.subscriptions.push(vscode.commands.registerCommand(${JSON.stringify(COMMAND)}, async () => {
    const folder = vscode.workspace.workspaceFolders[0].uri.fsPath;
    const marker = { vscodeVersion: vscode.version, token: process.env.HARNESS_PROBE_TOKEN || null };
    fs.writeFileSync(path.join(folder, ${JSON.stringify(MARKER)}), JSON.stringify(marker));
    return marker;
  }));
};
exports.deactivate = function deactivate() {};
`,
  );
  const tests = path.join(dir, 'tests');
  fs.mkdirSync(tests, { recursive: true });
  // One entry per suite: each runs mocha programmatically on its suite file.
  for (const suite of ['pass', 'fail', 'hang']) {
    fs.writeFileSync(
      path.join(tests, `${suite}-index.js`),
      `const path = require('path');
exports.run = function run() {
  const mod = require(${JSON.stringify(require.resolve('mocha'))});
  const Mocha = mod.default || mod.Mocha || mod;
  const mocha = new Mocha({ ui: 'bdd', reporter: 'spec', color: false, timeout: 60000 });
  mocha.addFile(path.join(__dirname, ${JSON.stringify(`${suite}.suite.js`)}));
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures ? reject(new Error(failures + ' test(s) failed')) : resolve()));
  });
};
`,
    );
  }
  fs.writeFileSync(
    path.join(tests, 'pass.suite.js'),
    `const assert = require('assert');
const vscode = require('vscode');
const EXTENSION_ID = ${JSON.stringify(`${PUBLISHER}.${NAME}`)};
describe('harness probe inside the extension host', () => {
  it('runs on VS Code 1.100', () => {
    assert.match(vscode.version, /^1\\.100\\./);
  });
  it('opens the workspace folder it was given', () => {
    assert.strictEqual(vscode.workspace.workspaceFolders[0].uri.fsPath, process.env.HARNESS_PROBE_FOLDER);
  });
  it('activates the extension under development on startup', async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, EXTENSION_ID + ' is loaded');
    while (!ext.isActive) await new Promise((r) => setTimeout(r, 200));
    assert.ok(ext.isActive);
  });
  it('registers its command', async () => {
    const commands = await vscode.commands.getCommands(true);
    assert.ok(commands.includes(${JSON.stringify(COMMAND)}), 'command registered');
  });
  it('inherits the environment passed to the harness', () => {
    assert.strictEqual(process.env.HARNESS_PROBE_TOKEN, process.env.HARNESS_PROBE_EXPECTED_TOKEN);
  });
  it('runs its command against the workspace', async () => {
    const marker = await vscode.commands.executeCommand(${JSON.stringify(COMMAND)});
    assert.strictEqual(marker.vscodeVersion, vscode.version);
    const file = vscode.Uri.joinPath(vscode.workspace.workspaceFolders[0].uri, ${JSON.stringify(MARKER)});
    const written = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(file)).toString('utf8'));
    assert.strictEqual(written.token, process.env.HARNESS_PROBE_TOKEN);
  });
});
`,
  );
  fs.writeFileSync(
    path.join(tests, 'fail.suite.js'),
    `const assert = require('assert');
const vscode = require('vscode');
describe('harness probe failing suite', () => {
  it('still passes what is true', () => {
    assert.match(vscode.version, /^1\\.100\\./);
  });
  it('reports a deliberate failure', () => {
    assert.strictEqual(vscode.workspace.workspaceFolders.length, 2, 'HARNESS-PROBE-DELIBERATE-FAILURE: one folder is open, not two');
  });
});
`,
  );
  fs.writeFileSync(
    path.join(tests, 'hang.suite.js'),
    `describe('harness probe hanging suite', () => {
  it('never finishes', function () {
    this.timeout(0);
    console.log('HARNESS-PROBE-BEFORE-HANG');
    return new Promise(() => {});
  });
});
`,
  );
}

/** Pids of live processes whose environment holds the marker (everything this file started). */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/environ`, 'latin1').includes(marker)) pids.push(Number(name));
    } catch {
      // gone, or not ours
    }
  }
  return pids;
}

describe('VS Code test harness (code-server extension host)', function () {
  this.timeout(6 * 60_000);

  let root: string;
  let extensionDir: string;
  let workspace: string;
  const token = crypto.randomBytes(8).toString('hex');
  // Every process started below inherits this variable, so orphans can be found by it.
  const runMarker = `CONVEYOR_HARNESS_TEST_RUN=${token}`;
  const previousRunVar = process.env.CONVEYOR_HARNESS_TEST_RUN;

  before(function () {
    codeServerEntry(); // fails with a pointer to test/provision.sh when code-server is missing
    process.env.CONVEYOR_HARNESS_TEST_RUN = token;
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-harness-test-'));
    extensionDir = path.join(root, 'extension');
    workspace = path.join(root, 'workspace');
    fs.mkdirSync(workspace);
    fs.writeFileSync(path.join(workspace, 'README.md'), '# harness probe workspace\n');
    writeExtension(extensionDir);
  });

  after(function () {
    if (previousRunVar === undefined) delete process.env.CONVEYOR_HARNESS_TEST_RUN;
    else process.env.CONVEYOR_HARNESS_TEST_RUN = previousRunVar;
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  beforeEach(function () {
    fs.rmSync(path.join(workspace, MARKER), { force: true });
  });

  afterEach(function () {
    assert.deepEqual(processesWith(runMarker), [], 'no code-server or chromium process is left behind');
  });

  it('runs a passing suite inside the real extension host: exit code 0', async function () {
    const result = await runExtensionTests({
      extensionDevelopmentPath: extensionDir,
      extensionTestsPath: path.join(extensionDir, 'tests', 'pass-index.js'),
      folder: workspace,
      env: { HARNESS_PROBE_TOKEN: token, HARNESS_PROBE_EXPECTED_TOKEN: token, HARNESS_PROBE_FOLDER: workspace },
      screenshotPath: 'harness-extension-tests.png',
    });
    assert.equal(result.exitCode, 0, result.output);
    assert.match(result.output, /runs on VS Code 1\.100/);
    assert.match(result.output, /6 passing/);
    const marker = JSON.parse(fs.readFileSync(path.join(workspace, MARKER), 'utf8'));
    assert.equal(marker.token, token);
    assert.ok(fs.statSync(path.join(testOutputDir(), 'harness-extension-tests.png')).size > 0);
  });

  it('reports a failing suite: exit code 1 and the failure message in the output', async function () {
    const result = await runExtensionTests({
      extensionDevelopmentPath: extensionDir,
      extensionTestsPath: path.join(extensionDir, 'tests', 'fail-index.js'),
      folder: workspace,
    });
    assert.equal(result.exitCode, 1, result.output);
    assert.match(result.output, /HARNESS-PROBE-DELIBERATE-FAILURE: one folder is open, not two/);
    assert.match(result.output, /1 passing/);
    assert.match(result.output, /1 failing/);
  });

  it('rejects a suite that does not finish within timeoutMs, with the output collected so far', async function () {
    const err = await runExtensionTests({
      extensionDevelopmentPath: extensionDir,
      extensionTestsPath: path.join(extensionDir, 'tests', 'hang-index.js'),
      folder: workspace,
      timeoutMs: 30_000,
    }).then(
      () => assert.fail('the hanging suite resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ExtensionTestsError, String(err));
    assert.match(err.message, /did not finish within 30000 ms/);
    assert.match(err.output, /HARNESS-PROBE-BEFORE-HANG/);
  });

  it('drives the workbench: runs the extension command from the palette and takes a screenshot', async function () {
    // The extension is installed the way a user has it: a folder publisher.name-version in the extensions dir.
    const extensionsDir = path.join(root, 'extensions');
    fs.mkdirSync(extensionsDir, { recursive: true });
    fs.cpSync(extensionDir, path.join(extensionsDir, `${PUBLISHER}.${NAME}-${VERSION}`), { recursive: true });
    const server = await startCodeServer({ folder: workspace, extensionsDir, env: { HARNESS_PROBE_TOKEN: token } });
    try {
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200);
      const { page, close } = await openWorkbench(server, { folder: workspace });
      try {
        await runCommandFromPalette(page, COMMAND_TITLE);
        const markerFile = path.join(workspace, MARKER);
        for (let i = 0; i < 300 && !fs.existsSync(markerFile); i++) await new Promise((r) => setTimeout(r, 200));
        assert.ok(fs.existsSync(markerFile), 'the command wrote its marker in the workspace folder');
        const marker = JSON.parse(fs.readFileSync(markerFile, 'utf8'));
        assert.equal(marker.token, token);
        assert.match(marker.vscodeVersion, /^1\.100\./);
        const shot = await screenshot(page, 'harness-workbench.png');
        assert.equal(shot, path.join(testOutputDir(), 'harness-workbench.png'));
        assert.ok(fs.statSync(shot).size > 10_000, 'screenshot has content');
      } finally {
        await close();
      }
    } finally {
      await server.stop();
    }
    assert.equal(fs.existsSync(server.runDir), false, 'run folder removed on stop');
  });
});
