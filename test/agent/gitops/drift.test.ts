import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { Agent } from '../../../agent/agent';
import type { SyncInfo } from '../../../agent/protocol';
import { buildImage, type BuiltImage } from '../../../agent/steps/image-build';
import { startAgent, TempRepo, until } from '../../support/fixtures';
import { copyFixture, dockerCli, dockerClient, requireDocker, restartDockerd, TEST_LABEL, testRunLabel, uniqueRepository } from '../../support/docker';
import { events } from '../../support/events';

const HEALTH = 'health: { http: /version, timeout: 20s, interval: 200ms }';

const CONFIG = (repository: string) => `
pipeline:
  stages:
    - name: noop
      run: "true"
environments:
  reported:
    runtime: docker
    promotion: auto
    ${HEALTH}
  healed:
    runtime: docker
    promotion: auto
    reconcile: { selfHeal: true, prune: true }
    ${HEALTH}
  auto:
    runtime: docker
    promotion: auto
    imageUpdate: { repository: "${repository}", semver: "^1.0.0", interval: 1s }
    ${HEALTH}
gitops: { interval: 5s }
`;

/**
 * Drift on a real Docker daemon: containers stopped, removed or added by hand, seen through
 * Docker's event stream, reported or healed by policy; and image update automation against the
 * real local registry.
 */
