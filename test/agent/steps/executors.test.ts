import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { Agent } from '../../../agent/agent';
import { dockerClient, requireDocker } from '../../support/docker';
import { finished, pipelineYaml, startAgent, startRun, TempRepo, until } from '../../support/fixtures';
import { startCluster, type Cluster } from '../../support/kubernetes';

const log = (agent: Agent, runId: number, stage: string): string =>
  agent.store
    .events(0, 100_000)
    .filter((e) => e.type === 'log' && e.runId === runId && e.stage === stage)
    .map((e) => (e as { text: string }).text)
    .join('');

/**
 * Stages beyond this machine: the same steps, reports and artifacts on the docker and swarm
 * executors (a real dockerd and a real single-node swarm) and as a Kubernetes Job (a real API
 * server, with the test's kubelet helper finishing the pod).
 */
describe('stage executors: docker, swarm, kubernetes', function () {
  this.timeout(180_000);
  const docker = dockerClient();

  before(async () => {
    await requireDocker(docker);
  });

  it('docker: the step runs in the image, the workspace is read-only, $CONVEYOR_OUT comes back as reports and artifacts', async () => {
    const repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`- name: test
  executor: { kind: docker, image: conveyor-test/node:20 }
  run:
    - node -e "console.log('node ' + process.version + ' in ' + process.cwd())"
    - touch /workspace/x 2>/dev/null && echo writable || echo read-only
    - mkdir -p $CONVEYOR_OUT/reports && printf 'TAP version 13\\n1..2\\nok 1 - adds\\nnot ok 2 - subtracts\\n' > $CONVEYOR_OUT/reports/t.tap && echo built > $CONVEYOR_OUT/app.txt
  report: { format: tap, path: reports/t.tap }
  artifacts: [app.txt]`),
    });
    const agent = await startAgent(repo);
    try {
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(run.status, 'succeeded', JSON.stringify(run.stages));
      const text = log(agent, run.id, 'test');
      assert.match(text, /running on docker in conveyor-test\/node:20/);
      assert.match(text, /node v20\.\d+\.\d+ in \/workspace/);
      assert.match(text, /^read-only$/m);
      const tests = agent.store.getTests(run.id)[0].results.map((r) => [r.name, r.status]);
      assert.deepEqual(tests, [
        ['adds', 'passed'],
        ['subtracts', 'failed'],
      ]);
      assert.deepEqual(run.artifacts.map((a) => a.path), ['app.txt']);
    } finally {
      await agent.stop();
      repo.dispose();
    }
  });

  it('docker: cancel removes the container', async () => {
    const repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`- name: slow
  executor: { kind: docker, image: conveyor-test/busybox:1 }
  run: echo started; sleep 60`),
    });
    const agent = await startAgent(repo);
    try {
      const id = await startRun(agent, { trigger: 'manual', stages: ['slow'] });
      await until(() => log(agent, id, 'slow').includes('started'), 'the container started');
      const mine = () => docker.listContainers({ all: true, filters: { label: [`conveyor.run=${id}`] } });
      assert.equal((await mine()).length, 1);
      await agent.engine.cancel(id);
      const run = await finished(agent, id);
      assert.equal(run.status, 'cancelled');
      await until(async () => (await mine()).length === 0, 'the container removed');
    } finally {
      await agent.stop();
      repo.dispose();
    }
  });

  it('docker: a matrix takes its image axis from $MATRIX_IMAGE', async () => {
    const repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`- name: compat
  kind: matrix
  matrix: { axes: { image: ["conveyor-test/busybox:1", "conveyor-test/node:20"] } }
  executor: { kind: docker, image: $MATRIX_IMAGE }
  run: (node --version 2>/dev/null || echo no node) && echo cell done`),
    });
    const agent = await startAgent(repo);
    try {
      const m = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(m.status, 'succeeded', JSON.stringify(m.stages));
      const cells = m.stages.filter((s) => s.matrix);
      assert.equal(cells.length, 2);
      const byImage = Object.fromEntries(cells.map((c) => [c.matrix!.cell.image, log(agent, m.id, c.name)]));
      assert.match(byImage['conveyor-test/busybox:1'], /no node/);
      assert.match(byImage['conveyor-test/node:20'], /^v20\./m);
    } finally {
      await agent.stop();
      repo.dispose();
    }
  });

  it('swarm: the step runs as a one-shot service and its output comes back', async () => {
    const repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`- name: job
  executor: { kind: swarm, image: conveyor-test/busybox:1 }
  run: echo on the swarm && echo done > $CONVEYOR_OUT/result.txt
  artifacts: [result.txt]`),
    });
    const agent = await startAgent(repo);
    try {
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(run.status, 'succeeded', JSON.stringify(run.stages) + log(agent, run.id, 'job'));
      assert.match(log(agent, run.id, 'job'), /on the swarm/);
      assert.deepEqual(run.artifacts.map((a) => a.path), ['result.txt']);
      const left = await docker.listServices({ filters: { label: [`conveyor.run=${run.id}`] } });
      assert.equal(left.length, 0, 'the service is removed');
    } finally {
      await agent.stop();
      repo.dispose();
    }
  });

  describe('kubernetes', () => {
    let cluster: Cluster;
    before(async () => {
      cluster = await startCluster();
    });
    after(async () => {
      await cluster?.stop();
    });

    it('runs the step as a Job; its end is the stage status', async () => {
      const ns = cluster.uniqueNamespace('exec');
      const repo = new TempRepo({
        'conveyor.yml': pipelineYaml(`- name: migrate
  executor: { kind: kubernetes, image: 127.0.0.1:5000/tools:1, kubeconfig: "${cluster.kubeconfigPath}", namespace: ${ns} }
  run: ./migrate --check`),
      });
      const agent = await startAgent(repo);
      try {
        const id = await startRun(agent, { trigger: 'manual' });
        await cluster.fakeKubelet.markSucceeded(ns, `conveyor.run=${id}`);
        const run = await finished(agent, id);
        assert.equal(run.status, 'succeeded', log(agent, id, 'migrate'));
        assert.match(log(agent, id, 'migrate'), /running on kubernetes in 127\.0\.0\.1:5000\/tools:1/);
        assert.match(log(agent, id, 'migrate'), /succeeded/);
        const jobs = await cluster.request('GET', `/apis/batch/v1/namespaces/${ns}/jobs`);
        await until(async () => ((await cluster.request('GET', `/apis/batch/v1/namespaces/${ns}/jobs`)).body.items ?? []).length === 0, 'the Job deleted');
        assert.ok(jobs.status === 200);
        const failing = await startRun(agent, { trigger: 'manual' });
        await cluster.fakeKubelet.markFailed(ns, `conveyor.run=${failing}`);
        assert.equal((await finished(agent, failing)).status, 'failed');
      } finally {
        await agent.stop();
        repo.dispose();
        fs.rmSync(repo.dir, { recursive: true, force: true });
      }
    });
  });
});
