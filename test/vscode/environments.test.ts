/**
 * Deploys from the editor in a real VS Code (code-server 4.100.3 = VS Code 1.100.3): runs the
 * suite of test/vscode/suite/environments.spec.ts inside the extension host, on a temporary git
 * repository whose pipeline packages a tiny Node server and deploys it with the `process`
 * runtime (no Docker) to staging (automatic, blue-green), then production (manual approval);
 * a third environment, qa, starts slowly and is deployed only from the editor. The agent is
 * the real bundled one (dist/cli.js). A second repository, whose staging answers $GREETING, runs
 * the GitOps suite of test/vscode/suite/gitops.spec.ts: its desired state is the branch
 * conveyor/state of that repository.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot, runExtensionTests } from './harness';
import { TempRepo, WORKSPACE_SETTINGS } from './suite/repo';

/** The title of the suite in test/vscode/suite/environments.spec.ts (that file loads vscode, so it is not imported). */
const ENVIRONMENTS_SUITE = 'Conveyor Environments view and deploy commands';

/**
 * The service: answers its greeting on /, and /healthz with 200 (or 500 when broken). With
 * WARMUP_MS set it answers 503 on /healthz for that long after it starts.
 */
export function serverSource(greeting: string, healthy = true): string {
  return `const http = require('node:http');
const readyAt = Date.now() + Number(process.env.WARMUP_MS || 0);
http.createServer((req, res) => {
  if (req.url === '/healthz') {
    if (Date.now() < readyAt) { res.writeHead(503); return res.end('warming up'); }
    res.writeHead(${healthy ? 200 : 500});
    return res.end('${healthy ? 'ok' : 'sick'}');
  }
  res.end(${JSON.stringify(greeting)});
}).listen(Number(process.env.PORT), '127.0.0.1');
`;
}

const DEPLOY_CONFIG = `pipeline:
  name: service
  stages:
    - name: package
      run: mkdir -p dist && tar -czf dist/app.tgz server.js
      artifacts: [dist/app.tgz]
    - name: staging
      kind: deploy
      environment: staging
      needs: [package]
    - name: production
      kind: deploy
      environment: production
      needs: [staging]
environments:
  staging:
    runtime: process
    promotion: auto
    strategy: blue-green
    start: node server.js
    health: { http: /healthz, timeout: 10s, interval: 100ms }
  production:
    runtime: process
    promotion: manual
    start: node server.js
    health: { http: /healthz, timeout: 10s, interval: 100ms }
  qa:
    runtime: process
    promotion: auto
    start: node server.js
    env: { WARMUP_MS: "4000" }
    health: { http: /healthz, timeout: 30s, interval: 100ms }
  preview:
    preview: true
    start: node server.js
    health: { http: /healthz, timeout: 10s, interval: 100ms }
`;

/**
 * Stops what the suite may have left running when it failed half-way: the agent (its
 * discovery file) and the deployed instances, which outlive the agent by design (the process
 * groups recorded in .conveyor/runtimes/process/environments/*.json).
 */
function stopLeftovers(folder: string): void {
  const kill = (pid: number, group: boolean) => {
    try {
      process.kill(group ? -pid : pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  try {
    const d = JSON.parse(fs.readFileSync(path.join(folder, '.conveyor', 'agent.json'), 'utf8')) as { pid: number };
    kill(d.pid, false);
  } catch {
    // no agent
  }
  const dir = path.join(folder, '.conveyor', 'runtimes', 'process', 'environments');
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!name.endsWith('.json')) continue;
    try {
      const file = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { instances: { pid: number }[] };
      for (const inst of file.instances) if (inst.pid > 0) kill(inst.pid, true);
    } catch {
      // being written
    }
  }
}

/** The title of the suite in test/vscode/suite/gitops.spec.ts. */
const GITOPS_SUITE = 'Conveyor GitOps: sync, drift and the desired state in the editor';

/** A service answering $GREETING, so that a change of the desired state's env shows in what it serves. */
const GREETING_SERVER = `const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === '/healthz') { res.writeHead(200); return res.end('ok'); }
  res.end(process.env.GREETING || 'no greeting');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const GITOPS_CONFIG = `pipeline:
  name: service
  stages:
    - name: package
      run: mkdir -p dist && tar -czf dist/app.tgz server.js
      artifacts: [dist/app.tgz]
    - name: staging
      kind: deploy
      environment: staging
      needs: [package]
environments:
  staging:
    runtime: process
    promotion: auto
    start: node server.js
    env: { GREETING: hello from config }
    health: { http: /healthz, timeout: 10s, interval: 100ms }
gitops: { branch: conveyor/state }
`;


/** Runs one in-editor suite (by its title) on a folder in code-server, and checks every test of it ran and passed. */
async function passesInEditor(folder: string, suite: string, screenshotPath: string, atLeast: number): Promise<void> {
  const result = await runExtensionTests({
    extensionDevelopmentPath: repoRoot(),
    extensionTestsPath: path.join(repoRoot(), 'out', 'test', 'vscode', 'suite', 'index.js'),
    folder,
    env: { CONVEYOR_SUITE_GREP: suite },
    timeoutMs: 8 * 60_000,
    screenshotPath,
  });
  console.log(result.output.replace(/^/gm, '    | '));
  assert.equal(result.exitCode, 0, 'the in-editor suite passed (its output is above)');
  const passing = Number(/(\d+) passing/.exec(result.output)?.[1] ?? 0);
  assert.ok(passing >= atLeast, `every test of the suite ran (${passing} passing)`);
  assert.doesNotMatch(result.output, /failing|pending/);
}

describe('Deploys from VS Code: Environments view, deploy commands, notifications (real extension host)', function () {
  this.timeout(10 * 60_000);
  let repo: TempRepo;

  before(function () {
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'cli.js')), 'dist/cli.js exists (npm run build)');
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'extension.js')), 'dist/extension.js exists (npm run build)');
    repo = new TempRepo({ 'conveyor.yml': DEPLOY_CONFIG, 'server.js': serverSource('hello v1'), '.vscode/settings.json': WORKSPACE_SETTINGS, '.gitignore': 'dist/\n' }, 'v1');
  });

  after(function () {
    if (!repo) return;
    stopLeftovers(repo.dir);
    repo.dispose();
  });

  it('passes the in-editor suite: live releases and health, approve, rolled-back notification, reject, rollback, lock and queue, open', async function () {
    await passesInEditor(repo.dir, ENVIRONMENTS_SUITE, 'vscode-environments-suite.png', 9);
  });
});

describe('GitOps from VS Code: sync and health, drift, the desired state, pause and resume (real extension host)', function () {
  this.timeout(10 * 60_000);
  let repo: TempRepo;

  before(function () {
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'cli.js')), 'dist/cli.js exists (npm run build)');
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'extension.js')), 'dist/extension.js exists (npm run build)');
    repo = new TempRepo({ 'conveyor.yml': GITOPS_CONFIG, 'server.js': GREETING_SERVER, '.vscode/settings.json': WORKSPACE_SETTINGS, '.gitignore': 'dist/\n' }, 'greeting service');
  });

  after(function () {
    if (!repo) return;
    stopLeftovers(repo.dir);
    repo.dispose();
  });

  it('passes the in-editor suite: Synced · Healthy, pause, OutOfSync with its drift, preview, diff, desired state, drift notice, sync, resume, state file errors', async function () {
    await passesInEditor(repo.dir, GITOPS_SUITE, 'vscode-gitops-suite.png', 12);
  });
});
