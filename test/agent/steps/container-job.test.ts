import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Docker from 'dockerode';
import { JOB_OUTPUT_DIR, runContainerJob, type ContainerJobOptions, type ContainerJobResult } from '../../../agent/steps/container-job';
import { dockerClient, removeByLabel, requireDocker, TEST_LABEL, testRunLabel } from '../../support/docker';

const IMAGE = 'conveyor-test/busybox:1';

describe('runContainerJob (real dockerd and a real single-node swarm)', function () {
  const docker = dockerClient();
  const label = testRunLabel('container-job');
  let dir: string;
  let workspace: string;
  let outputs: string;

  before(async () => {
    await requireDocker(docker);
    dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-container-job-')));
    workspace = path.join(dir, 'workspace');
    fs.mkdirSync(workspace);
    fs.writeFileSync(path.join(workspace, 'input.txt'), 'hello from the workspace\n');
  });

  beforeEach(() => {
    outputs = fs.mkdtempSync(path.join(dir, 'out-'));
  });

  after(async () => {
    const services = await docker.listServices({ filters: { label: [`${TEST_LABEL}=${label}`] } }).catch(() => []);
    await Promise.all(services.map((s) => docker.getService(s.ID).remove().catch(() => undefined)));
    await removeByLabel(docker, label);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A job with the workspace read-only at /work and the outputs folder read-write, collecting its output. */
  const job = (mode: 'docker' | 'swarm', command: string, extra: Partial<ContainerJobOptions> = {}) => {
    const out = { stdout: '', stderr: '' };
    const done = runContainerJob({
      mode,
      image: IMAGE,
      command,
      env: { GREETING: 'hi' },
      workdir: '/work',
      mounts: [
        { source: workspace, target: '/work', readOnly: true },
        { source: outputs, target: JOB_OUTPUT_DIR },
      ],
      name: `conveyor-test-${mode}`,
      labels: { [TEST_LABEL]: label },
      onLog: (text, stream) => (out[stream] += text),
      docker,
      ...extra,
    });
    return { out, done };
  };
  const leftovers = async () => ({
    containers: (await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${label}`] } })).length,
    services: (await docker.listServices({ filters: { label: [`${TEST_LABEL}=${label}`] } })).length,
  });

  for (const mode of ['docker', 'swarm'] as const) {
    describe(`${mode} mode`, () => {
      before(async function () {
        if (mode === 'swarm') await requireSwarm(docker);
      });

      it('runs the command in the workspace: output streamed as it comes, a report in the outputs folder, nothing left', async () => {
        const { out, done } = job(
          mode,
          `cat input.txt; echo "$GREETING from $(pwd)"; echo warning >&2; (touch /work/x 2>/dev/null && echo writable) || echo read-only; ` +
            `echo '<testsuite tests="1"/>' > ${JOB_OUTPUT_DIR}/report.xml; while [ ! -f ${JOB_OUTPUT_DIR}/go ]; do sleep 0.1; done; echo finished`,
        );
        let settled: ContainerJobResult | undefined;
        void done.then((r) => (settled = r));
        // The first lines arrive while the job still runs (it waits for the go file).
        await until(async () => out.stdout.includes('read-only'), 'the first lines of output');
        assert.equal(settled, undefined);
        fs.writeFileSync(path.join(outputs, 'go'), '');
        const r = await done;
        assert.deepEqual(r, { status: 'succeeded', exitCode: 0, message: null });
        assert.equal(out.stdout, 'hello from the workspace\nhi from /work\nread-only\nfinished\n');
        assert.equal(out.stderr, 'warning\n');
        assert.equal(fs.readFileSync(path.join(outputs, 'report.xml'), 'utf8'), '<testsuite tests="1"/>\n');
        assert.ok(!fs.existsSync(path.join(workspace, 'x')));
        assert.deepEqual(await leftovers(), { containers: 0, services: 0 });
      });

      it('a failing command: failed, with its exit code and output', async () => {
        const { out, done } = job(mode, 'echo "about to fail" >&2; exit 3');
        const r = await done;
        assert.deepEqual(r, { status: 'failed', exitCode: 3, message: 'exit code 3' });
        assert.equal(out.stderr, 'about to fail\n');
        assert.deepEqual(await leftovers(), { containers: 0, services: 0 });
      });

      it('cancel: cancelled, and what it started is removed', async () => {
        const ac = new AbortController();
        const { out, done } = job(mode, 'echo started; sleep 60', { signal: ac.signal });
        await until(async () => out.stdout.includes('started'), 'the job to start');
        const running = await leftovers();
        assert.equal(running.containers, 1);
        assert.equal(running.services, mode === 'swarm' ? 1 : 0);
        ac.abort();
        assert.deepEqual(await done, { status: 'cancelled', exitCode: null, message: 'cancelled' });
        assert.deepEqual(await leftovers(), { containers: 0, services: 0 });
      });

      it('time-out: timed_out, and what it started is removed', async () => {
        const { done } = job(mode, 'sleep 60', { timeoutMs: 2000 });
        assert.deepEqual(await done, { status: 'timed_out', exitCode: null, message: 'timed out after 2s' });
        assert.deepEqual(await leftovers(), { containers: 0, services: 0 });
      });

      it('an image that is nowhere: failed, saying so', async () => {
        const { done } = job(mode, 'true', { image: 'conveyor-test/no-such-image:1' });
        const r = await done;
        assert.equal(r.status, 'failed');
        assert.equal(r.exitCode, null);
        assert.match(r.message!, mode === 'docker' ? /^the image conveyor-test\/no-such-image:1 is not on this machine and could not be pulled \(.+\): build it first/ : /^swarm rejected the job's task: .*No such image.*: build the image conveyor-test\/no-such-image:1 first/);
        assert.deepEqual(await leftovers(), { containers: 0, services: 0 });
      });
    });
  }

  it('no daemon, or bad input: a clear message, no exception', async () => {
    const nowhere = new Docker({ socketPath: path.join(dir, 'no-such-docker.sock') });
    for (const mode of ['docker', 'swarm'] as const) {
      const r = await runContainerJob({ mode, image: IMAGE, command: 'true', docker: nowhere });
      assert.equal(r.status, 'failed');
      assert.match(r.message!, /^Cannot connect to the Docker daemon at unix:\/\/\/.*no-such-docker\.sock: start dockerd/);
    }
    const empty = await runContainerJob({ mode: 'docker', image: IMAGE, command: '  ', docker });
    assert.deepEqual(empty, { status: 'failed', exitCode: null, message: 'no command given for the container job: say what to run in the container' });
  });
});

/** Throws, saying how to provision, when the daemon is no swarm manager. */
async function requireSwarm(docker: Docker): Promise<void> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
  if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
    throw new Error('dockerd is not a swarm manager: run `bash test/provision.sh` (test/setup/45-swarm.sh) first');
  }
}

async function until(fn: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
