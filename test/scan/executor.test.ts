import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Agent } from '../../agent/agent';
import { analyzeConfigText } from '../../agent/config';
import { Masker } from '../../agent/engine/secrets';
import type { AgentEvent, StageConfig, TestResult } from '../../agent/protocol';
import type { AttemptContext } from '../../agent/steps/executor';
import { ScanExecutor } from '../../agent/steps/scan';
import { finished, startAgent, startRun, TempRepo } from '../support/fixtures';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/scan');

/** The `audit` stage of a conveyor.yml, as the config analyzer makes it. */
function stageOf(yaml: string): StageConfig {
  const state = analyzeConfigText(yaml, 'conveyor.yml');
  assert.ok(state.valid, JSON.stringify(state.diagnostics));
  return state.config.pipeline.stages.find((s) => s.name === 'audit')!;
}

/** A port on 127.0.0.1 where nothing listens. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('the scan stage', () => {
  const temps: string[] = [];
  let workspace: string;

  /** A workspace: conveyor.yml's folder with the advisories, and the project in app/. */
  before(() => {
    workspace = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-scan-ws-')));
    temps.push(workspace);
    fs.cpSync(path.join(FIXTURES, 'advisories'), path.join(workspace, 'advisories'), { recursive: true });
    fs.cpSync(path.join(FIXTURES, 'v2'), path.join(workspace, 'app'), { recursive: true });
  });
  after(() => {
    for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
  });

  function attempt(stage: StageConfig, cwd: string, signal = new AbortController().signal) {
    const events: AgentEvent[] = [];
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-scan-logs-'));
    temps.push(logDir);
    const ctx: AttemptContext = {
      runId: 7,
      stage,
      attempt: 1,
      cwd,
      env: {},
      masker: new Masker([]),
      logDir,
      signal,
      emit: (e) => events.push(e),
      commit: null,
      artifacts: () => [],
      deployer: undefined,
      setWaiting: () => undefined,
    };
    const log = () => fs.readFileSync(path.join(logDir, '1-0.log'), 'utf8');
    const tests = () => events.flatMap((e) => (e.type === 'tests.reported' ? [e] : []));
    return { ctx, events, log, tests };
  }

  it('logs each source and the findings, reports each affected package as a test, and fails the gate', async () => {
    const port = await closedPort();
    const stage = stageOf(`pipeline:
  stages:
    - name: audit
      kind: scan
      workdir: app
      scan:
        sources:
          - osv: advisories
          - osv-api: http://127.0.0.1:${port}
        failOn: high
        unreachable: warn
`);
    const a = attempt(stage, path.join(workspace, 'app'));
    const outcome = await new ScanExecutor({ workspace }).execute(a.ctx);

    assert.equal(outcome.status, 'failed');
    assert.match(outcome.message!, /^3 advisories at or above high \(0 critical, 3 high, 3 moderate, 1 low\) in 8 packages; /);
    assert.ok(outcome.message!.includes(`OSV API http://127.0.0.1:${port}: not scanned: POST http://127.0.0.1:${port}/v1/querybatch failed: connection refused`));

    const log = a.log().split('\n');
    const at = (prefix: string) => log.findIndex((l) => l.startsWith(prefix));
    assert.equal(log[0], 'scanned 8 installed versions from package-lock.json');
    assert.equal(log[1], `  OSV folder ${path.join(workspace, 'advisories')}: scanned, 6 advisories found`);
    assert.match(log[2], new RegExp(`^  OSV API http://127\\.0\\.0\\.1:${port}: not scanned: POST .* connection refused`));
    assert.equal(log[3], '7 findings, most severe first:');
    assert.deepEqual(log.slice(4, 11), [
      '  high      minimist@1.2.5  GHSA-34mm-494v-m3w5  Prototype pollution in minimist  no fixed version  (minimist)  package.json:11  [CVSS 7.3]',
      '  high      qs@6.5.1  GHSA-g6j3-4v5h-w3r8  Prototype pollution in qs  fixed in 6.5.3  (express > body-parser > qs)  package.json:7',
      '  high      qs@6.5.2  GHSA-g6j3-4v5h-w3r8  Prototype pollution in qs  fixed in 6.5.3  (express > qs)  package.json:7',
      '  moderate  @acme/widgets@2.0.0-beta.2  GHSA-9w3w-wj39-3v6f  Cross-site scripting in @acme/widgets prereleases  fixed in 2.0.0-beta.3  (@acme/widgets)  package.json:6',
      '  moderate  left-pad@1.3.0  GHSA-pwph-f979-4wfr  left-pad before 1.3.1 pads with the wrong character when given a number.  fixed in 1.3.1  (left-pad)  package.json:8  [severity unknown: counted as moderate]',
      '  moderate  qs@6.5.1  GHSA-qm34-vwgg-hxqw  Denial of service in qs through deeply nested arrays  fixed in 6.5.2  (express > body-parser > qs)  package.json:7  [CVSS 5.3]',
      '  low       express@4.16.0  GHSA-m6v5-wfv7-5ww8  Open redirect in express  no fixed version  (express)  package.json:7',
    ]);
    assert.equal(log[at('3 advisories')], outcome.message, 'the log ends with the verdict');

    const [reported] = a.tests();
    assert.equal(a.tests().length, 1);
    assert.deepEqual([reported.runId, reported.stage, reported.attempt, reported.passed, reported.failed, reported.skipped], [7, 'audit', 1, 3, 3, 0]);
    const byName = new Map(reported.results.map((r) => [r.name, r]));
    const manifest = path.join(workspace, 'app', 'package.json');
    assert.deepEqual(byName.get('qs@6.5.1'), {
      suite: 'package-lock.json',
      name: 'qs@6.5.1',
      status: 'failed',
      durationMs: null,
      message: [
        'high GHSA-g6j3-4v5h-w3r8: Prototype pollution in qs (fixed in 6.5.3)',
        'moderate GHSA-qm34-vwgg-hxqw: Denial of service in qs through deeply nested arrays (fixed in 6.5.2)',
        'via express > body-parser > qs',
      ].join('\n'),
      expected: null,
      actual: null,
      stack: null,
      location: { file: manifest, line: 7, column: 5 },
    } satisfies TestResult);
    assert.deepEqual(
      reported.results.map((r) => `${r.status} ${r.name} ${r.location!.line}:${r.location!.column}`),
      ['failed minimist@1.2.5 11:5', 'failed qs@6.5.1 7:5', 'failed qs@6.5.2 7:5', 'passed @acme/widgets@2.0.0-beta.2 6:5', 'passed left-pad@1.3.0 8:5', 'passed express@4.16.0 7:5'],
    );
    assert.match(byName.get('express@4.16.0')!.message!, /\nbelow failOn high$/);

    const steps = a.events.flatMap((e) => (e.type === 'step.changed' ? [e.step.status] : []));
    assert.deepEqual(steps, ['running', 'failed']);
  });

  it('in a snapshot, places results on the workspace files and reads an OSV folder that is not committed from the workspace', async () => {
    // The run's tree: the project is committed, the advisories are not.
    const tree = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-scan-tree-')));
    temps.push(tree);
    fs.cpSync(path.join(workspace, 'app'), path.join(tree, 'app'), { recursive: true });
    const stage = stageOf(`pipeline:
  stages:
    - name: audit
      kind: scan
      workdir: app
      scan:
        sources: [{ osv: advisories }]
        failOn: critical
`);
    const a = attempt(stage, path.join(tree, 'app'));
    const outcome = await new ScanExecutor({ workspace }).execute(a.ctx);
    assert.equal(outcome.status, 'succeeded', outcome.message ?? '');
    assert.match(outcome.message!, /^no advisory at or above critical \(0 critical, 3 high, 3 moderate, 1 low\)/);
    assert.ok(a.log().startsWith(`advisories is not in this commit; reading the workspace's ${path.join(workspace, 'advisories')}\n`), a.log());
    const [reported] = a.tests();
    assert.deepEqual([reported.passed, reported.failed], [6, 0]);
    assert.ok(reported.results.every((r) => r.location!.file === path.join(workspace, 'app', 'package.json')));
  });

  it('fails with the file and line of a broken lockfile, and reports no tests', async () => {
    const stage = stageOf(`pipeline:
  stages:
    - name: audit
      kind: scan
      workdir: broken
      scan: { sources: [{ osv: advisories }] }
`);
    const a = attempt(stage, path.join(FIXTURES, 'broken'));
    const outcome = await new ScanExecutor().execute(a.ctx);
    assert.deepEqual(outcome, { status: 'failed', message: `package-lock.json:6:5: not valid JSON: Expected ',' or '}' after property value` });
    assert.equal(a.tests().length, 0);
    assert.ok(a.log().includes(outcome.message!));
  });

  it('ends as cancelled or timed out when the attempt is aborted', async () => {
    const stage = stageOf(`pipeline:
  stages:
    - name: audit
      kind: scan
      workdir: app
      scan: { sources: [{ osv: advisories }] }
`);
    for (const [reason, status] of [
      ['cancel', 'cancelled'],
      ['timeout', 'timed_out'],
    ] as const) {
      const ctl = new AbortController();
      ctl.abort(reason);
      const a = attempt(stage, path.join(workspace, 'app'), ctl.signal);
      const outcome = await new ScanExecutor({ workspace }).execute(a.ctx);
      assert.equal(outcome.status, status);
      assert.equal(a.tests().length, 0);
    }
  });
});

