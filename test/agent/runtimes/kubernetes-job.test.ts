import * as assert from 'node:assert/strict';
import { JOB_LABEL, runJob, type JobOptions, type JobResult } from '../../../agent/steps/kubernetes-job';
import { startCluster, type Cluster } from '../../support/kubernetes';

describe('runJob (a Kubernetes Job on a real kube-apiserver and controller-manager, fake kubelet)', function () {
  let cluster: Cluster;
  let ns: string;
  const IMAGE = '127.0.0.1:5000/conveyor-test/busybox@sha256:' + '0'.repeat(64);

  before(async function () {
    this.timeout(90_000);
    cluster = await startCluster();
    ns = cluster.uniqueNamespace('jobs');
  });

  after(async () => {
    await cluster?.stop();
  });

  const options = (name: string, extra: Partial<JobOptions> = {}): JobOptions & { lines: string[] } => {
    const lines: string[] = [];
    return { kubeconfig: cluster.kubeconfigPath, namespace: ns, image: IMAGE, command: ['sh', '-c', 'echo migrating'], env: { STAGE: name }, name, onLog: (t) => lines.push(t), lines, ...extra };
  };

  /** The Job runJob created (found by its label), as the API server has it, once it exists. */
  const jobNamed = async (name: string): Promise<any> => {
    for (let i = 0; i < 100; i++) {
      const r = await cluster.request('GET', `/apis/batch/v1/namespaces/${ns}/jobs?labelSelector=${encodeURIComponent(`${JOB_LABEL}=${name}`)}`);
      if (r.status === 200 && r.body.items.length) return r.body.items[0];
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`no job ${name} appeared in ${ns}`);
  };

  /** Whether the Job is gone from the API server. */
  const gone = async (jobName: string) => (await cluster.request('GET', `/apis/batch/v1/namespaces/${ns}/jobs/${jobName}`)).status === 404;

  it('succeeds when its pod succeeds; the Job is deleted afterwards', async () => {
    const opts = options('migrate');
    const running = runJob(opts);
    const job = await jobNamed('migrate');
    assert.equal(job.spec.backoffLimit, 0);
    assert.equal(job.metadata.labels['conveyor.managed'], 'true');
    const container = job.spec.template.spec.containers[0];
    assert.equal(container.image, IMAGE);
    assert.deepEqual(container.command, ['sh', '-c', 'echo migrating']);
    assert.deepEqual(container.env, [{ name: 'STAGE', value: 'migrate' }]);
    assert.equal(job.spec.template.spec.restartPolicy, 'Never');

    await cluster.fakeKubelet.markSucceeded(ns, `job-name=${job.metadata.name}`);
    const r: JobResult = await running;
    assert.equal(r.status, 'succeeded', r.log);
    assert.equal(r.message, `job ${job.metadata.name} succeeded`);
    // No kubelet serves the pod's log here: the log says why instead.
    assert.match(r.log, new RegExp(`job ${job.metadata.name} created in namespace ${ns}`));
    assert.match(r.log, /\(no log from pod migrate-[a-z0-9]+-[a-z0-9]+: /);
    assert.equal(opts.lines.join(''), r.log);
    assert.ok(await gone(job.metadata.name));
  });

  it('fails when its pod fails, with the exit code and the Job\'s reason', async () => {
    const running = runJob(options('broken'));
    const job = await jobNamed('broken');
    await cluster.fakeKubelet.markFailed(ns, `job-name=${job.metadata.name}`);
    const r = await running;
    assert.equal(r.status, 'failed', r.log);
    assert.match(r.message, new RegExp(`^job ${job.metadata.name} failed: exit code 1 \\(Error\\) \\(BackoffLimitExceeded: Job has reached the specified backoff limit\\)$`));
    assert.ok(await gone(job.metadata.name));
  });

  it('is cancelled by its signal, and the Job is deleted', async () => {
    const abort = new AbortController();
    const running = runJob(options('cancel-me', { signal: abort.signal }));
    const job = await jobNamed('cancel-me');
    abort.abort();
    const r = await running;
    assert.equal(r.status, 'cancelled');
    assert.equal(r.message, `job ${job.metadata.name} was cancelled and is deleted`);
    assert.ok(await gone(job.metadata.name));
  });

  it('times out, and the Job is deleted', async () => {
    const r = await runJob(options('slow', { timeoutMs: 1500 }));
    assert.equal(r.status, 'timed_out');
    const name = /^job (slow-[a-z0-9]+) did not finish within 2s and is deleted$/.exec(r.message)?.[1];
    assert.ok(name, r.message);
    assert.ok(await gone(name));
  });

  it('reports a bad kubeconfig and an invalid Job as failures, without throwing', async () => {
    const wrong = await runJob(options('auth', { kubeconfig: cluster.writeKubeconfig('wrong-token') }));
    assert.equal(wrong.status, 'failed');
    assert.match(wrong.message, /401 Unauthorized/);
    const invalid = await runJob(options('invalid', { env: { 'BAD NAME': 'x' } }));
    assert.equal(invalid.status, 'failed');
    assert.match(invalid.message, /^creating Job invalid-[a-z0-9]+ in namespace jobs-[^:]+: the API server rejected it \(422 Invalid\): spec\.template\.spec\.containers\[0\]\.env\[0\]\.name: Invalid value: "BAD NAME"/);
  });
});
