import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AgentClient } from '../../../agent/cli/client';
import { ProcessRuntime } from '../../../agent/runtimes/process';
import type { DeploymentInfo, EnvironmentStatus, RunSummary } from '../../../agent/protocol';
import { scratch, spawnAgent, TempRepo, until } from '../../support/fixtures';
import { PACKAGE_STAGE, STAGING_STAGE } from '../../support/service';

/** v2 waits for a file before it listens, so the test can kill the agent while v2 is being deployed. */
const SERVER = (greeting: string, gate: boolean) => `
const http = require('node:http');
const fs = require('node:fs');
const start = () => http.createServer((req, res) => res.end(${JSON.stringify(greeting)})).listen(Number(process.env.PORT), '127.0.0.1');
${gate ? `fs.writeFileSync(process.env.OUT + '/v2-started', ''); const t = setInterval(() => { if (fs.existsSync(process.env.OUT + '/v2-go')) { clearInterval(t); start(); } }, 50);` : 'start();'}
`;

const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
${STAGING_STAGE}
environments:
  staging:
    promotion: auto
    strategy: blue-green
    start: node server.js
    env: { OUT: "__OUT__" }
    health: { timeout: 60s, interval: 100ms }
`;

describe('deploy: the agent killed mid-deploy', function () {
  this.timeout(180_000);
  let repo: TempRepo;
  let out: string;

  before(() => {
    out = scratch();
    repo = new TempRepo({ 'conveyor.yml': CONFIG.replace('__OUT__', out), 'server.js': SERVER('v1', false) });
  });

  after(async () => {
    // Instances outlive the agent by design; stop what this test started.
    const runtime = new ProcessRuntime({
      allocatePort: async () => 0,
      route: async () => undefined,
      artifactsDir: repo.path('.conveyor', 'artifacts'),
      stateDir: repo.path('.conveyor', 'runtimes', 'process'),
    });
    await runtime.remove('staging');
    runtime.dispose();
    repo.dispose();
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('comes back serving a healthy release, the record says which, and it converges on the desired state in git', async () => {
    const a = await spawnAgent(repo.dir);
    const c1 = new AgentClient(a.discovery);
    const first = await c1.request<RunSummary>('POST', '/runs', {});
    await until(async () => (await c1.request<RunSummary>('GET', `/runs/${first.id}`)).status === 'succeeded', 'release 1 live');
    const url = (await c1.request<EnvironmentStatus[]>('GET', '/environments'))[0].url!;
    assert.equal(await (await fetch(url)).text(), 'v1');

    repo.write({ 'server.js': SERVER('v2', true) });
    repo.commit('v2');
    await c1.request<RunSummary>('POST', '/runs', {});
    await until(() => fs.existsSync(path.join(out, 'v2-started')), 'v2 to be starting');
    a.child.kill('SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    // The service keeps answering on its own port while the agent is down; the public port
    // belongs to the agent and comes back with it.
    const b = await spawnAgent(repo.dir);
    try {
      const c2 = new AgentClient(b.discovery);
      const envs = await c2.request<EnvironmentStatus[]>('GET', '/environments');
      const staging = envs[0];
      assert.equal(staging.live!.number, 1);
      // Healthy, or already Progressing: the reconciler may have started on the desired release.
      assert.ok(['Healthy', 'Progressing'].includes(staging.health), staging.health);
      assert.equal(staging.url, url, 'the same public port');
      assert.equal(await (await fetch(url)).text(), 'v1');
      const interrupted = await c2.request<DeploymentInfo>('GET', '/deployments/2');
      assert.equal(interrupted.status, 'failed');
      assert.match(interrupted.reason!, /the agent stopped during this deployment; staging stays on release 1/);
      // The desired state in git already says release 2 (a deploy commits first): the reconciler
      // resumes it and converges, with exactly one instance and nothing left over.
      fs.writeFileSync(path.join(out, 'v2-go'), '');
      await until(
        async () => {
          const s = (await c2.request<EnvironmentStatus[]>('GET', '/environments'))[0];
          return s.live?.number === 2 && s.sync?.sync === 'Synced' && s.health === 'Healthy';
        },
        'converged on release 2',
        90_000,
      );
      assert.equal(await (await fetch(url)).text(), 'v2');
      const last = (await c2.request<EnvironmentStatus[]>('GET', '/environments'))[0];
      assert.deepEqual(last.sync!.diff, []);
      assert.equal(last.current, null);
    } finally {
      b.child.kill('SIGTERM');
      await new Promise((r) => b.child.once('exit', r));
    }
  });
});