describe('the scan stage in a run', () => {
  let repo: TempRepo | undefined;
  let agent: Agent | undefined;
  after(async () => {
    await agent?.stop();
    repo?.dispose();
  });

  it('scans the commit, fails the stage with the verdict, and records the results on the workspace files', async () => {
    const read = (rel: string) => fs.readFileSync(path.join(FIXTURES, rel), 'utf8');
    const files: Record<string, string> = {
      'conveyor.yml': `pipeline:
  stages:
    - name: audit
      kind: scan
      workdir: app
      scan:
        sources:
          - osv: advisories
`,
      'app/package.json': read('v2/package.json'),
      'app/package-lock.json': read('v2/package-lock.json'),
    };
    for (const rel of fs.readdirSync(path.join(FIXTURES, 'advisories'), { recursive: true, encoding: 'utf8' })) {
      if (rel.endsWith('.json')) files[`advisories/${rel}`] = read(`advisories/${rel}`);
    }
    repo = new TempRepo(files);
    agent = await startAgent(repo);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.ok(run.commit, 'the run is pinned to the commit, in a snapshot');
    const stage = run.stages.find((s) => s.name === 'audit')!;
    assert.equal(stage.status, 'failed');
    assert.match(stage.message!, /^3 advisories at or above high \(0 critical, 3 high, 3 moderate, 1 low\) in 8 packages; OSV folder .*: scanned$/);
    const [tests] = agent.store.getTests(run.id);
    assert.equal(tests.stage, 'audit');
    assert.deepEqual(
      tests.results.map((r) => `${r.status} ${r.name} ${path.relative(repo!.dir, r.location!.file)}:${r.location!.line}:${r.location!.column}`),
      [
        'failed minimist@1.2.5 app/package.json:11:5',
        'failed qs@6.5.1 app/package.json:7:5',
        'failed qs@6.5.2 app/package.json:7:5',
        'passed @acme/widgets@2.0.0-beta.2 app/package.json:6:5',
        'passed left-pad@1.3.0 app/package.json:8:5',
        'passed express@4.16.0 app/package.json:7:5',
      ],
    );
  });
});
