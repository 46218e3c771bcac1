import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Agent } from '../../../agent/agent';
import { finished, startAgent, startRun, TempRepo } from '../../support/fixtures';
import { dockerClient, requireDocker } from '../../support/docker';
import { PACKAGE_STAGE, serviceSource } from '../../support/service';

const FIXTURE = path.resolve(__dirname, '../../../../test/fixtures/images/httpd');

const CONFIG = (registry: string) => `
pipeline:
  stages:
    - name: image
      kind: image
      image: { name: conveyor-test/pipeline-httpd, registry: "${registry}" }
    - name: staging
      kind: deploy
      environment: staging
      needs: [image]
    - name: local
      kind: deploy
      environment: local
      artifact: package
      needs: [package]
${PACKAGE_STAGE}
environments:
  staging:
    runtime: docker
    promotion: auto
    containerPort: 8080
    resources: { memory: 64m }
    health: { http: /healthz, timeout: 20s, interval: 200ms }
  local:
    promotion: auto
    start: node server.js
    health: { timeout: 10s, interval: 100ms }
`;

const SERVER = serviceSource('local');

function files(): Record<string, string> {
  const out: Record<string, string> = { 'server.js': SERVER, Dockerfile: fs.readFileSync(path.join(FIXTURE, 'Dockerfile'), 'utf8') };
  for (const f of fs.readdirSync(path.join(FIXTURE, 'www'))) out[`www/${f}`] = fs.readFileSync(path.join(FIXTURE, 'www', f), 'utf8');
  return out;
}

/** Build once, deploy the digest: an image stage and a docker environment, through the agent. */
describe('deploy: image stage to a docker environment', function () {
  this.timeout(180_000);
  let repo: TempRepo;
  let agent: Agent;

  before(async () => {
    await requireDocker();
    repo = new TempRepo({ ...files(), 'conveyor.yml': CONFIG('127.0.0.1:5000') });
    agent = await startAgent(repo);
  });

  after(async () => {
    const docker = agent.runtimes.get('docker');
    if (docker.ok) await docker.value.remove('staging').catch(() => undefined);
    const proc = agent.runtimes.get('process');
    if (proc.ok) await proc.value.remove('local').catch(() => undefined);
    await agent.stop();
    repo.dispose();
  });

  it('builds the image from the commit, pushes it, and deploys exactly that digest', async () => {
    const run = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['staging'] }), 150_000);
    assert.equal(run.status, 'succeeded', JSON.stringify(run.stages));
    const image = run.artifacts.find((a) => a.kind === 'image')!;
    assert.match(image.path, new RegExp(`^127\\.0\\.0\\.1:5000/conveyor-test/pipeline-httpd:${run.commit!.slice(0, 12)}$`));
    assert.match(image.digest, /^sha256:[0-9a-f]{64}$/);
    const staging = (await agent.deployer.status()).find((e) => e.name === 'staging')!;
    assert.equal(staging.health, 'Healthy');
    assert.equal(staging.live!.artifact.digest, image.digest);
    const res = await fetch(`${staging.url}/version`);
    assert.equal(res.status, 200);
    // The container runs the image by digest, with the labels and the limit.
    const containers = await dockerClient().listContainers({ filters: { label: ['conveyor.environment=staging', `conveyor.digest=${image.digest}`] } });
    assert.equal(containers.length, 1);
    const info = await dockerClient().getContainer(containers[0].Id).inspect();
    assert.equal(info.Config.Image, `127.0.0.1:5000/conveyor-test/pipeline-httpd@${image.digest}`);
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(info.Config.Labels['conveyor.commit'], run.commit);
  });

  it('a failing image build fails its stage with the build log', async () => {
    repo.write({ Dockerfile: 'FROM conveyor-test/busybox:1\nRUN echo "about to fail" && exit 3\n' });
    repo.commit('break the image');
    const run = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['image'] }), 120_000);
    assert.equal(run.status, 'failed');
    assert.match(run.stages.find((s) => s.name === 'image')!.message!, /non-zero code: 3/);
    const log = fs.readFileSync(path.join(repo.dir, '.conveyor', 'logs', String(run.id), 'image', '1-0.log'), 'utf8');
    assert.match(log, /about to fail/);
  });

  it('with Docker unreachable, docker stages fail saying how to start it, and process environments keep working', async () => {
    const before = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = 'unix:///nonexistent/docker.sock';
    try {
      const run = await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['image', 'local'] }), 60_000);
      const image = run.stages.find((s) => s.name === 'image')!;
      assert.equal(image.status, 'failed');
      assert.match(image.message!, /Cannot connect to the Docker daemon at unix:\/\/\/nonexistent\/docker\.sock: start dockerd/);
      assert.equal(run.stages.find((s) => s.name === 'local')!.status, 'succeeded');
      const local = (await agent.deployer.status()).find((e) => e.name === 'local')!;
      assert.equal(await (await fetch(local.url!)).text(), 'local');
    } finally {
      if (before === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = before;
    }
  });
});