describe('gitops: drift and self-heal on docker', function () {
  this.timeout(180_000);
  const docker = dockerClient();
  const label = testRunLabel('gitops-drift');
  let repo: TempRepo;
  let agent: Agent;
  let repository: string;
  const images: Record<string, BuiltImage> = {};
  const cleanup: (() => void)[] = [];
  const sync = (env: string): SyncInfo | null => agent.reconciler!.status(env);
  const containers = async (env: string) => (await docker.listContainers({ all: true, filters: { label: [`conveyor.environment=${env}`, 'conveyor.managed=true'] } })).filter((c) => c.Labels['conveyor.scope'] === scope);
  let scope = '';

  const build = async (tag: string, version: string) => {
    const dir = copyFixture('httpd');
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const r = await buildImage({ docker, contextDir: dir, repository, tag, buildArgs: { VERSION: version }, labels: { [TEST_LABEL]: label } });
    assert.ok(r.ok, r.ok ? '' : `${r.error.reason}\n${r.error.log}`);
    return r.value;
  };

  const deploy = async (env: string, image: BuiltImage) => {
    const r = agent.deployer.deploy({ environment: env, artifact: { kind: 'image', repository, digest: image.digest }, runId: null, stage: null, commit: null, requestedBy: 'tester (test)' }, 'manual');
    assert.ok(r.ok, r.ok ? '' : r.error.error);
    const d = await r.value.done;
    assert.equal(d.status, 'succeeded', d.reason ?? '');
  };

  before(async () => {
    await requireDocker(docker);
    repository = uniqueRepository('gitops');
    images.v1 = await build('0.9.0', '1');
    repo = new TempRepo({ 'conveyor.yml': CONFIG(repository) });
    agent = await startAgent(repo, { pollMs: 200 });
    await deploy('reported', images.v1);
    await deploy('healed', images.v1);
    scope = (await docker.listContainers({ filters: { label: ['conveyor.environment=healed'] } }))[0].Labels['conveyor.scope'];
    await until(() => sync('reported')?.sync === 'Synced' && sync('healed')?.sync === 'Synced', 'both Synced');
  });

  after(async () => {
    const runtime = agent?.runtimes.get('docker');
    for (const e of ['reported', 'healed', 'auto']) if (runtime?.ok) await runtime.value.remove(e).catch(() => undefined);
    await agent?.stop();
    repo?.dispose();
    for (const c of cleanup.reverse()) c();
    await dockerCli('rm', '-f', 'conveyor-test-intruder').catch(() => undefined);
  });

  it('`docker rm -f` of a managed container is drift: OutOfSync with the diff, reported and not healed by default', async () => {
    const before = events(agent, 'drift.detected').length;
    const [c] = await containers('reported');
    await dockerCli('rm', '-f', c.Id);
    await until(() => sync('reported')?.sync === 'OutOfSync', 'OutOfSync', 20_000);
    const info = sync('reported')!;
    assert.deepEqual(info.causes, ['drift']);
    assert.equal(info.diff[0].kind, 'missing');
    assert.match(info.diff[0].message, /no instance of reported@1 runs \(1 desired\)/);
    const drift = events(agent, 'drift.detected').slice(before);
    assert.equal(drift.length, 1);
    assert.equal(drift[0].action, 'reported');
    assert.equal((await containers('reported')).length, 0, 'nothing put it back');
    // "Sync now" puts it back.
    const r = await agent.reconciler!.sync('reported', false, 'tester (test)');
    assert.ok(r.ok && r.value.deployment);
    assert.equal(r.value.deployment.trigger, 'heal');
    await until(() => sync('reported')?.sync === 'Synced' && sync('reported')?.health === 'Healthy', 'Synced after Sync now', 30_000);
  });

  it('with selfHeal, a stopped container is put back, and the drift is recorded as healed; git is not touched', async () => {
    const commits = repo.git('rev-list', '--count', 'conveyor/state').trim();
    const before = events(agent, 'drift.detected').length;
    const [c] = await containers('healed');
    await dockerCli('stop', '-t', '0', c.Id);
    await until(() => events(agent, 'drift.detected').slice(before).some((e) => e.action === 'healed'), 'healed', 30_000);
    const drift = events(agent, 'drift.detected').slice(before);
    assert.deepEqual(drift.map((d) => d.action), ['healing', 'healed']);
    assert.ok(drift[0].items.some((i) => i.kind === 'stopped' || i.kind === 'missing'), JSON.stringify(drift[0].items));
    await until(() => sync('healed')?.health === 'Healthy', 'Healthy again');
    const running = (await containers('healed')).filter((x) => x.State === 'running');
    assert.equal(running.length, 1);
    assert.equal(repo.git('rev-list', '--count', 'conveyor/state').trim(), commits);
  });

  it('with prune, a container carrying Conveyor labels that nobody wants is removed', async () => {
    const before = events(agent, 'drift.detected').length;
    await dockerCli('run', '-d', '--init', '--name', 'conveyor-test-intruder', '--label', 'conveyor.managed=true', '--label', `conveyor.scope=${scope}`, '--label', 'conveyor.environment=healed', '--label', 'conveyor.release=99', '--label', `${TEST_LABEL}=${label}`, 'conveyor-test/busybox:1', 'sleep', '300');
    await until(() => events(agent, 'drift.detected').slice(before).some((e) => e.action === 'healed'), 'pruned', 30_000);
    const drift = events(agent, 'drift.detected').slice(before);
    assert.equal(drift[0].items[0].kind, 'extra');
    assert.match(drift[0].items[0].message, /of release 99 runs in healed but only release 1 is desired/);
    const names = (await containers('healed')).map((c) => c.Names[0]);
    assert.ok(!names.includes('/conveyor-test-intruder'), names.join(', '));
    assert.equal(names.length, 1);
  });

  it('the Docker daemon restarted: the reconciler recovers without duplicating containers, and follows events again', async () => {
    await restartDockerd(docker);
    await until(
      () => ['reported', 'healed'].every((e) => sync(e)?.sync === 'Synced' && sync(e)?.health === 'Healthy'),
      'both Synced and Healthy after the restart',
      90_000,
    );
    for (const e of ['reported', 'healed']) {
      const list = await containers(e);
      assert.equal(list.length, 1, `${e}: ${list.map((c) => `${c.Names[0]} ${c.State}`).join(', ')}`);
      assert.equal(list[0].State, 'running');
    }
    // Docker's event stream is followed again: a removal is healed.
    const before = events(agent, 'drift.detected').length;
    await dockerCli('rm', '-f', (await containers('healed'))[0].Id);
    await until(() => events(agent, 'drift.detected').slice(before).some((e) => e.action === 'healed'), 'healed after the restart', 30_000);
    assert.equal((await containers('healed')).length, 1);
  });

  it('image update automation commits the newest tag in the semver range, and the reconciler deploys it', async () => {
    images.v110 = await build('1.1.0', '110');
    await until(() => agent.deployer.liveRelease('auto')?.artifact.digest === images.v110.digest, 'the 1.1.0 digest live', 60_000);
    const subject = repo.git('log', '-1', '--format=%s', 'conveyor/state', '--', 'environments/auto.yml').trim();
    assert.equal(subject, `image update: auto to ${repository}:1.1.0`);
    assert.match(repo.git('show', 'conveyor/state:environments/auto.yml'), /tag: 1\.1\.0/);
    // 2.0.0 is outside ^1.0.0; 1.2.0 is inside.
    images.v200 = await build('2.0.0', '200');
    images.v120 = await build('1.2.0', '120');
    await until(() => agent.deployer.liveRelease('auto')?.artifact.digest === images.v120.digest, 'the 1.2.0 digest live', 60_000);
    await until(() => sync('auto')?.sync === 'Synced' && sync('auto')?.health === 'Healthy', 'auto Synced');
    const url = await agent.deployer.environmentUrl('auto');
    assert.ok(url.ok);
    const r = await fetch(`${url.value}/version`);
    assert.equal((await r.text()).trim(), '120');
    assert.ok(events(agent, 'image.update').some((e) => e.tag === '1.2.0'));
    assert.ok(!events(agent, 'image.update').some((e) => e.tag === '2.0.0'));
  });
});
